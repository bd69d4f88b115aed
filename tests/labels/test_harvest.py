"""Examination harvested from the log's interventions."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from hybridrank import columns as C
from hybridrank.errors import DataFormatError
from hybridrank.labels import harvest_examination

TRUE_EXAM = np.array([1.0, 0.7, 0.45, 0.33, 0.25, 0.19, 0.15, 0.12])


def pbm_log(
    n_sessions: int = 40_000,
    n_queries: int = 150,
    page: int = 8,
    *,
    swap: float = 0.3,
    seed: int = 0,
) -> pd.DataFrame:
    """A fixed order per query, adjacent results swapped at random, PBM clicks.

    Documents' attractiveness falls with their place in the fixed order, so a
    click-through rate by position alone mixes relevance into examination.
    """
    rng = np.random.default_rng(seed)
    attract = np.sort(rng.uniform(0.05, 0.9, (n_queries, page)), axis=1)[:, ::-1]
    query = rng.integers(0, n_queries, n_sessions)
    slots = np.tile(np.arange(page), (n_sessions, 1))
    for i in range(page - 1):
        swap_here = rng.random(n_sessions) < swap
        a, b = slots[swap_here, i].copy(), slots[swap_here, i + 1].copy()
        slots[swap_here, i], slots[swap_here, i + 1] = b, a
    shown_attract = attract[query[:, None], slots]
    click = rng.random((n_sessions, page)) < TRUE_EXAM[None, :page] * shown_attract
    return pd.DataFrame(
        {
            C.SESSION_ID: np.repeat(np.arange(n_sessions), page),
            C.QID: np.repeat(query, page).astype(str),
            C.DOCID: (np.repeat(query, page) * 100 + slots.ravel()).astype(str),
            C.POSITION: np.tile(np.arange(1, page + 1), n_sessions),
            C.CLICK: click.ravel().astype(np.int64),
        }
    )


def test_recovers_the_examination_curve_where_ctr_by_position_does_not() -> None:
    log = pbm_log()
    found = harvest_examination(log, max_position=8)
    curve = found.curve
    assert curve.index.tolist() == list(range(1, 9))
    assert curve.loc[1] == pytest.approx(1.0)
    assert np.abs(curve.to_numpy() - TRUE_EXAM).max() < 0.03
    # The naive estimate (click rate by position) mixes relevance in and is far off.
    naive = log.groupby(C.POSITION)[C.CLICK].mean().to_numpy()
    assert np.abs(naive / naive[0] - TRUE_EXAM).max() > 0.1
    # Adjacent swaps: every neighbouring position pair shares documents.
    ratios = found.ratios
    adjacent = ratios[ratios["l"] == ratios["k"] + 1]
    assert adjacent["k"].tolist() == list(range(1, 8))
    assert (adjacent["pairs"] > 0).all() and (ratios["weight"] > 0).all()
    assert adjacent["ratio"].to_numpy() == pytest.approx(TRUE_EXAM[1:] / TRUE_EXAM[:-1], abs=0.05)


def test_a_ranker_that_never_varies_its_order_is_refused() -> None:
    log = pbm_log(n_sessions=2_000, swap=0.0)
    with pytest.raises(DataFormatError, match="never varied its order"):
        harvest_examination(log, max_position=8, path="logs/fixed.parquet")


def test_positions_no_pair_links_to_the_top_are_unknown(caplog) -> None:
    log = pbm_log(n_sessions=5_000, page=4, swap=0.0)
    # Relabel positions 1 and 2 in half the sessions (the clicks stay as they were: only
    # the links matter here): positions 3 and 4 never share a document with them.
    rng = np.random.default_rng(1)
    sessions = log[C.SESSION_ID].to_numpy()
    flip = rng.random(sessions.max() + 1) < 0.5
    top = log[C.POSITION].isin([1, 2]).to_numpy() & flip[sessions]
    log.loc[top, C.POSITION] = 3 - log.loc[top, C.POSITION]
    with caplog.at_level(logging.WARNING, logger="hybridrank.labels._harvest"):
        curve = harvest_examination(log, max_position=4).curve
    assert np.isfinite(curve.loc[2])
    assert curve.loc[[3, 4]].isna().all()
    assert "positions [3, 4]" in caplog.text


def test_a_malformed_log_is_refused_by_row_and_column() -> None:
    log = pbm_log(n_sessions=200)
    log.loc[5, C.CLICK] = 2
    with pytest.raises(DataFormatError, match="click"):
        harvest_examination(log)
    with pytest.raises(ValueError, match="max_position"):
        harvest_examination(pbm_log(n_sessions=10), max_position=1)
