from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hybridrank import columns as C
from hybridrank.data._clicklogs import _impressions_frame
from hybridrank.data._logreaders import (
    LOG_READERS,
    ReadReport,
    read_baidu_ultr,
    read_click_log,
    read_impression_log,
    read_tiangong_st,
)
from hybridrank.errors import ConfigError, DataFormatError

DTYPES = {
    C.SESSION_ID: "int64",
    C.TS: "float64",
    C.QID: "str",
    C.DOCID: "str",
    C.POSITION: "int16",
    C.CLICK: "int8",
    C.DWELL_S: "float64",
}
HEADER = ",".join(C.IMPRESSION_COLUMNS)


def expected_log(rows: list[tuple[Any, ...]]) -> pd.DataFrame:
    cols: dict[str, list[object]] = {
        c: [r[k] for r in rows] for k, c in enumerate(C.IMPRESSION_COLUMNS)
    }
    return _impressions_frame(cols)


def assert_canonical(log: pd.DataFrame) -> None:
    assert list(log.columns) == list(C.IMPRESSION_COLUMNS)
    assert {c: str(t) for c, t in log.dtypes.items()} == DTYPES


def report(log: pd.DataFrame) -> ReadReport:
    rep = log.attrs["read_report"]
    assert isinstance(rep, ReadReport)
    return rep


def write_csv(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join([HEADER, *lines]) + "\n")
    return path


# ---------------------------------------------------------------------------- impressions

CANONICAL = expected_log(
    [
        (0, 10.0, "q1", "d1", 1, 1, 12.5),
        (0, 10.0, "q1", "d2", 2, 0, np.nan),
        (0, 10.0, "q1", "d3", 3, 1, np.nan),
        (7, np.nan, "q 2", "d1", 1, 0, np.nan),
        (12345678901234, 99.5, "q1", "d9", 1, 1, 0.0),
    ]
)


