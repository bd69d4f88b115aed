"""The best single input feature as a baseline: what a learned model must at least match.

A LambdaMART model is given its features; the simplest thing it could do is
rank by the strongest one of them. When the model scores below that, it has
learned less than its input already knew (click labels computed from the
same sessions as the click features, too few boosting rounds, labels that
are coarse thresholds of that very feature). ``train gbdt`` reports this
baseline beside the model so a ranking engineer sees it on every run.

The feature and its direction are chosen out of fold: for each query fold,
the one of ``features`` x {+1, -1} with the highest mean metric on the
*other* folds' graded queries ranks this fold. So the baseline never picks
its feature on the queries it is scored on, as the model never trains on
them.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hybridrank import columns as C
from hybridrank._grouping import offsets_from_qid
from hybridrank.ensemble import break_ties, missing_last
from hybridrank.evaluate import Report, ndcg_at_k, randomization_test

logger = logging.getLogger(__name__)

#: The report's name of the baseline system.
BEST_FEATURE = "best_feature"


@dataclass(frozen=True)
class FeatureChoice:
    """The feature one fold is ranked by.

    Attributes:
        fold: The query fold ranked.
        feature: The chosen input column.
        sign: +1 (higher ranks first) or -1 (lower ranks first).
        score: Its mean NDCG@k on the other folds' graded queries.
    """

    fold: int
    feature: str
    sign: int
    score: float


@dataclass(frozen=True)
class BestFeature:
    """Out-of-fold scores of the best single feature and what each fold chose.

    Attributes:
        scores: One score per table row (higher is better; a row without the
            feature's value ranks below every row with one).
        choices: One :class:`FeatureChoice` per fold.
    """

    scores: np.ndarray
    choices: tuple[FeatureChoice, ...]

    def describe(self) -> str:
        """The chosen features, most frequent first: ``-x (3 folds), y (2 folds)``."""
        counts = Counter(
            ("-" if c.sign < 0 else "") + c.feature for c in self.choices
        ).most_common()
        return ", ".join(f"{name} ({n} fold{'s' if n != 1 else ''})" for name, n in counts)

    @property
    def features(self) -> tuple[str, ...]:
        """The distinct chosen features, most frequent first."""
        return tuple(f for f, _ in Counter(c.feature for c in self.choices).most_common())


def _varies_within_a_query(values: np.ndarray, offsets: np.ndarray) -> bool:
    """Whether some query has two different values (a missing one counts as a value)."""
    keyed = np.where(np.isnan(values), -np.inf, values)
    return bool((keyed != np.repeat(keyed[offsets[:-1]], np.diff(offsets))).any())


def best_feature_baseline(
    table: pd.DataFrame,
    features: Sequence[str],
    *,
    label: str = C.Y_EXPERT,
    k: int = 10,
    secondary: np.ndarray | None = None,
    metric: Callable[..., np.ndarray] = ndcg_at_k,
) -> BestFeature | None:
    """The best single feature of ``features``, chosen per fold on the other folds.

    Args:
        table: Candidate rows, a query's rows contiguous, with ``qid``,
            ``fold``, ``label`` and the feature columns.
        features: The model's input columns (non-numeric ones are skipped).
        label: Graded relevance the choice and the report use.
        k: Cut-off of the metric.
        secondary: Tie order inside a query (e.g. the text order), as the
            model's scores are given; None: row order.
        metric: Per-query metric ``f(scores, labels, offsets=..., k=...)``.

    Returns:
        None when no fold can choose (fewer than two folds, no graded query
        in the other folds, or no numeric feature).
    """
    if table.empty or C.FOLD not in table.columns or label not in table.columns:
        return None
    numeric = [
        f for f in features if f in table.columns and pd.api.types.is_numeric_dtype(table[f])
    ]
    qid = table[C.QID].to_numpy()
    offsets = offsets_from_qid(qid)
    query_fold = table[C.FOLD].to_numpy()[offsets[:-1]]
    folds = sorted(pd.unique(query_fold))
    if not numeric or len(folds) < 2:
        return None
    labels = table[label].to_numpy(dtype=np.float64)

    def ranked(name: str, sign: int) -> np.ndarray:
        s = missing_last(table[name].to_numpy(dtype=np.float64), sign=sign, offsets=offsets)
        return s if secondary is None else break_ties(s, secondary, offsets=offsets)

    candidates: list[tuple[str, int]] = []
    per_query: list[np.ndarray] = []  # the metric per query of each (feature, sign)
    for name in numeric:
        values = table[name].to_numpy(dtype=np.float64)
        if not _varies_within_a_query(values, offsets):
            continue  # constant in every query (a query-level feature): ranks nothing
        for sign in (1, -1):
            candidates.append((name, sign))
            per_query.append(metric(ranked(name, sign), labels, offsets=offsets, k=k))
    if not candidates:
        return None
    grid = np.vstack(per_query)  # (candidate, query); NaN: a query without a relevant row
    graded = np.isfinite(grid[0])  # the same queries for every candidate
    scores = np.zeros(len(table))
    row_fold = table[C.FOLD].to_numpy()
    choices = []
    for fold in folds:
        others = graded & (query_fold != fold)
        if not others.any():
            return None
        means = grid[:, others].mean(axis=1)
        best = int(np.argmax(means))
        name, sign = candidates[best]
        rows = row_fold == fold
        scores[rows] = ranked(name, sign)[rows]
        choices.append(FeatureChoice(int(fold), name, sign, float(means[best])))
    logger.debug("best single feature per fold: %s", choices)
    return BestFeature(scores=scores, choices=tuple(choices))


def warn_below_best_feature(report: Report, name: str, best: BestFeature) -> None:
    """A warning when the model ranks below its best single input feature overall."""
    # The metric the feature was chosen by, where the report has it.
    metric = "ndcg@10" if "ndcg@10" in report.metrics else report.metrics[0]
    everything = "all"  # the report's bucket of every query
    rows = report.summary.set_index(["system", C.BUCKET])[metric]
    model, feature = rows.get((name, everything)), rows.get((BEST_FEATURE, everything))
    if model is None or feature is None or not model < feature:
        return
    below = [
        str(b) for b in report.buckets
        if b != everything and rows.get((name, b), np.nan) < rows.get((BEST_FEATURE, b), np.nan)
    ]  # fmt: skip
    per_query = report.per_query.pivot_table(index=C.QID, columns="system", values=metric)
    test = randomization_test(per_query[name], per_query[BEST_FEATURE])
    logger.warning(
        "%s ranks below its best single input feature (%s): %s %.4f against %.4f "
        "(paired randomisation p = %.3g; below on buckets %s). The model adds nothing to "
        "that feature; common causes: labels computed from the sessions its click features "
        "come from (click_split: {mode: time}), labels that are coarse thresholds of it, or "
        "too few boosting rounds (see the rounds in curves.png)",
        name, best.describe(), metric, model, feature, test.p_value, below or "none",
    )  # fmt: skip


__all__ = [
    "BEST_FEATURE",
    "BestFeature",
    "FeatureChoice",
    "best_feature_baseline",
    "warn_below_best_feature",
]
