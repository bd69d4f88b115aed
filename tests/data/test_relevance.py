"""Qrels readers: the CLARA2 relevance file and the registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from hybridrank import columns as C
from hybridrank.data import LINE, QRELS_READERS, read_clara2_relevance, read_qrels
from hybridrank.errors import ConfigError, DataFormatError


def test_read_clara2_relevance(tmp_path: Path) -> None:
    path = tmp_path / "rel"
    path.write_text(
        "# Copyright line\n\nquery\turl\trelevance\n0\t68654\t2\n0\t60364\t5\n17\t3\t0\n"
    )
    frame = read_clara2_relevance(path)
    assert frame[C.QID].tolist() == ["0", "0", "17"]
    assert frame[C.DOCID].tolist() == ["68654", "60364", "3"]
    assert frame[C.GRADE].tolist() == [2, 5, 0]
    assert str(frame[C.GRADE].dtype) == "int64"
    assert frame[LINE].tolist() == [4, 5, 6]


def test_clara2_without_header(tmp_path: Path) -> None:
    path = tmp_path / "rel"
    path.write_text("1\t2\t3\n")
    assert read_clara2_relevance(path)[C.GRADE].tolist() == [3]


@pytest.mark.parametrize(
    ("body", "line", "column", "match"),
    [
        ("query\turl\trelevance\n1\t2\n", 2, None, "3 tab-separated fields"),
        ("1\t2\tx\n", 1, "relevance", "not a whole number"),
        ("1\t2\t-1\n", 1, "relevance", "negative"),
        ("\t2\t1\n", 1, "query", "empty query id"),
        ("1\t2\t1\n1\t3\t1\n1\t2\t0\n", 3, "url", "judged twice"),
    ],
)
def test_clara2_bad_lines_are_named(
    tmp_path: Path, body: str, line: int, column: str | None, match: str
) -> None:
    path = tmp_path / "rel"
    path.write_text(body)
    with pytest.raises(DataFormatError, match=match) as err:
        read_clara2_relevance(path)
    assert err.value.path == str(path)
    assert err.value.line == line
    assert err.value.column == column


def test_registry(tmp_path: Path) -> None:
    assert set(QRELS_READERS) == {"trec", "clara2"}
    trec = tmp_path / "qrels"
    trec.write_text("q1 0 d1 2\nq1 0 d2 0\n")
    assert read_qrels(trec, "trec")[C.GRADE].tolist() == [2, 0]
    with pytest.raises(ConfigError, match="known formats"):
        read_qrels(trec, "nope")
    with pytest.raises(FileNotFoundError):
        read_qrels(tmp_path / "missing", "clara2")