@pytest.mark.parametrize("name", ["log.parquet", "log.pq", "log.csv", "log.tsv", "log.csv.gz"])
def test_impression_log_round_trip(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    if name.endswith((".parquet", ".pq")):
        CANONICAL.to_parquet(path, index=False)
    else:
        CANONICAL.to_csv(path, index=False, sep="\t" if name.endswith(".tsv") else ",")
    log = read_impression_log(path)
    assert_canonical(log)
    pd.testing.assert_frame_equal(log, CANONICAL)
    assert report(log) == ReadReport(str(path), 5, 0, ())


def test_impression_csv_lenient_spellings(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text(
        "extra," + HEADER + "\n"
        "x,3.0,1.5,q1, d1 ,1,true,4\n"  # session 3.0, padded docid, boolean click
        "\n"  # blank lines are not records
        "y,3,1.5,q1,d2,2,False,7\n"  # dwell of an unclicked row becomes NaN
        "z,4,nan,q2,d1,1,0,NaN\n"
    )
    log = read_impression_log(path)
    expected = expected_log(
        [
            (3, 1.5, "q1", "d1", 1, 1, 4.0),
            (3, 1.5, "q1", "d2", 2, 0, np.nan),
            (4, np.nan, "q2", "d1", 1, 0, np.nan),
        ]
    )
    pd.testing.assert_frame_equal(log, expected)
    assert report(log).rows_read == 3


def test_impression_missing_columns(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("session_id,qid,docid,position\n0,q,d,1\n")
    with pytest.raises(
        DataFormatError, match=r"log\.csv.*missing columns \['ts', 'click', 'dwell_s'\]"
    ):
        read_impression_log(path)
    CANONICAL.drop(columns=[C.CLICK]).to_parquet(tmp_path / "log.parquet")
    with pytest.raises(DataFormatError, match=r"missing columns \['click'\]"):
        read_impression_log(tmp_path / "log.parquet")


GOOD = "0,1.0,q1,d1,1,1,2.0"


@pytest.mark.parametrize(
    ("bad", "column", "reason"),
    [
        ("x1,1.0,q1,d1,2,0,", "session_id", "not an integer"),
        ("0.5,1.0,q1,d1,2,0,", "session_id", "not an integer"),
        ("0,soon,q1,d1,2,0,", "ts", "not a number"),
        ("0,1.0,,d1,2,0,", "qid", "empty"),
        ("0,1.0,q1,,2,0,", "docid", "empty"),
        ("0,1.0,q1,d2,0,0,", "position", "not an integer in 1..32767"),
        ("0,1.0,q1,d2,2.5,0,", "position", "not an integer"),
        ("0,1.0,q1,d2,40000,0,", "position", "not an integer"),
        ("0,1.0,q1,d2,2,2,", "click", "not 0 or 1"),
        ("0,1.0,q1,d2,2,yes,", "click", "not 0 or 1"),
        ("0,1.0,q1,d2,2,1,-3", "dwell_s", "not a number >= 0"),
        ("0,1.0,q1,d2,2,1,long", "dwell_s", "not a number >= 0"),
        ("0,1.0,q1,d2,1,0,", "position", "shows position 1 twice"),
        ("0,1.0,q9,d2,2,0,", "qid", "rows of one session must share one qid"),
        ("0,,q1,d2,2,0,", "ts", "session 0 has no ts on this row but one on others"),
    ],
)
def test_impression_bad_row_csv(tmp_path: Path, bad: str, column: str, reason: str) -> None:
    path = write_csv(tmp_path / "clicks.csv", [GOOD, bad, "1,1.0,q1,d1,1,x,"])
    with pytest.raises(DataFormatError) as info:
        read_impression_log(path)
    err = info.value
    # The first bad row in the file is the one reported: line 3 (the header is line 1).
    assert (err.line, err.column) == (3, column)
    assert reason in err.reason
    assert "clicks.csv, line 3" in str(err)


def test_impression_too_many_fields(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "clicks.csv", [GOOD, "0,1.0,q1,d2,2,0,,extra", "0,1.0,q1,d3,3,7,"])
    with pytest.raises(DataFormatError, match=r"clicks\.csv, line 3: malformed line"):
        read_impression_log(path)
    log = read_impression_log(path, on_bad="skip")
    assert report(log).rows_skipped == 2
    assert report(log).first_errors[1].startswith(f"{path}, line 4, column 'click'")


@pytest.mark.parametrize("name", ["clicks.csv", "clicks.csv.gz"])
def test_impression_too_few_fields(tmp_path: Path, name: str) -> None:
    # pandas pads a short line with NaN; it is a malformed line, not "position nan".
    lines = [GOOD, "0,1.0,q1,d2,2,0,", "0,1.0,q1,d3", "1,2.0,q2,d1,1,0,"]
    path = tmp_path / name
    text = "\n".join([HEADER, *lines]) + "\n"
    if name.endswith(".gz"):
        import gzip

        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    with pytest.raises(DataFormatError) as info:
        read_impression_log(path)
    assert info.value.line == 4
    assert "malformed line: 4 fields where the header has 7" in str(info.value)
    log = read_impression_log(path, on_bad="skip")
    assert (report(log).rows_read, report(log).rows_skipped) == (4, 1)
    assert log[C.DOCID].tolist() == ["d1", "d2", "d1"]


def test_impression_line_without_the_trailing_dwell_is_read(tmp_path: Path) -> None:
    # A writer may leave the trailing empty dwell_s of an unclicked row out: not a fault.
    path = tmp_path / "clicks.csv"
    path.write_text("\n".join([HEADER, GOOD, "0,1.0,q1,d2,2,0", "0,1.0,q1,d3,3,0,"]) + "\n")
    log = read_impression_log(path)
    assert log[C.DOCID].tolist() == ["d1", "d2", "d3"] and log[C.CLICK].tolist() == [1, 0, 0]
    assert np.isnan(log[C.DWELL_S].iloc[1])


def test_impression_bad_row_parquet(tmp_path: Path) -> None:
    frame = CANONICAL.copy()
    frame[C.POSITION] = frame[C.POSITION].astype("int64")
    frame.loc[3, C.POSITION] = -1
    path = tmp_path / "log.parquet"
    frame.to_parquet(path, index=False)
    with pytest.raises(DataFormatError) as info:
        read_impression_log(path)
    assert (info.value.row, info.value.column, info.value.line) == (3, "position", None)
    assert "log.parquet, row 3, column 'position'" in str(info.value)


def test_impression_parquet_null_qid_and_float_click(tmp_path: Path) -> None:
    table = pa.table(
        {
            C.SESSION_ID: [0, 0, 1],
            C.TS: [0.0, 0.0, 1.0],
            C.QID: ["a", "a", None],
            C.DOCID: [1, 2, 3],  # integer ids become strings
            C.POSITION: [1, 2, 1],
            C.CLICK: [1.0, 0.0, 0.0],
            C.DWELL_S: [None, None, None],
        }
    )
    path = tmp_path / "log.parquet"
    pq.write_table(table, path)
    with pytest.raises(DataFormatError, match=r"row 2, column 'qid'"):
        read_impression_log(path)
    log = read_impression_log(path, on_bad="skip")
    pd.testing.assert_frame_equal(
        log, expected_log([(0, 0.0, "a", "1", 1, 1, np.nan), (0, 0.0, "a", "2", 2, 0, np.nan)])
    )


def test_impression_skip_counts(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write_csv(
        tmp_path / "clicks.csv",
        [
            GOOD,
            "0,1.0,q1,d2,1,0,",  # duplicate (session, position)
            "0,1.0,q1,d3,3,0,",
            "1,2.0,q2,d1,1,5,",  # bad click
            "0,2.0,q9,d4,4,0,",  # another qid in session 0
            "2,3.0,q4,d1,1,0,",
        ],
    )
    with caplog.at_level(logging.WARNING, logger="hybridrank.data._logreaders"):
        log = read_impression_log(path, on_bad="skip")
    rep = report(log)
    assert (rep.rows_read, rep.rows_skipped) == (6, 3)
    assert [e.split(",")[1].strip() for e in rep.first_errors] == ["line 3", "line 5", "line 6"]
    assert "skipped 3 bad of 6" in caplog.text
    assert log[C.DOCID].tolist() == ["d1", "d3", "d1"]
    assert log[C.SESSION_ID].tolist() == [0, 0, 2]


def test_impression_corrupt_parquet_and_suffix(tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"PAR1 not really parquet")
    with pytest.raises(DataFormatError, match=r"broken\.parquet: not a readable parquet file"):
        read_impression_log(path)
    other = tmp_path / "log.json"
    other.write_text("{}")
    with pytest.raises(DataFormatError, match=r"log\.json.*unknown suffix"):
        read_impression_log(other)
    with pytest.raises(FileNotFoundError):
        read_impression_log(tmp_path / "absent.csv")
    with pytest.raises(ConfigError, match="on_bad"):
        read_impression_log(other, on_bad="ignore")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- TianGong-ST

TIANGONG = """<?xml version="1.0" encoding="utf-8"?>
<tiangong>
<session num="7">
  <interaction num="1" starttime="100">
    <query_id>q1</query_id>
    <query>天工 查询</query>
    <results>
      <result rank="1"><docid>d1</docid><url>http://a</url><title>A</title></result>
      <result rank="2"><docid>d2</docid><url>http://b</url></result>
      <result rank="3"><docid>d3</docid></result>
    </results>
    <clicked>
      <click num="1"><rank>2</rank><timestamp>110</timestamp></click>
      <click num="2"><result_id>d3</result_id><timestamp>150</timestamp></click>
      <click num="3"><rank>2</rank><timestamp>155</timestamp></click>
    </clicked>
  </interaction>
  <query num="2">
    <query_id>q2</query_id>
    <query_text>second query</query_text>
    <results>
      <result rank="1" id="d7"><url>http://c</url></result>
      <result rank="2" id="d8"/>
    </results>
    <clicked>
      <click num="1"><rank>1</rank><result_id>d7</result_id></click>
    </clicked>
  </query>
</session>
<session num="8">
  <interaction num="1">
    <query_id>q3</query_id>
    <results>
      <result rank="1"><docid>d1</docid></result>
    </results>
    <clicked>
      <click num="1"><rank>1</rank><timestamp>2015-01-01T00:00:10</timestamp></click>
    </clicked>
  </interaction>
</session>
</tiangong>
"""


def test_tiangong_reader(tmp_path: Path) -> None:
    path = tmp_path / "sessions.xml"
    path.write_text(TIANGONG, encoding="utf-8")
    log = read_tiangong_st(path)
    assert_canonical(log)
    t3 = pd.Timestamp("2015-01-01T00:00:10", tz="UTC").timestamp()
    expected = expected_log(
        [
            (0, 100.0, "q1", "d1", 1, 0, np.nan),
            (0, 100.0, "q1", "d2", 2, 1, 40.0),  # 110 -> 150; its click at 155 is the last
            (0, 100.0, "q1", "d3", 3, 1, 5.0),  # 150 -> 155
            (1, np.nan, "q2", "d7", 1, 1, np.nan),
            (1, np.nan, "q2", "d8", 2, 0, np.nan),
            (2, t3, "q3", "d1", 1, 1, np.nan),  # no start time: its first click
        ]
    )
    pd.testing.assert_frame_equal(log, expected)
    assert report(log) == ReadReport(str(path), 3, 0, ())


def _one_query(body: str) -> str:
    return f"<log>\n<session num='1'>\n<interaction num='1'>\n{body}\n</interaction>\n</session>\n</log>\n"


@pytest.mark.parametrize(
    ("body", "line", "column", "reason"),
    [
        ("<results>\n<result rank='1' id='d1'/>\n</results>", 3, "query_id", "no <query_id>"),
        (
            "<query_id>q</query_id>\n<results>\n<result rank='0' id='d1'/>\n</results>",
            6,
            "rank",
            "rank '0'",
        ),
        (
            "<query_id>q</query_id>\n<results>\n<result rank='1' id='a'/>\n<result rank='1' id='b'/>\n</results>",
            7,
            "rank",
            "shows rank 1 twice",
        ),
        ("<query_id>q</query_id>\n<results>\n<result rank='1'/>\n</results>", 6, "docid", "no id"),
        (
            "<query_id>q</query_id>\n<results><result rank='1' id='a'/></results>\n"
            "<clicked>\n<click><rank>3</rank></click>\n</clicked>",
            7,
            "rank",
            "matches no result",
        ),
        (
            "<query_id>q</query_id>\n<results><result rank='1' id='a'/></results>\n"
            "<clicked>\n<click><result_id>zz</result_id></click>\n</clicked>",
            7,
            "result_id",
            "matches no result",
        ),
        (
            "<query_id>q</query_id>\n<results><result rank='1' id='a'/></results>\n"
            "<clicked>\n<click><rank>1</rank>\n<timestamp>noon-ish</timestamp></click>\n</clicked>",
            7,
            "timestamp",
            "not a number or date-time",
        ),
    ],
)
def test_tiangong_bad_query(tmp_path: Path, body: str, line: int, column: str, reason: str) -> None:
    path = tmp_path / "bad.xml"
    path.write_text(_one_query(body))
    with pytest.raises(DataFormatError) as info:
        read_tiangong_st(path)
    assert (info.value.line, info.value.column) == (line, column)
    assert reason in info.value.reason
    assert f"bad.xml, line {line}" in str(info.value)


def test_tiangong_skip_counts(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    xml = TIANGONG.replace("<query_id>q2</query_id>", "").replace(
        "<rank>1</rank><timestamp>2015", "<rank>4</rank><timestamp>2015"
    )
    xml = xml.replace(
        "</tiangong>", "<interaction><query_id>q4</query_id></interaction>\n</tiangong>"
    )
    path = tmp_path / "sessions.xml"
    path.write_text(xml, encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="hybridrank.data._logreaders"):
        log = read_tiangong_st(path, on_bad="skip")
    rep = report(log)
    assert (rep.rows_read, rep.rows_skipped, rep.rows_dropped) == (4, 2, 1)
    assert "line 18, column 'query_id'" in rep.first_errors[0]
    assert "line 37, column 'rank'" in rep.first_errors[1]
    assert log[C.QID].unique().tolist() == ["q1"]
    assert "skipped 2 bad of 4" in caplog.text


def test_tiangong_query_inside_interaction_is_text(tmp_path: Path) -> None:
    path = tmp_path / "sessions.xml"
    path.write_text(
        _one_query(
            "<query_id>q</query_id>\n<query><text>structured text</text></query>\n"
            "<results><result rank='1' id='a'/></results>"
        )
    )
    log = read_tiangong_st(path)
    assert (log[C.QID].tolist(), report(log).rows_read) == (["q"], 1)


def test_tiangong_malformed_xml(tmp_path: Path) -> None:
    path = tmp_path / "broken.xml"
    path.write_text("<log>\n<interaction>\n<query_id>q</query_id>\n</log>\n")
    with pytest.raises(DataFormatError, match=r"broken\.xml, line 4: malformed XML"):
        read_tiangong_st(path, on_bad="skip")


# ---------------------------------------------------------------------------- Baidu-ULTR


def write_baidu(path: Path, **columns: Any) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


def baidu_columns() -> dict[str, Any]:
    return {
        "query_id": ["1001", "1002", "1003"],
        "query_md5": ["m1", "m2", "m3"],
        "url_md5": [["u1", "u2", "u3"], ["u4"], ["u1", "u5"]],
        "position": [[1, 2, 11], [1], [2, 1]],
        "click": [[True, False, True], [False], [False, True]],
        "dwell_time": [[8.0, 0.0, 3.0], [0.0], [0.0, 2.5]],
        "displayed_time": [[1.0, 2.0, 3.0], [4.0], [5.0, 6.0]],
        "embedding": [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]],
    }


def test_baidu_reader(tmp_path: Path) -> None:
    path = write_baidu(tmp_path / "clicks.parquet", **baidu_columns())
    log = read_baidu_ultr(path)
    assert_canonical(log)
    expected = expected_log(
        [
            (0, np.nan, "1001", "u1", 1, 1, 8.0),
            (0, np.nan, "1001", "u2", 2, 0, np.nan),
            (1, np.nan, "1002", "u4", 1, 0, np.nan),
            (2, np.nan, "1003", "u1", 2, 0, np.nan),
            (2, np.nan, "1003", "u5", 1, 1, 2.5),
        ]
    )
    pd.testing.assert_frame_equal(log, expected)
    assert report(log) == ReadReport(str(path), 3, 0, (), rows_dropped=1)

    everything = read_baidu_ultr(path, max_position=None, dwell_column="displayed_time")
    assert len(everything) == 6
    assert everything[C.DWELL_S].tolist()[:3] == [1.0, pytest.approx(np.nan, nan_ok=True), 3.0]


def test_baidu_ids_and_session_column(tmp_path: Path) -> None:
    path = write_baidu(
        tmp_path / "clicks.parquet",
        session_id=[40, 41],
        query_id=[7, 8],
        query_document_id=[[101, 102], [103]],
        position=[[1, 2], [1]],
        click=[[0, 1], [1]],
    )
    log = read_baidu_ultr(path)
    expected = expected_log(
        [
            (40, np.nan, "7", "101", 1, 0, np.nan),
            (40, np.nan, "7", "102", 2, 1, np.nan),
            (41, np.nan, "8", "103", 1, 1, np.nan),
        ]
    )
    pd.testing.assert_frame_equal(log, expected)


def test_baidu_missing_and_wrong_columns(tmp_path: Path) -> None:
    cols = baidu_columns()
    del cols["click"], cols["position"]
    path = write_baidu(tmp_path / "a.parquet", **cols)
    with pytest.raises(
        DataFormatError, match=r"a\.parquet: missing columns \['position', 'click'\]"
    ):
        read_baidu_ultr(path)
    cols = baidu_columns()
    del cols["url_md5"]
    path = write_baidu(tmp_path / "b.parquet", **cols)
    with pytest.raises(DataFormatError, match=r"query_document_id', 'url_md5'"):
        read_baidu_ultr(path)
    cols = baidu_columns()
    cols["click"] = [1, 0, 1]
    path = write_baidu(tmp_path / "c.parquet", **cols)
    with pytest.raises(DataFormatError, match=r"column 'click': expected a list column"):
        read_baidu_ultr(path)
    with pytest.raises(DataFormatError, match="missing columns"):
        read_baidu_ultr(tmp_path / "a.parquet", dwell_column="dwell")
    with pytest.raises(ConfigError, match="max_position"):
        read_baidu_ultr(tmp_path / "a.parquet", max_position=0)


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("position", [1, 2], "position has 2 items but url_md5 has 1"),
        ("click", None, "click is null"),
        ("click", [2], "click 2 is not 0 or 1"),
        ("position", [0], "position 0 is not an integer"),
        ("url_md5", [None], "url_md5 is empty"),
        ("dwell_time", [-1.0], "dwell_time -1.0 is not a number >= 0"),
    ],
)
def test_baidu_bad_row(tmp_path: Path, column: str, value: Any, reason: str) -> None:
    cols = baidu_columns()
    cols["click"] = [[int(c) for c in clicks] for clicks in cols["click"]]
    cols[column][1] = value
    path = write_baidu(tmp_path / "clicks.parquet", **cols)
    with pytest.raises(DataFormatError) as info:
        read_baidu_ultr(path)
    assert (info.value.row, info.value.column) == (1, column)
    assert reason in info.value.reason
    assert "clicks.parquet, row 1" in str(info.value)

    log = read_baidu_ultr(path, on_bad="skip")
    rep = report(log)
    assert (rep.rows_read, rep.rows_skipped, rep.rows_dropped) == (3, 1, 1)
    assert log[C.SESSION_ID].unique().tolist() == [0, 2]


def test_baidu_duplicate_position(tmp_path: Path) -> None:
    cols = baidu_columns()
    cols["position"][2] = [1, 1]
    path = write_baidu(tmp_path / "clicks.parquet", **cols)
    with pytest.raises(
        DataFormatError, match=r"row 2, column 'position': session 2 shows position 1 twice"
    ):
        read_baidu_ultr(path)


def test_baidu_repeated_session_id_names_both_rows(tmp_path: Path) -> None:
    cols = {"session_id": [40, 41, 40], "query_id": [7, 8, 9],
            "query_document_id": [[101, 102], [103], [104]], "position": [[1, 2], [1], [1]],
            "click": [[0, 1], [1], [0]]}  # fmt: skip
    path = write_baidu(tmp_path / "clicks.parquet", **cols)
    with pytest.raises(
        DataFormatError,
        match=r"row 2, column 'session_id': session_id 40 is also on row 0; each row must be "
        "one query session",
    ):
        read_baidu_ultr(path)
    log = read_baidu_ultr(path, on_bad="skip")
    assert report(log).rows_skipped == 1 and log[C.SESSION_ID].unique().tolist() == [40, 41]


def test_baidu_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "clicks.parquet"
    path.write_bytes(b"nothing")
    with pytest.raises(DataFormatError, match=r"clicks\.parquet: not a readable parquet file"):
        read_baidu_ultr(path)


# ---------------------------------------------------------------------------- registry


def test_read_click_log_dispatch(tmp_path: Path) -> None:
    assert set(LOG_READERS) == {"impressions", "yandex", "clara2", "tiangong", "baidu-ultr"}
    csv = tmp_path / "log.csv"
    CANONICAL.to_csv(csv, index=False)
    pd.testing.assert_frame_equal(read_click_log(csv, "impressions", on_bad="skip"), CANONICAL)
    xml = tmp_path / "sessions.xml"
    xml.write_text(TIANGONG, encoding="utf-8")
    assert len(read_click_log(xml, "tiangong")) == 6
    parquet = write_baidu(tmp_path / "baidu.parquet", **baidu_columns())
    assert len(read_click_log(parquet, "baidu-ultr", max_position=None)) == 6
    yandex = tmp_path / "trainSample"
    yandex.write_text("7_1\tu1,u2 : u2\n")
    assert read_click_log(yandex, "yandex", on_bad="error")[C.CLICK].tolist() == [0, 1]


def test_read_click_log_errors(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"unknown click-log format 'aol'.*'baidu-ultr'.*'yandex'"
    ):
        read_click_log(tmp_path / "x", "aol")
    with pytest.raises(ConfigError, match=r"does not take \['on_bad'\].*stops at the first bad"):
        read_click_log(tmp_path / "x", "clara2", on_bad="skip")
    with pytest.raises(ConfigError, match=r"does not take \['max_position'\]"):
        read_click_log(tmp_path / "x", "tiangong", max_position=3)
