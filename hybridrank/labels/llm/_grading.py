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


@dataclass(frozen=True)
class GraderConfig:
    """How scores become grades.

    Attributes:
        fuse_bm25: Average, within each query, the percentile rank of the
            judge's score with that of BM25 (semantic evidence fused with
            lexical evidence; a pure similarity judge is weaker than BM25 on
            this collection).
        quantiles: Without a seed set: the shares of pairs below grade 1, 2 and
            3 (increasing, in (0, 1)).
    """

    fuse_bm25: bool = True
    quantiles: tuple[float, ...] = (0.75, 0.85, 0.95)

    def __post_init__(self) -> None:
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


def within_query_percentile(values: npt.ArrayLike, qid: npt.ArrayLike) -> np.ndarray:
    """Percentile rank of each value within its query, in (0, 1]; 1 is the best."""
    frame = pd.DataFrame({"q": np.asarray(qid), "v": np.asarray(values, dtype=np.float64)})
    return frame.groupby("q", sort=False)["v"].rank(method="average", pct=True).to_numpy()


class SemanticGrader:
    """Maps judge scores to grades 0-3 (scikit-learn style).

    ``fit`` fixes three thresholds on the (optionally BM25-fused) score: with
    seed grades, at the seed set's own grade proportions (so the judge labels
    as many pairs 3 as the experts would); without, at ``quantiles``.

    Attributes (after ``fit``):
        thresholds_: The three cut points on the fused score.
        source_: ``"seed set"`` or ``"quantiles"``.
    """

    def __init__(self, config: GraderConfig | None = None) -> None:
        self.config = config

    def fused(self, table: pd.DataFrame) -> np.ndarray:
        """The score that is thresholded: ``score`` or its fusion with ``bm25``."""
        cfg = self.config or GraderConfig()
        score = table["score"].to_numpy(dtype=np.float64)
        if not cfg.fuse_bm25:
            return score
        if C.BM25 not in table.columns:
            raise MissingColumnError("grader.fuse_bm25 needs a bm25 column beside the scores")
        qid = table[C.QID].to_numpy()
        return 0.5 * (
            within_query_percentile(score, qid) + within_query_percentile(table[C.BM25], qid)
        )

    def fit(self, table: pd.DataFrame, seed_grades: npt.ArrayLike | None = None) -> SemanticGrader:
        cfg = self.config or GraderConfig()
        s = self.fused(table)
        ok = ~np.isnan(s)
        if seed_grades is not None:
            g = np.asarray(seed_grades, dtype=np.float64)
            known = ok & ~np.isnan(g)
            if known.sum() < 20:
                raise ValueError(
                    f"a seed set needs at least 20 graded pairs, got {int(known.sum())}"
                )
            shares = np.array([np.mean(np.clip(g[known], 0, 3) < k) for k in (1, 2, 3)])
            shares = np.clip(shares, 1e-3, 1 - 1e-3)
            self.thresholds_ = np.quantile(s[known], shares)
            self.source_ = "seed set"
        else:
            self.thresholds_ = np.quantile(s[ok], cfg.quantiles)
            self.source_ = "quantiles"
        self.thresholds_ = np.maximum.accumulate(self.thresholds_)
        return self

    def transform(self, table: pd.DataFrame) -> np.ndarray:
        """Grades (float, NaN where the score is missing)."""
        if not hasattr(self, "thresholds_"):
            raise RuntimeError("SemanticGrader is not fitted; call fit first")
        s = self.fused(table)
        grades = np.searchsorted(self.thresholds_, np.nan_to_num(s), side="right").astype(
            np.float64
        )
        return np.where(np.isnan(s), np.nan, grades)

    def describe(self) -> str:
        cfg = self.config or GraderConfig()
        what = (
            "score fused with BM25 (within-query percentile average)" if cfg.fuse_bm25 else "score"
        )
        return (
            f"{what}, thresholds {np.round(self.thresholds_, 4).tolist()} from the {self.source_}"
        )
