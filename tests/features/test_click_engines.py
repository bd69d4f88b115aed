"""Every click-feature engine gives the same features on the same log.

The pandas engine is the reference; DuckDB (in memory and from parquet files,
out of core) and Dask (in memory and from parquet) must match it on every
feature: keys and counts exactly, rates to 1e-12 (float sums may add in
another order).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybridrank import columns as C
from hybridrank.errors import ConfigError
from hybridrank.features import (
    CLICK_FEATURES,
    DOC_FEATURES,
    PAIR_FEATURES,
    QUERY_FEATURES,
    ClickFeatureConfig,
    ClickFeatures,
    compute_click_features,
    compute_click_features_parquet,
)

EXAM = (1.0, 0.7, 0.45, 0.35, 0.25)
COUNTS = ("qd_impressions", "qd_clicks", "doc_impressions", "doc_clicks", "doc_n_queries")
COUNTS += ("q_sessions",)
LEVELS = {"pairs": PAIR_FEATURES, "docs": DOC_FEATURES, "queries": QUERY_FEATURES}


def config(engine: str = "pandas", **kwargs: object) -> ClickFeatureConfig:
    return ClickFeatureConfig(examination=EXAM, prior_strength=3.0, engine=engine, **kwargs)  # type: ignore[arg-type]


def make_log(n_sessions: int = 2000, *, seed: int = 0) -> pd.DataFrame:
    """A log with the awkward cases: sessions that show two queries, sessions
    without a click, clicks without a dwell, positions beyond the examination
    curve, a repeated position, and rows in no particular order."""
    rng = np.random.default_rng(seed)
    n_results = rng.integers(3, 15, n_sessions)
    p = np.arange(1, 121, dtype=np.float64) ** -1.0
    q = rng.choice(120, size=n_sessions, p=p / p.sum())
    qq = np.repeat(q, n_results)
    pos = np.concatenate([np.arange(1, k + 1) for k in n_results])
    session = np.repeat(np.arange(n_sessions), n_results)
    # Every 50th session's second half shows another query.
    second = (session % 50 == 7) & (pos > np.repeat(n_results, n_results) // 2)
    qq = np.where(second, (qq + 1) % 120, qq)
    doc = (qq * 7 + rng.integers(0, 12, qq.size)) % 900
    click = (rng.random(qq.size) < 0.4 / pos).astype(np.int64)
    dwell = np.where(click == 1, rng.lognormal(3, 1, qq.size), np.nan)
    dwell[(click == 1) & (rng.random(qq.size) < 0.1)] = np.nan
    log = pd.DataFrame(
        {
            C.SESSION_ID: session,
            C.TS: session.astype(np.float64),
            C.QID: np.char.add("q", qq.astype(str)),
            C.DOCID: np.char.add("d", doc.astype(str)),
            C.POSITION: pos,
            C.CLICK: click,
            C.DWELL_S: dwell,
        }
    )
    log.loc[log.index[5], C.POSITION] = log.loc[log.index[4], C.POSITION]  # a repeated position
    return log.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def assert_same_features(
    expected: ClickFeatures, got: ClickFeatures, *, exact: bool = False
) -> None:
    """Same keys, every feature; counts exactly, rates to 1e-12 (or everything exactly)."""
    for level, names in LEVELS.items():
        a, b = getattr(expected, level), getattr(got, level)
        key = [k for k in (C.QID, C.DOCID) if k in a.columns]
        assert list(a.columns) == [*key, *names], level
        assert list(b.columns) == [*key, *names], level
        assert (b.dtypes[list(names)] == np.float64).all(), level
        a = a.sort_values(key).reset_index(drop=True)
        b = b.sort_values(key).reset_index(drop=True)
        counts = [c for c in names if c in COUNTS]
        pd.testing.assert_frame_equal(a[key + counts], b[key + counts], check_exact=True)
        if exact:
            pd.testing.assert_frame_equal(a, b, check_exact=True)
        else:
            pd.testing.assert_frame_equal(a, b, rtol=1e-12, atol=0)


@pytest.fixture(scope="module")
def log() -> pd.DataFrame:
    return make_log()


@pytest.fixture(scope="module")
def reference(log: pd.DataFrame) -> ClickFeatures:
    return compute_click_features(log, config("pandas"))


@pytest.fixture(scope="module")
def log_dir(log: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The log in three files of small row groups: sessions cut across both."""
    directory = tmp_path_factory.mktemp("log") / "impressions"
    directory.mkdir()
    for i, part in enumerate(np.array_split(np.arange(len(log)), 3)):
        log.iloc[part].to_parquet(directory / f"part-{i}.parquet", index=False, row_group_size=997)
    return directory


def test_features_cover_every_click_feature(reference: ClickFeatures) -> None:
    names = [c for level in LEVELS for c in getattr(reference, level).columns]
    assert set(CLICK_FEATURES) <= set(names)


@pytest.mark.parametrize("engine", ["duckdb", "auto"])
def test_duckdb_in_memory_equals_pandas(
    log: pd.DataFrame, reference: ClickFeatures, engine: str
) -> None:
    assert_same_features(reference, compute_click_features(log, config(engine)))


