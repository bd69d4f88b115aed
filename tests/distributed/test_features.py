"""Click features from a parquet log on Dask equal the in-memory pandas ones; bad files are named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hybridrank import columns as C
from hybridrank.errors import DataFormatError
from hybridrank.features import (
    ClickFeatureConfig,
    ClickFeatures,
    compute_click_features,
    compute_click_features_parquet,
)

from .conftest import make_impressions, write_log

pytest.importorskip("dask.dataframe")
CFG = ClickFeatureConfig(examination=(1.0, 0.7, 0.45, 0.35, 0.25), prior_strength=3.0)


def assert_same_features(expected: ClickFeatures, got: ClickFeatures) -> None:
    """Keys and counts identical; rates equal to 1e-12 (sums may add in another order)."""
    for level in ("pairs", "docs", "queries"):
        a, b = getattr(expected, level), getattr(got, level)
        key = [k for k in (C.QID, C.DOCID) if k in a.columns]
        a = a.sort_values(key).reset_index(drop=True)
        b = b.sort_values(key).reset_index(drop=True)
        assert list(b.columns) == list(a.columns), level
        counts = [c for c in a.columns if c.endswith(("_impressions", "_clicks", "_sessions"))]
        pd.testing.assert_frame_equal(a[key + counts], b[key + counts], check_exact=True)
        pd.testing.assert_frame_equal(a, b, rtol=1e-12, atol=0)


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory) -> Path:
    return write_log(make_impressions(), tmp_path_factory.mktemp("log") / "impressions")


def test_parquet_pandas_path_equals_in_memory(log_dir: Path) -> None:
    log = pd.concat([pd.read_parquet(f) for f in sorted(log_dir.glob("*.parquet"))])
    expected = compute_click_features(log.reset_index(drop=True), CFG)
    got = compute_click_features_parquet(log_dir, CFG, dask=False)
    for level in ("pairs", "docs", "queries"):
        pd.testing.assert_frame_equal(getattr(expected, level), getattr(got, level))


def test_dask_threads_equal_pandas(log_dir: Path) -> None:
    expected = compute_click_features_parquet(log_dir, CFG, dask=False)
    # Tiny partitions: sessions are cut across partitions and files.
    got = compute_click_features_parquet(log_dir, CFG, partition_rows=1_000, scheduler="threads")
    assert_same_features(expected, got)


@pytest.mark.slow
def test_dask_cluster_equals_pandas(log_dir: Path, client) -> None:
    expected = compute_click_features_parquet(log_dir, CFG, dask=False)
    got = compute_click_features_parquet(log_dir, CFG, partition_rows=3_000)  # the active client
    assert_same_features(expected, got)


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _scramble_middle(path: Path) -> None:
    """Garbage in the column data, footer intact: only reading the row groups fails."""
    data = bytearray(path.read_bytes())
    start = 8
    data[start : len(data) // 2] = np.random.default_rng(0).bytes(len(data) // 2 - start)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("dask", [False, True])
def test_truncated_file_is_named(tmp_path: Path, dask: bool) -> None:
    log_dir = write_log(make_impressions(300), tmp_path / "log")
    bad = log_dir / "part-1.parquet"
    _truncate(bad)
    with pytest.raises(DataFormatError, match=r"part-1\.parquet.*corrupt or truncated"):
        compute_click_features_parquet(log_dir, CFG, dask=dask, scheduler="threads")


@pytest.mark.parametrize("dask", [False, True])
def test_corrupt_row_groups_are_named(tmp_path: Path, dask: bool) -> None:
    log_dir = write_log(make_impressions(300), tmp_path / "log", n_files=2, row_group=100_000)
    bad = log_dir / "part-0.parquet"
    _scramble_middle(bad)
    with pytest.raises(DataFormatError, match=r"part-0\.parquet.*corrupt or truncated"):
        compute_click_features_parquet(log_dir, CFG, dask=dask, scheduler="threads")


def test_missing_log_and_columns(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope"):
        compute_click_features_parquet(tmp_path / "nope", CFG)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no \*\.parquet"):
        compute_click_features_parquet(tmp_path / "empty", CFG)
    f = tmp_path / "log.parquet"
    make_impressions(50).drop(columns=[C.DWELL_S]).to_parquet(f)
    with pytest.raises(DataFormatError, match=r"log\.parquet.*dwell"):
        compute_click_features_parquet(f, CFG)
