"""Gates g(freq) in [0, 1]: how much a query trusts the click model over the LLM-supervised one."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from hybridrank.errors import ConfigError


class Gate(ABC):
    """A function of query frequency with values in [0, 1] and named parameters."""

    kind: ClassVar[str]

    @abstractmethod
    def __call__(self, freq: npt.ArrayLike) -> np.ndarray:
        """Gate value per query, same shape as ``freq``."""

    @abstractmethod
    def params(self) -> dict[str, Any]:
        """Parameters, for reports and configs."""


class SigmoidGate(Gate):
    """g(f) = sigmoid(slope * (log1p(f) - centre)): rare queries near 0, head queries near 1.

    Example:
        >>> float(SigmoidGate(centre=np.log1p(10), slope=2.0)(10))
        0.5
    """

    kind = "sigmoid"

    def __init__(self, centre: float = 2.0, slope: float = 2.0) -> None:
        if slope < 0:
            raise ConfigError(f"sigmoid gate: slope must be >= 0, got {slope}")
        self.centre = float(centre)
        self.slope = float(slope)

    def __call__(self, freq: npt.ArrayLike) -> np.ndarray:
        f = np.asarray(freq, dtype=np.float64)
        return 1.0 / (1.0 + np.exp(-self.slope * (np.log1p(np.maximum(f, 0.0)) - self.centre)))

    def params(self) -> dict[str, Any]:
        return {"centre": self.centre, "slope": self.slope}


class BucketGate(Gate):
    """Free weights per frequency bucket: g = weights[bucket(f)].

    Args:
        edges: Inclusive upper bounds of every bucket but the last (as in
            :class:`~hybridrank.features.BucketConfig`).
        weights: One weight in [0, 1] per bucket.
    """

    kind = "bucket"

    def __init__(
        self, edges: Sequence[float] = (2, 20), weights: Sequence[float] = (0.2, 0.5, 0.8)
    ) -> None:
        if len(weights) != len(edges) + 1:
            raise ConfigError(
                f"bucket gate: {len(edges)} edges need {len(edges) + 1} weights, got {len(weights)}"
            )
        if any(not 0 <= w <= 1 for w in weights):
            raise ConfigError(f"bucket gate: weights must be in [0, 1], got {list(weights)}")
        self.edges = np.asarray(edges, dtype=np.float64)
        self.weights = np.asarray(weights, dtype=np.float64)

    def __call__(self, freq: npt.ArrayLike) -> np.ndarray:
        return self.weights[
            np.searchsorted(self.edges, np.asarray(freq, dtype=np.float64), side="left")
        ]

    def params(self) -> dict[str, Any]:
        return {"edges": self.edges.tolist(), "weights": self.weights.tolist()}


GATES: dict[str, type[Gate]] = {SigmoidGate.kind: SigmoidGate, BucketGate.kind: BucketGate}


def make_gate(kind: str, params: Mapping[str, Any] | None = None) -> Gate:
    if kind not in GATES:
        raise ConfigError(f"unknown gate {kind!r}; choose from {sorted(GATES)}")
    try:
        return GATES[kind](**dict(params or {}))
    except TypeError as exc:
        raise ConfigError(f"gate {kind!r}: {exc}") from None