def test_duckdb_parquet_equals_pandas(log_dir: Path, reference: ClickFeatures) -> None:
    got = compute_click_features_parquet(log_dir, config("auto"), dask=False)
    assert_same_features(reference, got)


def test_dask_equals_pandas(log: pd.DataFrame, reference: ClickFeatures) -> None:
    dd = pytest.importorskip("dask.dataframe")
    lazy = compute_click_features(dd.from_pandas(log, npartitions=5), config("auto"))
    got = ClickFeatures(
        pairs=lazy.pairs.compute(), docs=lazy.docs.compute(), queries=lazy.queries.compute()
    )
    assert_same_features(reference, got)
    # A pandas log given to the Dask engine comes back computed.
    assert_same_features(reference, compute_click_features(log, config("dask")))


def test_dask_parquet_equals_pandas(log_dir: Path, reference: ClickFeatures) -> None:
    pytest.importorskip("dask.dataframe")
    got = compute_click_features_parquet(
        log_dir, config("auto"), dask=True, partition_rows=2_000, scheduler="threads"
    )
    assert_same_features(reference, got)


def test_duckdb_is_deterministic(log: pd.DataFrame, log_dir: Path) -> None:
    """Exact float sums: the same features, bit for bit, whatever the threads, the row
    order or the input (frame or files)."""
    one = compute_click_features(log, config("duckdb", threads=1))
    shuffled = log.sample(frac=1.0, random_state=1).reset_index(drop=True)
    for other in (
        compute_click_features(shuffled, config("duckdb", threads=2)),
        compute_click_features_parquet(log_dir, config("duckdb", threads=3), dask=False),
    ):
        for level in LEVELS:
            pd.testing.assert_frame_equal(getattr(one, level), getattr(other, level))


def test_duckdb_out_of_core_settings(log_dir: Path, tmp_path: Path, log: pd.DataFrame) -> None:
    spill = tmp_path / "spill"
    spill.mkdir()
    cfg = config("duckdb", memory_limit="64MB", temp_directory=str(spill), threads=2)
    got = compute_click_features_parquet(log_dir, cfg, dask=False)
    assert_same_features(compute_click_features(log, config("duckdb")), got, exact=True)
    assert not list(spill.iterdir()), "the spill directory is removed after the call"


def test_integer_ids_become_the_same_strings(log: pd.DataFrame) -> None:
    ints = log.assign(
        **{
            C.QID: log[C.QID].str.slice(1).astype(np.int64),
            C.DOCID: log[C.DOCID].str.slice(1).astype(np.int64),
        }
    )
    expected = compute_click_features(ints, config("pandas"))
    assert expected.pairs[C.QID].iloc[0].isdigit()
    assert_same_features(expected, compute_click_features(ints, config("duckdb")))


def test_log_without_clicks(log: pd.DataFrame) -> None:
    quiet = log.assign(**{C.CLICK: 0, C.DWELL_S: np.nan})
    assert_same_features(
        compute_click_features(quiet, config("pandas")),
        compute_click_features(quiet, config("duckdb")),
    )


_rows = st.tuples(
    st.integers(0, 5),  # session
    st.sampled_from(["q1", "q2", "q3"]),
    st.sampled_from(["a", "b", "c", "d"]),
    st.integers(1, 8),  # position, beyond the curve's end too
    st.integers(0, 1),  # click
    # dwell: DuckDB sums dwells in units of 1e-18 s, so none below a millisecond here
    st.one_of(st.none(), st.floats(0, 3600, allow_nan=False).map(lambda s: round(s, 3))),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(_rows, min_size=1, max_size=40))
def test_duckdb_equals_pandas_on_any_log(rows: list[tuple]) -> None:
    log = pd.DataFrame(
        [(s, float(s), q, d, p, c, np.nan if w is None else w) for s, q, d, p, c, w in rows],
        columns=list(C.IMPRESSION_COLUMNS),
    )
    assert_same_features(
        compute_click_features(log, config("pandas")),
        compute_click_features(log, config("duckdb", threads=1)),
    )


def test_engine_options_are_checked(log: pd.DataFrame, log_dir: Path) -> None:
    cfg = ClickFeatureConfig.from_dict({"engine": "duckdb", "memory_limit": "1GB", "threads": 2})
    assert cfg.engine == "duckdb" and cfg.to_dict()["memory_limit"] == "1GB"
    with pytest.raises(ConfigError, match="engine"):
        ClickFeatureConfig.from_dict({"engine": "spark"})
    with pytest.raises(ConfigError, match="threads"):
        ClickFeatureConfig(threads=0)
    with pytest.raises(ConfigError, match="contradicts"):
        compute_click_features_parquet(log_dir, config("dask"), dask=False)
    with pytest.raises(ConfigError, match="contradicts"):
        compute_click_features_parquet(log_dir, config("duckdb"), dask=True)
    dd = pytest.importorskip("dask.dataframe")
    with pytest.raises(ConfigError, match="Dask log"):
        compute_click_features(dd.from_pandas(log, npartitions=2), config("duckdb"))
