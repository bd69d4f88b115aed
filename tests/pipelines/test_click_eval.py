"""Click-based evaluation on held-out sessions, and PPI per bucket, on a small simulated world."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from hybridrank import columns as C
from hybridrank.data import SimulationConfig
from hybridrank.errors import DataFormatError
from hybridrank.pipelines import (
    ClickEvalConfig,
    WorldConfig,
    build_table,
    build_world,
    evaluate_on_clicks,
    ppi_report,
    split_log,
)
from tests.conftest import make_collection


@pytest.fixture(scope="module")
def world():
    config = WorldConfig(simulation=SimulationConfig(n_sessions=1200, seed=1))
    return build_world(
        config, collection=make_collection(n_queries=60, seed=4), stopwords=frozenset()
    )


def test_split_holds_out_the_latest_sessions(world) -> None:
    train, test, how = split_log(world.impressions, ClickEvalConfig(holdout=0.25))
    assert "time" in how
    first = world.impressions.groupby(C.SESSION_ID)[C.TS].min()
    assert first[test[C.SESSION_ID].unique()].min() >= first[train[C.SESSION_ID].unique()].max()
    assert set(train[C.SESSION_ID]).isdisjoint(test[C.SESSION_ID])
    n = world.impressions[C.SESSION_ID].nunique()
    assert test[C.SESSION_ID].nunique() == round(0.25 * n)


def test_click_evaluation_without_grades(world) -> None:
    no_grades = replace(world, qrels=None, candidates=world.candidates.drop(columns=[C.Y_EXPERT]))
    result = evaluate_on_clicks(no_grades, ClickEvalConfig(holdout=0.2), progress=False)
    systems = set(result.metric["system"])
    assert {"click_gbdt", "raw_debiased_ctr", "logged_order", C.BM25} <= systems
    overall = result.metric[result.metric[C.BUCKET] == "all"].set_index("system")
    assert (overall["ips_dcg@10"] >= 0).all()
    # The metric tells rankers apart, and the same split gives the same numbers.
    assert overall["ips_dcg@10"].nunique() > 1
    again = evaluate_on_clicks(no_grades, ClickEvalConfig(holdout=0.2), progress=False)
    assert again.metric.equals(result.metric)
    assert set(result.click_models["model"]) == {"pbm", "dbn", "cascade"}
    assert result.examination[0] == pytest.approx(1.0)
    assert "Click-based evaluation" in result.to_text()
    assert "earlier ones" in result.to_text()
    # A random split says it trained on the other sessions, not on earlier ones.
    shuffled = replace(result, info={**result.info, "split": "random sessions (seed 0)"})
    assert "other ones" in shuffled.to_text() and "earlier" not in shuffled.to_text()


def test_click_evaluation_needs_a_log(world) -> None:
    with pytest.raises(DataFormatError, match="no click log"):
        evaluate_on_clicks(replace(world, impressions=None))


def test_ppi_report_per_bucket(world) -> None:
    table, _ = build_table(world)
    rng = np.random.default_rng(0)
    # A noisy LLM label: the expert grade, flipped for a fifth of the pairs.
    noise = rng.random(len(table)) < 0.2
    table[C.Y_LLM] = np.where(noise, rng.integers(0, 4, len(table)), table[C.Y_EXPERT])
    queries = table[C.QID].unique()
    gold = {str(q) for q in rng.choice(queries, size=20, replace=False)}
    report = ppi_report(table, [C.BM25], gold)
    overall = report[report[C.BUCKET] == "all"].iloc[0]
    assert overall["n_gold"] == 20 and overall["n_unlabelled"] == len(queries) - 20
    assert overall["ci_low"] <= overall["estimate"] <= overall["ci_high"]
    assert overall["width"] <= overall["gold_width"] * 1.05


def test_a_held_out_window_without_clicks_says_why_no_system_is_scored() -> None:
    from hybridrank.pipelines import ClickEvaluation

    empty = pd.DataFrame(columns=["system", C.BUCKET, "ips_dcg@10", "ci_low", "ci_high"])
    result = ClickEvaluation(
        metric=empty, click_models=pd.DataFrame({"model": ["pbm"]}), examination=np.ones(10),
        info={"k": 10, "test_sessions": 12, "train_sessions": 40, "split": "latest 20%"},
    )  # fmt: skip
    assert "no system scored: the held-out sessions hold no click" in result.to_text()
