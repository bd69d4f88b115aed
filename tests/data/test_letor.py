from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hybridrank.data._letor import read_svmlight
from hybridrank.errors import DataFormatError


def test_qid_lines(tmp_path: Path) -> None:
    p = tmp_path / "train.txt"
    p.write_text("2 qid:7 1:0.5 3:1.0 # doc a\n0 qid:7 2:0.25\n1 qid:9 1:1\n")
    d = read_svmlight(p)
    assert d.X.shape == (3, 3) and d.X.dtype == np.float32
    assert d.y.tolist() == [2, 0, 1]
    assert d.qid.tolist() == [7, 7, 9]
    assert d.n_queries == 2
    assert read_svmlight(p, n_features=5).X.shape == (3, 5)


def test_group_file(tmp_path: Path) -> None:
    p = tmp_path / "rank.train"
    p.write_text("1 1:0.5\n0 2:1\n3 1:1\n")
    (tmp_path / "rank.train.query").write_text("2\n1\n")
    assert read_svmlight(p).qid.tolist() == [0, 0, 1]
    (tmp_path / "rank.train.query").write_text("2\n2\n")
    with pytest.raises(DataFormatError, match="add up to 4"):
        read_svmlight(p)


def test_bad_files(tmp_path: Path) -> None:
    p = tmp_path / "bad.txt"
    p.write_text("1 qid:1 x:y\n")
    with pytest.raises(DataFormatError, match=r"bad\.txt"):
        read_svmlight(p)
    p.write_text("-1 qid:1 1:1\n")
    with pytest.raises(DataFormatError, match="not an integer >= 0"):
        read_svmlight(p)
    with pytest.raises(FileNotFoundError):
        read_svmlight(tmp_path / "nope.txt")


@pytest.mark.parametrize(
    ("line", "column", "message"),
    [
        ("1 qid:1 1:0.5 2:abc", "feature 2", "value 'abc' is not a number"),
        ("1 qid:1 1:0.5 2", "features", "'2' is not INDEX:VALUE"),
        ("1 qid: 1:0.5", "qid", "qid '' is not an integer"),
        ("1 qid:1 0:0.5", "feature 0", "not an integer >= 1"),
        ("1 qid:1 2:0.5 1:0.5", "feature 1", "indices must increase"),
        ("x qid:1 1:0.5", "label", "label 'x' is not a number"),
    ],
)
def test_a_bad_line_is_named_with_its_field(
    tmp_path: Path, line: str, column: str, message: str
) -> None:
    p = tmp_path / "bad.txt"
    p.write_text("0 qid:1 1:0.1 2:0.2  # docid = a\n2 qid:1 1:0.3 2:0.4\n" + line + "\n")
    with pytest.raises(DataFormatError, match=message) as info:
        read_svmlight(p)
    assert (info.value.path, info.value.line, info.value.column) == (str(p), 3, column)


def test_an_empty_file_is_refused_by_name(tmp_path: Path) -> None:
    p = tmp_path / "empty.txt"
    p.write_text("# only a comment\n")
    with pytest.raises(DataFormatError, match="no data lines"):
        read_svmlight(p)


def test_a_label_that_is_no_grade_is_named_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    path.write_text("# a comment\n1 qid:1 1:0.5\n\n1.5 qid:1 1:0.2\n-1 qid:2 1:0.1\n")
    with pytest.raises(DataFormatError, match=r"line 4, column 'label': label 1\.5 is not an integer >= 0") as info:
        read_svmlight(path)
    assert "2 such rows" in str(info.value)
