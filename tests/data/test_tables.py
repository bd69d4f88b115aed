from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from hybridrank.data import Dataset, data_row_lines, file_lines, read_table
from hybridrank.errors import ChecksumError, DataFormatError


def _frame() -> pd.DataFrame:
    return pd.DataFrame({"qid": [1, 1, 2], "docid": ["a", "b", "c"], "bm25": [1.0, 2.0, 3.0]})


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".tsv"])
def test_round_trip_keeps_ids_as_strings(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"t{suffix}"
    frame = _frame()
    if suffix == ".parquet":
        frame.to_parquet(path)
    else:
        frame.to_csv(path, sep="," if suffix == ".csv" else "\t", index=False)
    table = read_table(path, required=("qid", "docid"))
    assert table["qid"].tolist() == ["1", "1", "2"]
    assert table["bm25"].tolist() == [1.0, 2.0, 3.0]


def test_bad_tables_name_the_file(tmp_path: Path) -> None:
    good = tmp_path / "good.parquet"
    _frame().to_parquet(good)
    truncated = tmp_path / "truncated.parquet"
    truncated.write_bytes(good.read_bytes()[:-20])
    with pytest.raises(DataFormatError, match=r"truncated\.parquet.*truncated or written"):
        read_table(truncated)
    with pytest.raises(DataFormatError, match=r"good\.parquet.*missing columns \['text'\]"):
        read_table(good, required=("text",))
    with pytest.raises(DataFormatError, match="unknown table format"):
        read_table(_touch(tmp_path / "t.xlsx"))
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_table(tmp_path / "absent.parquet")
    ragged = tmp_path / "ragged.csv"
    ragged.write_text('qid,docid\n1,a\n2,"b\n')
    with pytest.raises(DataFormatError, match=r"ragged\.csv"):
        read_table(ragged)


def test_header_only_table_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("qid,docid,bm25\n")
    with pytest.raises(DataFormatError, match=r"empty\.csv: holds no rows"):
        read_table(path, required=("qid", "docid"))


def test_row_errors_name_the_csv_line(tmp_path: Path) -> None:
    # Blank lines are no rows; a quoted field may span two lines.
    path = tmp_path / "c.csv"
    path.write_text('qid,docid,note\n1,a,x\n\n1,b,"two\nlines"\n2,c,y\n')
    table = read_table(path)
    assert table["docid"].tolist() == ["a", "b", "c"]
    assert data_row_lines(path) == [2, 4, 6]
    with pytest.raises(DataFormatError) as info, file_lines(path):
        raise DataFormatError("bad", row=2, column="docid")
    assert (info.value.path, info.value.line, info.value.row) == (str(path), 6, None)
    assert str(info.value) == f"{path}, line 6, column 'docid': bad"
    # An error naming another file, or a line already, passes through unchanged.
    with pytest.raises(DataFormatError, match=r"^other\.csv, row 1"), file_lines(path):
        raise DataFormatError("bad", path="other.csv", row=1)
    # A parquet file keeps the 0-based row and gains its name.
    pq = tmp_path / "c.parquet"
    table.to_parquet(pq)
    assert data_row_lines(pq) is None
    with pytest.raises(DataFormatError, match=r"c\.parquet, row 2, column 'docid'"), file_lines(pq):
        raise DataFormatError("bad", row=2, column="docid")


def _touch(path: Path) -> Path:
    path.write_text("x")
    return path


def test_world_with_a_truncated_log_is_named(tmp_path: Path) -> None:
    frame = _frame().astype({"qid": str})
    splits = pd.DataFrame(
        {
            "qid": ["1", "2"],
            "freq": [1, 0],
            "bucket": ["low", "low"],
            "fold": [0, 1],
            "tuning": [False, False],
        }
    )
    log = pd.DataFrame(
        {
            "session_id": ["s1", "s1"],
            "ts": [0.0, 0.0],
            "qid": ["1", "1"],
            "docid": ["a", "b"],
            "position": [1, 2],
            "click": [1, 0],
            "dwell_s": [5.0, 0.0],
        }
    )
    run = Dataset(candidates=frame, splits=splits, impressions=log).write(tmp_path / "world")
    path = run / "impressions.parquet"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ChecksumError, match=r"impressions\.parquet"):
        Dataset.read(run)
    with pytest.raises(DataFormatError, match=r"impressions\.parquet"):
        Dataset.read(run, verify=False)


def test_delimited_rows_with_the_wrong_field_count_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "cut.csv"
    path.write_text("qid,docid,bm25\nq1,d1,1.5\nq1,d2\nq1,d3,0.5\n")
    with pytest.raises(DataFormatError, match=r"cut\.csv, line 3: 2 fields where the header has 3"):
        read_table(path)
    tsv = tmp_path / "extra.tsv"
    tsv.write_text("qid\tdocid\nq1\td1\textra\n")
    with pytest.raises(DataFormatError, match=r"line 2: 3 fields"):
        read_table(tsv)


def test_non_utf8_bytes_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes(b"qid,text\nq1,ok\nq2,caf\xe9\n")
    with pytest.raises(DataFormatError, match=r"latin\.csv, line 3: not UTF-8"):
        read_table(path)


def test_ids_that_read_like_missing_values_stay_ids(tmp_path: Path) -> None:
    """IDs "NA", "null", "nan" are ids in a CSV (as `dataset import` reads them); only an
    empty field is a missing id, and numeric columns keep pandas' missing values."""
    path = tmp_path / "t.csv"
    path.write_text("qid,docid,score\nq1,NA,1\nq1,null,2\nnan,nan,NA\nq1,,3\n")
    table = read_table(path)
    assert table["docid"].tolist()[:3] == ["NA", "null", "nan"] and pd.isna(table["docid"][3])
    assert table["qid"].tolist()[2] == "nan"
    assert pd.isna(table["score"][2]) and table["score"].dtype == "float64"


def test_numeric_ids_are_read_as_their_whole_number_text(tmp_path: Path) -> None:
    p = tmp_path / "c.parquet"
    pd.DataFrame({"qid": [7.0, 7.0], "docid": [1, 2], "x": [0.1, 0.2]}).to_parquet(p)
    table = read_table(p)
    assert table["qid"].tolist() == ["7", "7"] and table["docid"].tolist() == ["1", "2"]
    pd.DataFrame({"qid": [7.5], "docid": [1]}).to_parquet(p)
    with pytest.raises(DataFormatError, match=r"c\.parquet, row 0, column 'qid': id 7\.5"):
        read_table(p)
