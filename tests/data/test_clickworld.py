from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from hybridrank import columns as C
from hybridrank.data import (
    DEFAULT_EXAMINATION,
    SimulationConfig,
    bm25_candidates,
    ctr_by_rank,
    simulate_click_log,
    zipf_popularity,
)
from hybridrank.errors import ConfigError


@pytest.fixture(scope="module")
def candidates(tiny_collection) -> pd.DataFrame:
    return bm25_candidates(tiny_collection)


def test_deterministic_by_seed(candidates: pd.DataFrame) -> None:
    cfg = SimulationConfig(n_sessions=500, seed=3)
    a = simulate_click_log(candidates, cfg)
    b = simulate_click_log(candidates, cfg)
    pd.testing.assert_frame_equal(a, b)
    c = simulate_click_log(candidates, replace(cfg, seed=4))
    assert not a[C.CLICK].equals(c[C.CLICK]) or not a[C.QID].equals(c[C.QID])


def test_log_schema_and_invariants(candidates: pd.DataFrame) -> None:
    log = simulate_click_log(candidates, SimulationConfig(n_sessions=300, seed=1))
    assert list(log.columns) == list(C.IMPRESSION_COLUMNS)
    assert log[C.POSITION].between(1, 10).all()
    assert not log.duplicated([C.SESSION_ID, C.POSITION]).any()
    assert not log.duplicated([C.SESSION_ID, C.DOCID]).any()
    assert log[C.DWELL_S].isna().eq(log[C.CLICK] == 0).all()
    assert (log[C.DWELL_S].dropna() > 0).all()
    assert log.groupby(C.SESSION_ID)[C.QID].nunique().eq(1).all()
    assert log[C.TS].is_monotonic_increasing
    pairs = candidates.set_index([C.QID, C.DOCID]).index
    assert pd.MultiIndex.from_frame(log[[C.QID, C.DOCID]]).isin(pairs).all()


def test_swaps_log_more_than_one_order(candidates: pd.DataFrame) -> None:
    log = simulate_click_log(
        candidates, SimulationConfig(n_sessions=2000, seed=2, zipf_exponent=1.5)
    )
    top_query = log[C.QID].value_counts().index[0]
    orders = log[log[C.QID] == top_query].groupby(C.SESSION_ID)[C.DOCID].agg(tuple)
    assert orders.nunique() > 1
    none = simulate_click_log(candidates, SimulationConfig(n_sessions=300, seed=2, swap_prob=0.0))
    pos_rank = none.merge(candidates, on=[C.QID, C.DOCID])
    assert (pos_rank[C.POSITION] == pos_rank[C.BM25_RANK]).all()


def test_pbm_ctr_by_rank_follows_examination(candidates: pd.DataFrame) -> None:
    # Equal attractiveness for every grade and no noise: CTR(r) = exam(r) * a.
    a = 0.5
    cfg = SimulationConfig(
        n_sessions=20_000, seed=5, swap_prob=0.3, attractiveness=(a,), attractiveness_noise=0.0
    )
    log = simulate_click_log(candidates, cfg)
    ctr = ctr_by_rank(log)
    np.testing.assert_allclose(ctr, a * np.asarray(DEFAULT_EXAMINATION), atol=0.015)


def test_cascade_without_clicks_follows_examination(candidates: pd.DataFrame) -> None:
    # With tiny attractiveness the cascade rarely clicks, so the first click's
    # rank distribution follows the examination curve.
    cfg = SimulationConfig(
        n_sessions=20_000,
        seed=6,
        click_model="cascade",
        attractiveness=(0.02,),
        attractiveness_noise=0.0,
    )
    log = simulate_click_log(candidates, cfg)
    ctr = ctr_by_rank(log)
    np.testing.assert_allclose(ctr / ctr[0], DEFAULT_EXAMINATION, atol=0.12)


def test_cascade_stops_after_satisfying_click(candidates: pd.DataFrame) -> None:
    cfg = SimulationConfig(
        n_sessions=2000, seed=7, click_model="cascade", satisfaction=(1.0,), attractiveness=(0.6,)
    )
    log = simulate_click_log(candidates, cfg)
    assert log.groupby(C.SESSION_ID)[C.CLICK].sum().max() == 1


def test_attractiveness_rises_with_grade(candidates: pd.DataFrame) -> None:
    log = simulate_click_log(candidates, SimulationConfig(n_sessions=5000, seed=8))
    merged = log.merge(candidates[[C.QID, C.DOCID, C.Y_EXPERT]], on=[C.QID, C.DOCID])
    ctr = merged.groupby(C.Y_EXPERT)[C.CLICK].mean()
    assert ctr.is_monotonic_increasing


def test_zipf_makes_most_queries_rare() -> None:
    rng = np.random.default_rng(0)
    p = zipf_popularity(650, 1.0, rng)
    counts = np.bincount(rng.choice(650, size=5000, p=p), minlength=650)
    share_low = np.mean(counts <= 2)
    assert 0.4 < share_low < 0.65
    assert np.sum(counts > 20) > 10


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="click_model"):
        SimulationConfig(click_model="ubm")
    with pytest.raises(ConfigError, match="examination"):
        SimulationConfig(examination=(1.0, 0.5))
    with pytest.raises(ConfigError, match="probabilities"):
        SimulationConfig(attractiveness=(1.5,))
    with pytest.raises(ConfigError, match="unknown keys"):
        SimulationConfig.from_dict({"sessions": 3})
    cfg = SimulationConfig.from_dict({"examination": list(DEFAULT_EXAMINATION), "n_sessions": 10})
    assert cfg.examination == DEFAULT_EXAMINATION
    assert SimulationConfig.from_dict(cfg.to_dict()) == cfg
