"""The gold expert: LambdaMART on the tuning queries' expert grades, cross-fitted."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hybridrank import columns as C
from hybridrank.data import TUNING
from hybridrank.evaluate import ndcg_at_k
from hybridrank.gbdt import LambdaMARTConfig
from hybridrank.pipelines import GOLD, ExperimentConfig, gold_scores

CONFIG = LambdaMARTConfig(n_estimators=40, num_leaves=4, min_child_samples=5, n_jobs=1)


def _table(n_queries: int = 60, n_tuning: int = 20, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    per = 15
    qid = np.repeat([f"q{i}" for i in range(n_queries)], per)
    grade = rng.choice([0, 0, 0, 1, 2, 3], size=qid.size).astype(float)
    table = pd.DataFrame(
        {
            C.QID: qid,
            "f0": grade + rng.normal(0, 0.7, qid.size),
            "f1": rng.normal(size=qid.size),
            C.Y_EXPERT: grade,
            TUNING: np.repeat(np.arange(n_queries) < n_tuning, per),
        }
    )
    table.loc[rng.random(len(table)) < 0.1, C.Y_EXPERT] = np.nan  # unjudged pairs
    return table


def test_gold_scores_are_cross_fitted_on_the_tuning_queries() -> None:
    table = _table()
    rows = table[TUNING].to_numpy()
    gold = gold_scores(table, ["f0", "f1"], CONFIG, rows=rows, folds=4)
    assert gold is not None and gold.name == GOLD
    gold.check()  # no row scored by a model that saw its query
    tuning_queries = set(table.loc[rows, C.QID])
    # Tuning rows: four fold models, each trained on the other tuning queries only.
    assert set(np.unique(gold.fold[rows])) == {0, 1, 2, 3}
    for f in range(4):
        assert gold.trained_on[f] < tuning_queries
    # Every other row: the model trained on all tuning queries.
    assert set(np.unique(gold.fold[~rows])) == {4} and gold.trained_on[4] == tuning_queries
    rest = table.loc[~rows]
    ndcg = ndcg_at_k(gold.scores[~rows], rest[C.Y_EXPERT].fillna(0).to_numpy(), qid=rest[C.QID].to_numpy(), k=10)
    assert np.nanmean(ndcg) > 0.85  # it learned the grade from f0


def test_gold_scores_need_enough_labelled_queries() -> None:
    table = _table(n_tuning=5)
    assert gold_scores(table, ["f0", "f1"], CONFIG, rows=table[TUNING].to_numpy()) is None


def test_experiment_gold_and_anchors_config() -> None:
    default = ExperimentConfig()
    assert default.gold is not None and default.stacker.anchors == ("famol", GOLD, "raw_dwell")
    off = ExperimentConfig.from_dict({"gold": None, "stacker": {"anchor": "famol"}})
    assert off.gold is None and off.stacker.anchors == ("famol",)
    custom = ExperimentConfig.from_dict({"gold": {"num_leaves": 3}, "stacker": {"anchors": []}})
    assert custom.gold is not None and custom.gold.num_leaves == 3 and custom.stacker.anchors == ()
    again = ExperimentConfig.from_dict(custom.to_dict())
    assert again.gold == custom.gold and again.stacker.anchors == ()
    assert ExperimentConfig.from_dict(off.to_dict()).gold is None
    with pytest.raises(Exception, match="gold"):
        ExperimentConfig.from_dict({"gold": {"num_leafs": 3}})
