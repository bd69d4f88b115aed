"""Query frequency (sessions per query in the log) and frequency buckets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from hybridrank import columns as C
from hybridrank._config import config_from_dict, config_to_dict
from hybridrank.errors import ConfigError


def query_frequency(log: pd.DataFrame, qids: Sequence[str] | pd.Series | None = None) -> pd.Series:
    """Number of sessions per query in an impression log.

    Args:
        log: Impression log with ``session_id`` and ``qid``.
        qids: Queries to report; those absent from the log get 0. Default: the
            queries of the log.

    Returns:
        Integer Series indexed by qid, named ``freq``.
    """
    sessions = log[[C.SESSION_ID, C.QID]].drop_duplicates()
    counts = sessions.groupby(C.QID, sort=False).size()
    if qids is not None:
        counts = counts.reindex(pd.Index(qids, name=C.QID), fill_value=0)
    return counts.astype("int64").rename(C.FREQ)


@dataclass(frozen=True)
class BucketConfig:
    """How queries are split into frequency buckets.

    Attributes:
        kind: ``"fixed"`` uses ``edges`` as given; ``"quantile"`` fits edges
            as quantiles of the frequencies seen in ``fit`` (training queries).
        edges: Inclusive upper bounds of every bucket but the last, increasing.
            The default (2, 20) gives low 0-2, mid 3-20, high > 20.
        names: One name per bucket, ``len(edges) + 1`` of them.
    """

    kind: Literal["fixed", "quantile"] = "fixed"
    edges: tuple[float, ...] = (2, 20)
    names: tuple[str, ...] = ("low", "mid", "high")

    def __post_init__(self) -> None:
        if self.kind not in ("fixed", "quantile"):
            raise ConfigError(f"buckets.kind must be 'fixed' or 'quantile', got {self.kind!r}")
        if len(self.names) < 1 or len(set(self.names)) != len(self.names):
            raise ConfigError(f"buckets.names must be distinct and non-empty, got {self.names}")
        if self.kind == "fixed":
            if len(self.edges) != len(self.names) - 1:
                raise ConfigError(
                    f"buckets: {len(self.names)} names need {len(self.names) - 1} edges, got {self.edges}"
                )
            if any(b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)):
                raise ConfigError(f"buckets.edges must increase, got {self.edges}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> BucketConfig:
        return config_from_dict(cls, values, "buckets")

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)


class FrequencyBuckets:
    """Assigns a bucket name to each query frequency (scikit-learn style).

    Example:
        >>> FrequencyBuckets().fit([0, 5, 50]).transform([0, 2, 3, 20, 21]).tolist()
        ['low', 'low', 'mid', 'mid', 'high']
    """

    def __init__(self, config: BucketConfig | None = None) -> None:
        self.config = config

    def fit(self, freq: npt.ArrayLike) -> FrequencyBuckets:
        """Fix the edges; quantile edges come from ``freq`` (the training queries only)."""
        cfg = self.config or BucketConfig()
        if cfg.kind == "fixed":
            self.edges_ = np.asarray(cfg.edges, dtype=np.float64)
        else:
            f = np.asarray(freq, dtype=np.float64)
            if f.size == 0:
                raise ValueError("quantile buckets need at least one training frequency")
            qs = np.linspace(0, 1, len(cfg.names) + 1)[1:-1]
            edges = np.quantile(f, qs, method="lower")
            self.edges_ = np.maximum.accumulate(edges)
        self.names_ = np.asarray(cfg.names, dtype=object)
        return self

    def transform(self, freq: npt.ArrayLike) -> np.ndarray:
        """Bucket name per frequency, shape like ``freq``."""
        if not hasattr(self, "edges_"):
            raise RuntimeError("FrequencyBuckets is not fitted; call fit first")
        f = np.asarray(freq, dtype=np.float64)
        if np.any(f < 0) or np.any(np.isnan(f)):
            raise ValueError("frequencies must be non-negative numbers")
        return self.names_[np.searchsorted(self.edges_, f, side="left")]

    def fit_transform(self, freq: npt.ArrayLike) -> np.ndarray:
        return self.fit(freq).transform(freq)

    def describe(self) -> list[str]:
        """Human-readable ranges, e.g. ``['low: 0-2', 'mid: 3-20', 'high: >20']``."""
        if not hasattr(self, "edges_"):
            raise RuntimeError("FrequencyBuckets is not fitted; call fit first")
        out, lo = [], 0.0
        for name, hi in zip(self.names_, self.edges_, strict=False):
            out.append(f"{name}: {lo:g}-{hi:g}")
            lo = float(np.floor(hi) + 1)
        out.append(
            f"{self.names_[-1]}: >{self.edges_[-1]:g}"
            if self.edges_.size
            else f"{self.names_[-1]}: all"
        )
        return out
