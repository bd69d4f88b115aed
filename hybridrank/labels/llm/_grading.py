"""Turning a semantic judge's scores into 0-3 grades: optional BM25 fusion, then thresholds."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from hybridrank import columns as C
from hybridrank._config import config_from_dict, config_to_dict
from hybridrank.errors import ConfigError, MissingColumnError

#: How seed grades calibrate a score-only judge (``GraderConfig.calibration``).
CALIBRATIONS = ("ordinal", "shares")
#: Where the three cut points sit (``GraderConfig.thresholds``).
THRESHOLDS = ("kappa", "shares")
#: The lexical evidence the ordinal model reads beside the score when the table has it
#: (``GraderConfig.overlap``): the share of the query's distinct terms found in the document.
OVERLAP = "term_overlap"
#: Rounds of the coordinate search for kappa-optimal cut points.
KAPPA_ROUNDS = 3
#: Candidate cut points per threshold in that search (quantiles of the seed pairs' scores).
KAPPA_GRID = 200
#: Fewest seed pairs at or above a grade (and below it) for that grade's logistic model;
#: with fewer, P(grade >= k) is the seed set's share.
MIN_CLASS_PAIRS = 5


@dataclass(frozen=True)
class GraderConfig:
    """How scores become grades.

    Attributes:
        fuse_bm25: Use BM25 beside the judge's score (semantic evidence fused
            with lexical evidence; a pure similarity judge is weaker than BM25
            on many collections).
        calibration: How a seed set of expert grades turns the evidence into
            grades. ``ordinal`` (default): a cumulative logistic model, one
            logistic regression of P(grade >= k) per level k = 1..3 on the
            judge's score as it is, its within-query percentile and z-score,
            and BM25's percentile and z-score; the expected grade
            (the sum of the three probabilities) is then cut at the seed
            set's grade shares. It sees how relevant a pair is in absolute
            terms, so a query with many relevant documents gets many high
            grades. ``shares``: the mean of the score's and BM25's
            within-query percentiles cut at the seed set's grade shares
            (every query gets the same share of each grade).
        overlap: With ``ordinal``, also read the table's ``term_overlap`` (the
            share of the query's terms in the document; every dataset with
            texts has it), as it is and as within-query percentile and z-score.
            A similarity judge misses whether a document covers the whole
            query; the overlap says so (quadratic kappa on the default world
            0.352 -> 0.396). Ignored where the table has no such column.
        thresholds: Where the cut points sit on the calibrated score, with a
            seed set. ``kappa`` (default): start at the seed set's grade
            shares, then move each cut point (coordinate search over the seed
            scores' quantiles) while the seed pairs' quadratic-weighted kappa
            rises: the grades then agree with the experts as well as the
            score allows, rather than only matching their proportions.
            ``shares``: at the seed set's grade shares.
        quantiles: Without a seed set: the shares of pairs below grade 1, 2 and
            3 (increasing, in (0, 1)).
    """

    fuse_bm25: bool = True
    calibration: str = "ordinal"
    overlap: bool = True
    thresholds: str = "kappa"
    quantiles: tuple[float, ...] = (0.75, 0.85, 0.95)

    def __post_init__(self) -> None:
        if self.calibration not in CALIBRATIONS:
            raise ConfigError(
                f"grader.calibration must be one of {list(CALIBRATIONS)}, got {self.calibration!r}"
            )
        if self.thresholds not in THRESHOLDS:
            raise ConfigError(
                f"grader.thresholds must be one of {list(THRESHOLDS)}, got {self.thresholds!r}"
            )
        q = self.quantiles
        if (
            len(q) != 3
            or any(not 0 < x < 1 for x in q)
            or any(b <= a for a, b in itertools.pairwise(q))
        ):
            raise ConfigError(f"grader.quantiles must be 3 increasing shares in (0, 1), got {q}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> GraderConfig:
        return config_from_dict(cls, values, "grader")

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)


def within_query_zscore(values: npt.ArrayLike, qid: npt.ArrayLike) -> np.ndarray:
    """(value - query mean) / query standard deviation; 0 for a query of equal values."""
    frame = pd.DataFrame({"q": np.asarray(qid), "v": np.asarray(values, dtype=np.float64)})
    grouped = frame.groupby("q", sort=False)["v"]
    std = grouped.transform("std", ddof=0).to_numpy()
    centred = frame["v"].to_numpy() - grouped.transform("mean").to_numpy()
    return np.divide(centred, std, out=np.zeros_like(centred), where=std > 1e-12)


def within_query_percentile(values: npt.ArrayLike, qid: npt.ArrayLike) -> np.ndarray:
    """Percentile rank of each value within its query, in (0, 1]; 1 is the best."""
    frame = pd.DataFrame({"q": np.asarray(qid), "v": np.asarray(values, dtype=np.float64)})
    return frame.groupby("q", sort=False)["v"].rank(method="average", pct=True).to_numpy()


class SemanticGrader:
    """Maps judge scores to grades 0-3 (scikit-learn style).

    ``fit`` fixes three thresholds: with seed grades and ``calibration:
    ordinal``, on the expected grade of a cumulative logistic model fitted on
    the seed pairs; with ``shares``, on the (optionally BM25-fused)
    percentile score. Either way the cut points sit at the seed set's own
    grade proportions (so the judge labels as many pairs 3 as the experts
    would). Without seed grades: at ``quantiles`` of the percentile score.

    Attributes (after ``fit``):
        thresholds_: The three cut points on the thresholded score.
        source_: ``"seed set"`` or ``"quantiles"``.
        method_: ``"ordinal"`` or ``"shares"`` (what was thresholded).
        levels_: Per grade 1..3 with ``ordinal``: ``(coefficients, intercept)``
            of its logistic model, or the seed share as a constant.
    """

    def __init__(self, config: GraderConfig | None = None) -> None:
        self.config = config

    def fused(self, table: pd.DataFrame) -> np.ndarray:
        """What ``shares`` thresholds: ``score`` itself, or (``fuse_bm25``) the mean of its
        and BM25's within-query percentiles."""
        cfg = self.config or GraderConfig()
        score = table["score"].to_numpy(dtype=np.float64)
        if not cfg.fuse_bm25:
            return score
        qid = self._bm25_qid(table)
        return 0.5 * (
            within_query_percentile(score, qid) + within_query_percentile(table[C.BM25], qid)
        )

    def _bm25_qid(self, table: pd.DataFrame) -> np.ndarray:
        if C.BM25 not in table.columns:
            raise MissingColumnError("grader.fuse_bm25 needs a bm25 column beside the scores")
        return table[C.QID].to_numpy()

    def evidence(self, table: pd.DataFrame) -> np.ndarray:
        """The ordinal model's inputs, one row per pair: the score, its within-query
        percentile and z-score, (with ``fuse_bm25``) BM25's percentile and z-score, and
        (when fitted with it, see ``GraderConfig.overlap``) the term overlap as it is and
        as percentile and z-score."""
        cfg = self.config or GraderConfig()
        score = table["score"].to_numpy(dtype=np.float64)
        qid = self._bm25_qid(table) if cfg.fuse_bm25 else table[C.QID].to_numpy()
        columns = [score, within_query_percentile(score, qid), within_query_zscore(score, qid)]
        if cfg.fuse_bm25:
            bm25 = table[C.BM25].to_numpy(dtype=np.float64)
            columns += [within_query_percentile(bm25, qid), within_query_zscore(bm25, qid)]
        if getattr(self, "overlap_", False):
            if OVERLAP not in table.columns:
                raise MissingColumnError(
                    f"the grader was calibrated with {OVERLAP!r} as evidence; the table to grade "
                    "has no such column"
                )
            overlap = table[OVERLAP].to_numpy(dtype=np.float64)
            columns += [
                overlap,
                within_query_percentile(overlap, qid),
                within_query_zscore(overlap, qid),
            ]
        return np.column_stack(columns)

    def fit(self, table: pd.DataFrame, seed_grades: npt.ArrayLike | None = None) -> SemanticGrader:
        cfg = self.config or GraderConfig()
        s = self.fused(table)
        ok = ~np.isnan(s)
        self.method_ = "shares"
        self.overlap_ = (
            seed_grades is not None
            and cfg.calibration == "ordinal"
            and cfg.overlap
            and OVERLAP in table.columns
        )
        self.kappa_tuned_ = False
        self.levels_: list[tuple[np.ndarray, float] | float] = []
        if seed_grades is not None:
            g = np.asarray(seed_grades, dtype=np.float64)
            known = ok & ~np.isnan(g)
            if known.sum() < 20:
                raise ValueError(
                    f"a seed set needs at least 20 graded pairs, got {int(known.sum())}"
                )
            graded = np.clip(g[known], 0, 3)
            shares = np.array([np.mean(graded < k) for k in (1, 2, 3)])
            if cfg.calibration == "ordinal":
                s = self._fit_ordinal(self.evidence(table)[known], graded)
                known = np.ones(s.shape[0], dtype=bool)
            self.thresholds_ = np.quantile(s[known], np.clip(shares, 1e-3, 1 - 1e-3))
            # A grade no seed pair has (binary seed grades: none above 1) is never given.
            self.thresholds_[shares >= 1.0] = np.inf
            self.thresholds_ = np.maximum.accumulate(self.thresholds_)
            if cfg.thresholds == "kappa":
                self.thresholds_ = kappa_thresholds(s[known], graded, self.thresholds_)
                self.kappa_tuned_ = True
            # Nor a middle grade no seed pair has (grades 0, 2, 3 but no 1): its two cut
            # points stay one, whatever the kappa tuning moved.
            for k in (1, 2):
                if not np.any(np.round(graded) == k):
                    self.thresholds_[k - 1] = self.thresholds_[k]
            self.source_ = "seed set"
        else:
            self.thresholds_ = np.quantile(s[ok], cfg.quantiles)
            self.source_ = "quantiles"
        self.thresholds_ = np.maximum.accumulate(self.thresholds_)
        return self

    def _fit_ordinal(self, X: np.ndarray, grades: np.ndarray) -> np.ndarray:
        """Fit P(grade >= k | evidence) for k = 1..3; returns the seed pairs' expected grades."""
        from sklearn.linear_model import LogisticRegression

        self._mean = X.mean(axis=0)
        self._scale = np.where(X.std(axis=0) > 1e-12, X.std(axis=0), 1.0)
        Z = (X - self._mean) / self._scale
        for k in (1, 2, 3):
            above = grades >= k
            if min(int(above.sum()), int((~above).sum())) < MIN_CLASS_PAIRS:
                self.levels_.append(float(above.mean()))
                continue
            model = LogisticRegression(C=1.0, max_iter=1000).fit(Z, above.astype(int))
            self.levels_.append((model.coef_[0].copy(), float(model.intercept_[0])))
        self.method_ = "ordinal"
        return self._expected_grade(X)

    def _expected_grade(self, X: np.ndarray) -> np.ndarray:
        Z = (X - self._mean) / self._scale
        total = np.zeros(X.shape[0])
        for level in self.levels_:
            if isinstance(level, float):
                total += level
            else:
                coef, intercept = level
                total += 1.0 / (1.0 + np.exp(-(Z @ coef + intercept)))
        return total

    def calibrated_score(self, table: pd.DataFrame) -> np.ndarray:
        """The thresholded score: the expected grade (``ordinal``), else :meth:`fused`."""
        if not hasattr(self, "thresholds_"):
            raise RuntimeError("SemanticGrader is not fitted; call fit first")
        s = self.fused(table)
        if self.method_ == "ordinal":
            s = np.where(
                np.isnan(s), np.nan, self._expected_grade(np.nan_to_num(self.evidence(table)))
            )
        return s

    def soft_grade(self, table: pd.DataFrame) -> np.ndarray:
        """The judge's continuous grade on the 0-3 scale (NaN where the score is missing).

        With ``ordinal`` calibration this is the expected grade the thresholds
        cut, so it orders pairs within a grade too: the target a student model
        distils from. With ``shares`` there is no grade-scale score, and the
        soft grade is the grade itself.
        """
        if getattr(self, "method_", "shares") == "ordinal":
            return np.clip(self.calibrated_score(table), 0.0, 3.0)
        return self.transform(table)

    def transform(self, table: pd.DataFrame) -> np.ndarray:
        """Grades (float, NaN where the score is missing)."""
        s = self.calibrated_score(table)
        grades = np.searchsorted(self.thresholds_, np.nan_to_num(s), side="right").astype(
            np.float64
        )
        return np.where(np.isnan(s), np.nan, grades)

    def describe(self) -> str:
        cfg = self.config or GraderConfig()
        if getattr(self, "method_", "shares") == "ordinal":
            what = (
                "expected grade of a cumulative logistic model on the score"
                + (" and BM25" if cfg.fuse_bm25 else "")
                + (" and the term overlap" if getattr(self, "overlap_", False) else "")
                + " (absolute, within-query percentile and z-score)"
            )
        else:
            what = (
                "score fused with BM25 (within-query percentile average)"
                if cfg.fuse_bm25
                else "score"
            )
        how = " (kappa-optimal)" if getattr(self, "kappa_tuned_", False) else ""
        return (
            f"{what}, thresholds {np.round(self.thresholds_, 4).tolist()} from the "
            f"{self.source_}{how}"
        )


def quadratic_kappa(expert: npt.ArrayLike, judge: npt.ArrayLike, levels: int = 4) -> float:
    """Cohen's kappa with quadratic weights over grades ``0..levels-1`` (0 where either side
    gives a single grade only, so no agreement beyond chance can be measured)."""
    e = np.asarray(expert, dtype=np.int64)
    j = np.asarray(judge, dtype=np.int64)
    for side, values in (("expert", e), ("judge", j)):
        if values.size and (values.min() < 0 or values.max() >= levels):
            raise ValueError(
                f"quadratic_kappa: {side} grades must lie in 0..{levels - 1}, "
                f"got {int(values.min())}..{int(values.max())}"
            )
    observed = np.bincount(e * levels + j, minlength=levels * levels).reshape(levels, levels)
    n = observed.sum()
    if n == 0:
        return 0.0
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / n
    grid = np.arange(levels)
    weights = (grid[:, None] - grid[None, :]) ** 2
    disagreement = float((weights * expected).sum())
    if disagreement <= 0:
        return 0.0
    return 1.0 - float((weights * observed).sum()) / disagreement


def kappa_thresholds(
    scores: np.ndarray, grades: np.ndarray, start: np.ndarray
) -> np.ndarray:
    """Cut points that raise the seed pairs' quadratic kappa, from ``start`` by coordinate search.

    Each finite cut point in turn moves to the candidate (a quantile of ``scores``
    between its neighbours) that gives the highest kappa; a move is kept only when
    kappa strictly rises, so the result is never worse than ``start`` on the seed
    pairs. Infinite cut points (grades the seed set never gives) stay infinite.
    """
    expert = np.rint(grades).astype(np.int64)
    best = np.asarray(start, dtype=np.float64).copy()
    grid = np.unique(np.quantile(scores, np.linspace(0.0, 1.0, KAPPA_GRID)))
    # A cut just above the largest score gives no pair that grade; keep it reachable.
    grid = np.append(grid, np.nextafter(grid[-1], np.inf))

    def kappa(cuts: np.ndarray) -> float:
        return quadratic_kappa(expert, np.searchsorted(cuts, scores, side="right"))

    best_kappa = kappa(best)
    for _ in range(KAPPA_ROUNDS):
        moved = False
        for j in range(best.size):
            if not np.isfinite(best[j]):
                continue
            low = best[j - 1] if j > 0 else -np.inf
            high = best[j + 1] if j + 1 < best.size else np.inf
            for value in grid[(grid >= low) & (grid <= high)]:
                trial = best.copy()
                trial[j] = value
                value_kappa = kappa(trial)
                if value_kappa > best_kappa + 1e-12:
                    best, best_kappa, moved = trial, value_kappa, True
        if not moved:
            break
    return best
