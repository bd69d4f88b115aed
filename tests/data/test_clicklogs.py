from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hybridrank import columns as C
from hybridrank.data import ctr_by_rank, examination_from_ctr, read_clara2, read_yandex_sample
from hybridrank.errors import DataFormatError


def test_yandex_reader(tmp_path: Path) -> None:
    path = tmp_path / "trainSample"
    path.write_text(
        "7_1\tu1,u2,u3 : u2 , u2; 7_1\tu1,u2,u3 :; 8_1\tu3,u1,u2 : u3\n9_1\tu5,u6,u7 : u9;\n"
    )
    log = read_yandex_sample(path)
    assert list(log.columns) == list(C.IMPRESSION_COLUMNS)
    assert log[C.SESSION_ID].nunique() == 4
    first = log[log[C.SESSION_ID] == 0]
    assert first[C.CLICK].tolist() == [0, 1, 0]  # a repeated click counts once
    assert log[log[C.SESSION_ID] == 3][C.CLICK].sum() == 0  # clicked URL not shown
    np.testing.assert_allclose(ctr_by_rank(log, max_rank=3), [0.25, 0.25, 0.0])
    assert log.attrs["clicks_dropped"] == 1  # u9: counted, never silent


def test_yandex_empty_slot_keeps_the_positions_after_it(tmp_path: Path) -> None:
    path = tmp_path / "trainSample"
    path.write_text("7_1\tu1,,u3 : u3\n")
    log = read_yandex_sample(path)
    assert log[C.DOCID].tolist() == ["u1", "u3"]
    assert log[C.POSITION].tolist() == [1, 3] and log[C.CLICK].tolist() == [0, 1]


def test_readers_that_drop_clicks_report_them_to_the_import(tmp_path: Path) -> None:
    from hybridrank.data import read_click_log
    from hybridrank.pipelines import FoldConfig, ImportConfig, import_dataset

    path = tmp_path / "trainSample"
    sessions = [f"q{i}\tu{i},v{i},w{i} : v{i}" for i in range(6)] + ["q0\tu0,v0,w0 : x,u0,u0"]
    path.write_text(";".join(sessions) + "\n")
    report = read_click_log(path, "yandex").attrs["read_report"]
    assert (report.rows_read, report.clicks_dropped, report.clicks_merged) == (7, 1, 1)
    config = ImportConfig(log=str(path), log_format="yandex", folds=FoldConfig(n_folds=2))
    source = import_dataset(config).source["dropped"]
    dropped = source["log_clicks_without_impression"]
    assert dropped["count"] == 1 and "no impression" in dropped["why"]
    assert source["log_clicks_repeated"]["count"] == 1


def test_yandex_bad_record(tmp_path: Path) -> None:
    path = tmp_path / "bad"
    path.write_text("7_1\tu1,u2 : u1\n7_1 u1 u2\n")
    with pytest.raises(DataFormatError, match="line 2"):
        read_yandex_sample(path)


def _q(session: int, time: int, query: str, *urls: str) -> str:
    """A CLARA2 query row: SESSION TIME Q QUERY_ID REGION and ten URL slots."""
    slots = list(urls) + [""] * (10 - len(urls))
    return "\t".join([str(session), str(time), "Q", query, "0.0", *slots])


def test_clara2_reader(tmp_path: Path) -> None:
    path = tmp_path / "log"
    rows = [
        "# header",
        _q(0, 0, "11", "a", "b", "c"),  # TIME in milliseconds
        "0\t10000\tC\tb",
        "0\t40000\tC\ta",
        "0\t45000\tC\ta",  # a repeated click on the same result: folded and counted
        _q(1, 5000, "12", "c", "d", "e"),
        "1\t7000\tC\tz",  # matches no impression: skipped and counted
    ]
    path.write_text("\n".join(rows) + "\n")
    log = read_clara2(path)
    assert len(log) == 6 and log.attrs["clicks_dropped"] == 1
    assert log.attrs["clicks_merged"] == 1
    # An empty URL slot shows nothing and keeps the positions after it.
    path.write_text(_q(0, 0, "11", "a", "", "c") + "\n0\t5\tC\tc\n")
    gap = read_clara2(path)
    assert gap[C.DOCID].tolist() == ["a", "c"] and gap[C.POSITION].tolist() == [1, 3]
    assert gap[C.CLICK].tolist() == [0, 1]
    s0 = log[log[C.SESSION_ID] == 0]
    assert s0[C.CLICK].tolist() == [1, 1, 0]
    assert s0[C.DWELL_S].iloc[1] == 30.0  # time to the next event, in seconds
    assert log[C.TS].tolist() == [0.0] * 3 + [5.0] * 3
    assert np.isnan(s0[C.DWELL_S].iloc[0])  # last event of the session
    assert log[C.QID].iloc[3] == "12"


def test_clara2_bad_row(tmp_path: Path) -> None:
    path = tmp_path / "log"
    path.write_text(_q(0, 0, "11", "a") + "\n0\tx\tC\ta\n")
    with pytest.raises(DataFormatError, match="line 2"):
        read_clara2(path)
    path.write_text("0\t0\tX\t11\n")
    with pytest.raises(DataFormatError, match="unknown row type"):
        read_clara2(path)
    # A query row with 7 URL slots (a lost tab, a cut line): named, not read short.
    path.write_text(_q(0, 0, "11", "a") + "\n" + "\t".join(["1", "0", "Q", "12", "0.0"] + ["u"] * 7) + "\n")
    with pytest.raises(DataFormatError, match="has 12 fields, expected 15") as info:
        read_clara2(path)
    assert info.value.line == 2


def test_yandex_repeated_clicks_are_counted(tmp_path: Path) -> None:
    path = tmp_path / "trainSample"
    path.write_text("7_1\tu1,u2,u3 : u2,u2,u3,u9,u9\n")
    log = read_yandex_sample(path)
    assert log[C.CLICK].tolist() == [0, 1, 1]
    assert (log.attrs["clicks_dropped"], log.attrs["clicks_merged"]) == (1, 1)


def test_examination_from_ctr() -> None:
    np.testing.assert_allclose(examination_from_ctr([0.4, 0.2, 0.1]), [1.0, 0.5, 0.25])
    with pytest.raises(ValueError):
        examination_from_ctr([0.0, 0.1])
    assert np.isnan(ctr_by_rank(pd.DataFrame({C.POSITION: [1], C.CLICK: [1]}), max_rank=2)[1])
