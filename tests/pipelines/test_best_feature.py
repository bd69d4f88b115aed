from __future__ import annotations

import numpy as np
import pandas as pd

from hybridrank import columns as C
from hybridrank.evaluate import ndcg_at_k
from hybridrank.pipelines import BEST_FEATURE, best_feature_baseline


def _table(per_query: int = 8, seed: int = 0) -> pd.DataFrame:
    """Fold 0's 30 queries are ranked perfectly by ``a``; folds 1-3 (10 queries each) by ``-b``."""
    rng = np.random.default_rng(seed)
    rows = []
    for q in range(60):
        fold = 0 if q < 30 else 1 + q % 3
        grade = rng.permutation(np.r_[3, 2, 1, np.zeros(per_query - 3)])
        noise = rng.normal(size=per_query)
        rows.append(pd.DataFrame({
            C.QID: f"q{q}", C.FOLD: fold, C.Y_EXPERT: grade,
            "a": grade if fold == 0 else noise,
            "b": noise if fold == 0 else -grade,
            "constant": 1.0,
            "name": "x",
        }))  # fmt: skip
    return pd.concat(rows, ignore_index=True)


def test_each_fold_is_ranked_by_the_feature_the_other_folds_choose() -> None:
    table = _table()
    best = best_feature_baseline(table, ["a", "b", "constant", "name", "absent"])
    assert best is not None
    chosen = {c.fold: (c.feature, c.sign) for c in best.choices}
    # A fold's own queries never choose its feature: fold 0 (where a is perfect) is ranked
    # by the other folds' winner -b, and folds 1-3 (where -b is) by a, which fold 0 favours.
    assert chosen == {0: ("b", -1), 1: ("a", 1), 2: ("a", 1), 3: ("a", 1)}
    assert best.features == ("a", "b")
    assert best.describe() == "a (3 folds), -b (1 fold)"
    qid = table[C.QID].to_numpy()
    per_query = ndcg_at_k(best.scores, table[C.Y_EXPERT].to_numpy(), qid=qid, k=10)
    first = np.r_[True, qid[1:] != qid[:-1]]
    fold = table[C.FOLD].to_numpy()[first]
    # Each fold is ranked by the feature that is noise on it.
    assert per_query[fold == 0].mean() < 0.9 and per_query[fold != 0].mean() < 0.9
    # The other folds' mean of the winner is recorded.
    scores = {c.fold: c.score for c in best.choices}
    assert scores[0] == 1.0  # -b is perfect on every other fold
    assert all(0.5 < scores[f] < 1.0 for f in (1, 2, 3))  # a: perfect on fold 0 only


def test_a_missing_value_ranks_below_every_present_one() -> None:
    table = _table()
    table["c"] = np.where(table[C.Y_EXPERT] > 0, table[C.Y_EXPERT], np.nan)
    best = best_feature_baseline(table, ["c"])
    assert best is not None and best.features == ("c",)
    present = table["c"].notna().to_numpy()
    for _, rows in table.assign(score=best.scores, present=present).groupby(C.QID):
        assert rows.loc[rows.present, "score"].min() > rows.loc[~rows.present, "score"].max()


def test_ties_follow_the_secondary_order() -> None:
    table = _table()
    table["flag"] = (table[C.Y_EXPERT] > 0).astype(float)  # ties among the relevant rows
    secondary = table[C.Y_EXPERT].to_numpy()
    best = best_feature_baseline(table, ["flag"], secondary=secondary)
    assert best is not None
    qid = table[C.QID].to_numpy()
    np.testing.assert_allclose(
        ndcg_at_k(best.scores, table[C.Y_EXPERT].to_numpy(), qid=qid, k=10), 1.0
    )


def test_nothing_to_choose_from_gives_none() -> None:
    table = _table()
    # A query-level feature is constant within every query: it ranks nothing.
    table["per_query"] = table[C.QID].str[1:].astype(float)
    assert best_feature_baseline(table, ["constant", "name", "per_query"]) is None
    assert best_feature_baseline(table.iloc[:0], ["a", "b"]) is None
    assert best_feature_baseline(table.assign(**{C.FOLD: 0}), ["a", "b"]) is None
    assert best_feature_baseline(table.drop(columns=[C.FOLD]), ["a"]) is None
    # Only fold 0 has a relevant row: the other folds cannot choose for it.
    ungraded = table.assign(**{C.Y_EXPERT: np.where(table[C.FOLD] == 0, table[C.Y_EXPERT], 0.0)})
    assert best_feature_baseline(ungraded, ["a", "b"]) is None
    assert BEST_FEATURE == "best_feature"
