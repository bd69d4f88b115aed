"""Users' text files: a byte-order mark is dropped, a byte that is not UTF-8 is named by its line."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from hybridrank import columns as C
from hybridrank._config import read_yaml_mapping
from hybridrank.data import (
    read_clara2,
    read_id_text_tsv,
    read_impression_log,
    read_svmlight,
    read_yandex_sample,
    text_lines,
)
from hybridrank.data._relevance import read_clara2_relevance
from hybridrank.errors import ConfigError, DataFormatError

BOM = b"\xef\xbb\xbf"


def test_text_lines_drop_the_mark_and_carriage_returns_and_name_a_bad_line(
    tmp_path: Path,
) -> None:
    p = tmp_path / "t.txt"
    p.write_bytes(BOM + b"a\tb\r\nc\n")
    assert list(text_lines(p)) == [(1, "a\tb\n"), (2, "c\n")]
    p.write_bytes(b"ok\ncaf\xe9\n")
    with pytest.raises(DataFormatError, match=r"t\.txt, line 2: not UTF-8 text: byte b'\\xe9'"):
        list(text_lines(p))


def test_a_byte_order_mark_is_not_part_of_the_first_id(tmp_path: Path) -> None:
    tsv = tmp_path / "queries.tsv"
    tsv.write_bytes(BOM + b"q0\tfirst query\nq1\tsecond\n")
    assert read_id_text_tsv(tsv, id_column=C.QID)[C.QID].tolist() == ["q0", "q1"]

    yandex = tmp_path / "trainSample"
    yandex.write_bytes(BOM + b"7_1\tu1,u2 : u2\n")
    assert read_yandex_sample(yandex)[C.QID].unique().tolist() == ["7_1"]

    clara = tmp_path / "log"
    clara.write_bytes(BOM + b"1\t0\tQ\tq1\tr\tu1" + b"\t" * 9 + b"\n1\t1\tC\tu1\n")
    assert read_clara2(clara)[C.QID].unique().tolist() == ["q1"]

    rel = tmp_path / "rel"
    rel.write_bytes(BOM + b"q1\tu1\t2\n")
    assert read_clara2_relevance(rel)[C.QID].tolist() == ["q1"]

    letor = tmp_path / "train.txt"
    letor.write_bytes(BOM + b"2 qid:7 1:0.5\n0 qid:7 1:0.1\n")
    assert read_svmlight(letor).y.tolist() == [2, 0]

    config = tmp_path / "c.yaml"
    config.write_bytes(BOM + b"gbdt: {n_estimators: 5}\n")
    assert read_yaml_mapping(config) == {"gbdt": {"n_estimators": 5}}


def test_bytes_that_are_not_utf8_name_their_line(tmp_path: Path) -> None:
    log = tmp_path / "log.csv"
    log.write_bytes(
        b"session_id,ts,qid,docid,position,click,dwell_s\n1,0,q1,d1,1,1,3\n2,0,caf\xe9,d1,1,0,\n"
    )
    with pytest.raises(DataFormatError, match=r"log\.csv, line 3: not UTF-8"):
        read_impression_log(log)
    config = tmp_path / "c.yaml"
    config.write_bytes(b"gbdt:\n  n_estimators: 5 # caf\xe9\n")
    with pytest.raises(ConfigError, match=r"c\.yaml, line 2: not UTF-8 text"):
        read_yaml_mapping(config)
    yandex = tmp_path / "trainSample"
    yandex.write_bytes(b"7_1\tu1 : u1\n8_\xe9\tu2 : \n")
    with pytest.raises(DataFormatError, match=r"trainSample, line 2: not UTF-8"):
        read_yandex_sample(yandex)


def test_letor_row_without_qid_is_an_error_not_a_shift(tmp_path: Path) -> None:
    p = tmp_path / "vali.txt"
    p.write_text("2 qid:7 1:0.5\n0 1:0.1\n1 qid:9 1:1\n")
    with pytest.raises(DataFormatError, match=r"vali\.txt, line 2, column 'qid': 1 data lines"):
        read_svmlight(p)
    p.write_text("2 1:0.5\n0 1:0.1\n")  # no qid at all and no group file
    with pytest.raises(DataFormatError, match=r"no qid: fields and no group file vali\.txt\.query"):
        read_svmlight(p)


def test_letor_infinite_values_are_refused_and_nan_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    p = tmp_path / "train.txt"
    p.write_text("2 qid:7 1:0.5 2:1\n0 qid:7 1:0.1 2:inf\n")
    with pytest.raises(
        DataFormatError, match=r"train\.txt, line 2, column 'feature 2': feature 2 is inf"
    ):
        read_svmlight(p)
    p.write_text("2 qid:7 1:0.5 2:1\n0 qid:7 1:0.1 2:nan\n")
    with caplog.at_level(logging.WARNING, logger="hybridrank.data"):
        data = read_svmlight(p)
    assert np.isnan(data.X[1, 1]) and "1 feature values are nan" in caplog.text


def test_negative_trec_grades_are_read_as_zero_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from hybridrank.data import read_trec_qrels

    p = tmp_path / "qrels"
    p.write_text("q1 0 d1 2\nq1 0 d2 -1\nq2 0 d3 -2\n")
    with caplog.at_level(logging.WARNING, logger="hybridrank.data"):
        grades = read_trec_qrels(p)
    assert grades[C.GRADE].tolist() == [2, 0, 0]
    assert "2 negative grades (TREC's junk) read as 0" in caplog.text


def test_bare_carriage_returns_end_lines_as_text_mode_reads_them(tmp_path: Path) -> None:
    p = tmp_path / "t.txt"
    p.write_bytes(b"a\rb\r\nc\nd")
    assert list(text_lines(p)) == [(1, "a\n"), (2, "b\n"), (3, "c\n"), (4, "d")]
    yandex = tmp_path / "trainSample"
    yandex.write_bytes(b"q1\tu1,u2 : u2\rq2\tu3,u4 : u3\r")
    log = read_yandex_sample(yandex)
    assert log[C.QID].unique().tolist() == ["q1", "q2"] and log[C.CLICK].tolist() == [0, 1, 1, 0]
