"""The gold expert: LambdaMART on the expert grades of the labelled tuning queries, cross-fitted.

The tuning queries' expert grades are the scarce gold labels every run already
holds (they calibrate the judge and tune the stacker). Trained on them, a
LambdaMART over the same features is an expert that knows what neither the
clicks nor the judge know. Its scores are out of fold in the stacker's sense:
a tuning query is scored by a model trained on the other tuning queries (a
``folds``-fold split of the tuning set), every other query by the model
trained on all of them, so the stacker tunes its weight on scores no model saw
the labels of.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from hybridrank import columns as C
from hybridrank.ensemble import OOFScores, query_folds
from hybridrank.gbdt import LambdaMARTConfig, LambdaMARTRanker

logger = logging.getLogger(__name__)

#: The gold expert's name: a system and a score column.
GOLD = "gold_gbdt"
#: Fewest labelled tuning queries the gold expert is trained on.
MIN_GOLD_QUERIES = 10


def gold_scores(
    table: pd.DataFrame,
    features: Sequence[str],
    config: LambdaMARTConfig,
    *,
    rows: np.ndarray,
    folds: int = 5,
    seed: int = 0,
) -> OOFScores | None:
    """Cross-fitted scores of LambdaMART trained on the expert grades of ``rows``.

    Args:
        table: Candidate table, rows of a query contiguous, with ``features``
            and ``y_expert``.
        features: Feature columns.
        config: The LambdaMART (its round count is chosen by cross-validation
            on so few queries; see ``min_validation_queries``).
        rows: Mask of the labelled rows it may train on (whole queries: the
            tuning set); rows without an expert grade are left out.
        folds: Folds of the cross-fit over those queries.
        seed: Seed of the fold split.

    Returns:
        Scores for every row, or None with fewer than
        :data:`MIN_GOLD_QUERIES` labelled queries.
    """
    qid = table[C.QID].astype(str).to_numpy()
    graded = np.asarray(rows, dtype=bool) & table[C.Y_EXPERT].notna().to_numpy()
    queries = np.unique(qid[graded])
    if queries.size < MIN_GOLD_QUERIES:
        logger.warning(
            "gold expert: %d labelled tuning queries (fewer than %d); not trained",
            queries.size,
            MIN_GOLD_QUERIES,
        )
        return None
    k = min(folds, queries.size)
    fold_of = query_folds(queries, k, seed)  # the stacker's cross-fit deals its folds alike
    row_fold = pd.Series(qid).map(fold_of).fillna(k).to_numpy(dtype=np.int64)
    X = table[list(features)]
    y = table[C.Y_EXPERT].clip(lower=0).round()

    def fit_predict(train: np.ndarray, score: np.ndarray) -> np.ndarray:
        ranker = LambdaMARTRanker(config).fit(X[train], y[train], qid=qid[train])
        return ranker.predict(X[score])

    scores = np.full(len(table), np.nan)
    trained: dict[int, frozenset[str]] = {}
    for f in range(k):
        train = graded & (row_fold != f)
        held = row_fold == f
        scores[held] = fit_predict(train, held)
        trained[f] = frozenset(np.unique(qid[train]).tolist())
    rest = row_fold == k
    if rest.any():
        scores[rest] = fit_predict(graded, rest)
    trained[k] = frozenset(queries.tolist())
    out = OOFScores(GOLD, scores, qid, row_fold, trained)
    out.check()
    return out


__all__ = ["GOLD", "MIN_GOLD_QUERIES", "gold_scores"]
