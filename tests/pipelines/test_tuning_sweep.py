"""The stacker against the number of labelled tuning queries (``experiment.tuning_sweep``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from hybridrank import columns as C
from hybridrank.data import TUNING
from hybridrank.ensemble import StackerConfig
from hybridrank.pipelines._tuning_sweep import (
    nested_tuning_sets,
    stratified_order,
    tuning_sweep,
    tuning_sweep_markdown,
)
from tests.conftest import make_scored_table


def _scored(n_q: int = 200, per: int = 8, seed: int = 0) -> pd.DataFrame:
    return make_scored_table(n_q, per, 40, seed)


def test_stratified_order_keeps_every_prefix_in_proportion() -> None:
    buckets = pd.Series(["low"] * 60 + ["mid"] * 30 + ["high"] * 10, index=[f"q{i}" for i in range(100)])
    order = stratified_order(buckets, np.random.default_rng(0))
    assert sorted(order) == sorted(buckets.index)
    first = buckets[order[:20]].value_counts()
    assert first["low"] == 12 and first["mid"] == 6 and first["high"] == 2


def test_nested_sets_start_from_the_tuning_set_and_add_evaluation_queries() -> None:
    table = _scored()
    sets, extra = nested_tuning_sets(table, [20, 40, 100], seed=1)
    tuning = set(table.loc[table[TUNING], C.QID])
    assert sets[20] < sets[40] < sets[100]
    assert sets[40] == tuning and sets[20] <= tuning
    assert len(sets[100]) == 100 and extra == sets[100] - tuning and not extra & tuning


def test_sweep_scores_every_size_on_the_same_queries() -> None:
    tables = {0: _scored(seed=0), 1: _scored(seed=1)}
    sweep = tuning_sweep(tables, [20, 40, 100], StackerConfig(n_trials=15, anchors=("famol",)), "llm_gbdt")
    pooled = sweep[sweep["seed"] == "all"]
    assert set(pooled["n_tuning"]) == {20, 40, 100}
    assert set(pooled["system"]) == {"gated_stacker", "famol", "click_gbdt"}
    assert pooled["n_eval"].nunique() == 1  # the same evaluation queries for every size
    # References do not depend on the tuning set; the stacker's gate rise is reported.
    famol = pooled[pooled["system"] == "famol"]["ndcg@10"]
    assert np.allclose(famol, famol.iloc[0])
    assert pooled[pooled["system"] == "gated_stacker"]["gate_rise"].notna().all()
    text = tuning_sweep_markdown(sweep)
    assert "100 tuning queries" in text and "gate rise" in text


def test_a_size_that_would_leave_no_evaluation_is_left_out(caplog) -> None:  # type: ignore[no-untyped-def]
    """CISI has 75 queries with a relevant grade: a size of 150 took every one of them,
    and the sweep compared its sizes on no query at all."""
    table = _scored(n_q=60)
    relevant = int((table.groupby(C.QID)[C.Y_EXPERT].max() > 0).sum())
    tuning = int(table.loc[table[TUNING]].groupby(C.QID)[C.Y_EXPERT].max().gt(0).sum())
    limit = tuning + (relevant - tuning) // 2
    with caplog.at_level("WARNING"):
        sets, _ = nested_tuning_sets(table, [20, limit, 150], seed=0)
    assert sorted(sets) == [20, limit] and "sizes [150] left out" in caplog.text
    sweep = tuning_sweep({0: table}, [20, 150], StackerConfig(n_trials=5), "llm_gbdt")
    pooled = sweep[sweep["seed"] == "all"]
    assert set(pooled["n_tuning"]) == {20} and (pooled["n_eval"] > 0).all()
    empty = tuning_sweep({0: table}, [150], StackerConfig(n_trials=5), "llm_gbdt")
    assert empty.empty
