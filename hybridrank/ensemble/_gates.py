"""Gates g(freq) in [0, 1]: how much a query trusts the click model over the LLM-supervised one.

One :class:`Gate` hierarchy owns everything about a gate: evaluating it, the
parameters an Optuna trial proposes (:meth:`Gate.suggest`), rebuilding it from
a study's best parameters (:meth:`Gate.from_params`), the CLI text form
(:func:`parse_gate`), and saving and loading (:meth:`Gate.to_dict`,
:func:`gate_from_dict`, :meth:`Gate.save`, :func:`load_gate`). :func:`fuse` is
the one fusion formula the stacker, the bundle and ``HybridRanker`` share.
"""

from __future__ import annotations

import json
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from hybridrank._atomic import write_text
from hybridrank._config import read_json
from hybridrank.errors import ConfigError


@dataclass(frozen=True)
class GateSpace:
    """Where a tuning study searches a gate's parameters.

    Attributes:
        centre_range: Sigmoid centre (in log1p sessions).
        slope_range: Sigmoid slope (>= 0: the click weight never falls with frequency).
        bucket_edges: Bucket edges of the bucket gate.
    """

    centre_range: tuple[float, float] = (0.0, 5.0)
    slope_range: tuple[float, float] = (0.0, 8.0)
    bucket_edges: tuple[float, ...] = (2, 20)


class Gate(ABC):
    """A function of query frequency with values in [0, 1] and named parameters."""

    kind: ClassVar[str]

    @abstractmethod
    def __call__(self, freq: npt.ArrayLike) -> np.ndarray:
        """Gate value per query, same shape as ``freq``."""

    @abstractmethod
    def params(self) -> dict[str, Any]:
        """Parameters, for reports, configs and :func:`make_gate`."""

    @classmethod
    @abstractmethod
    def suggest(cls, trial: Any, space: GateSpace) -> Gate:
        """The gate an Optuna trial proposes within ``space``."""

    @classmethod
    @abstractmethod
    def from_params(cls, params: Mapping[str, float], space: GateSpace) -> Gate:
        """The gate a study's best parameters (``trial.params``) describe."""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "params": self.params()}

    def save(self, path: str | Path) -> None:
        """Write ``{"kind", "params"}`` as JSON, whole or not at all."""
        write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    def curve(self, freq: npt.ArrayLike | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(frequencies, click weight): the gate on a log grid of 0..10,000 sessions by default."""
        f = (
            np.r_[0.0, np.logspace(-1, 4, 120)]
            if freq is None
            else np.asarray(freq, dtype=np.float64)
        )
        return f, self(f)


class SigmoidGate(Gate):
    """g(f) = sigmoid(slope * (log1p(f) - centre)): rare queries near 0, head queries near 1.

    Example:
        >>> float(SigmoidGate(centre=np.log1p(10), slope=2.0)(10))
        0.5
    """

    kind = "sigmoid"

    def __init__(self, centre: float = 2.0, slope: float = 2.0) -> None:
        for name, value in (("centre", centre), ("slope", slope)):
            if isinstance(value, bool) or not isinstance(value, int | float | np.number):
                raise ConfigError(f"sigmoid gate: {name} must be a number, got {value!r}")
            if not math.isfinite(float(value)):
                raise ConfigError(f"sigmoid gate: {name} must be finite, got {value}")
        if slope < 0:
            raise ConfigError(f"sigmoid gate: slope must be >= 0, got {slope}")
        self.centre = float(centre)
        self.slope = float(slope)

    def __call__(self, freq: npt.ArrayLike) -> np.ndarray:
        f = np.asarray(freq, dtype=np.float64)
        return 1.0 / (1.0 + np.exp(-self.slope * (np.log1p(np.maximum(f, 0.0)) - self.centre)))

    def params(self) -> dict[str, Any]:
        return {"centre": self.centre, "slope": self.slope}

    @classmethod
    def suggest(cls, trial: Any, space: GateSpace) -> SigmoidGate:
        return cls(
            centre=trial.suggest_float("centre", *space.centre_range),
            slope=trial.suggest_float("slope", *space.slope_range),
        )

    @classmethod
    def from_params(cls, params: Mapping[str, float], space: GateSpace) -> SigmoidGate:
        return cls(params["centre"], params["slope"])


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
        if any(not math.isfinite(e) for e in edges) or list(edges) != sorted(edges):
            raise ConfigError(f"bucket gate: edges must be finite and rising, got {list(edges)}")
        self.edges = np.asarray(edges, dtype=np.float64)
        self.weights = np.asarray(weights, dtype=np.float64)

    def __call__(self, freq: npt.ArrayLike) -> np.ndarray:
        return self.weights[
            np.searchsorted(self.edges, np.asarray(freq, dtype=np.float64), side="left")
        ]

    def params(self) -> dict[str, Any]:
        return {"edges": self.edges.tolist(), "weights": self.weights.tolist()}

    @classmethod
    def suggest(cls, trial: Any, space: GateSpace) -> BucketGate:
        n = len(space.bucket_edges) + 1
        return cls(space.bucket_edges, [trial.suggest_float(f"w{i}", 0.0, 1.0) for i in range(n)])

    @classmethod
    def from_params(cls, params: Mapping[str, float], space: GateSpace) -> BucketGate:
        n = len(space.bucket_edges) + 1
        return cls(space.bucket_edges, [params[f"w{i}"] for i in range(n)])


class HeadGate(Gate):
    """A tuned gate whose head queries take a click weight chosen on held-out clicks.

    From ``min_frequency`` on, ``g(f) = weight``; below it, ``min(base(f),
    weight)``: over a base gate that never falls with frequency (any sigmoid
    gate, a bucket gate with rising weights) it never falls either, whatever
    the weight. The base gate comes from the labelled tuning queries, of which
    few are head queries; ``weight`` comes from the clicks of sessions no
    model saw (see :func:`~hybridrank.ensemble.tune_head_weight`), which head
    queries have plenty of. It is not proposed by a study (:meth:`suggest`
    refuses).

    Example:
        >>> gate = HeadGate(SigmoidGate(centre=2.0, slope=2.0), min_frequency=21, weight=0.8)
        >>> [round(float(v), 3) for v in gate([0, 5, 20, 21, 10_000])]
        [0.018, 0.397, 0.8, 0.8, 0.8]
    """

    kind = "head"

    def __init__(
        self,
        base: Gate | Mapping[str, Any] | None = None,
        min_frequency: float = 21.0,
        weight: float = 1.0,
    ) -> None:
        if base is None:
            base = SigmoidGate()
        elif not isinstance(base, Gate):
            base = gate_from_dict(base, source="head gate: base")
        if isinstance(base, HeadGate):
            raise ConfigError("head gate: its base cannot be a head gate")
        for name, value in (("min_frequency", min_frequency), ("weight", weight)):
            if isinstance(value, bool) or not isinstance(value, int | float | np.number):
                raise ConfigError(f"head gate: {name} must be a number, got {value!r}")
        if not math.isfinite(float(min_frequency)) or min_frequency < 0:
            raise ConfigError(f"head gate: min_frequency must be >= 0, got {min_frequency}")
        if not 0 <= weight <= 1:
            raise ConfigError(f"head gate: weight must be in [0, 1], got {weight}")
        self.base = base
        self.min_frequency = float(min_frequency)
        self.weight = float(weight)

    def __call__(self, freq: npt.ArrayLike) -> np.ndarray:
        f = np.asarray(freq, dtype=np.float64)
        g = np.minimum(self.base(f), self.weight)
        return np.where(f >= self.min_frequency, self.weight, g)

    def params(self) -> dict[str, Any]:
        return {"base": self.base.to_dict(), "min_frequency": self.min_frequency,
                "weight": self.weight}  # fmt: skip

    @classmethod
    def suggest(cls, trial: Any, space: GateSpace) -> HeadGate:
        raise ConfigError(
            "the head gate is not searched by a study: its head weight is chosen on held-out "
            "clicks (experiment.click_tuning); tune a sigmoid or bucket gate"
        )

    @classmethod
    def from_params(cls, params: Mapping[str, Any], space: GateSpace) -> HeadGate:
        return cls(params["base"], params["min_frequency"], params["weight"])


#: The gate kinds, by name (the registry every parser and loader goes through).
GATES: dict[str, type[Gate]] = {
    SigmoidGate.kind: SigmoidGate, BucketGate.kind: BucketGate, HeadGate.kind: HeadGate,
}  # fmt: skip
#: The gate kinds a stacker study can search.
TUNABLE_GATES = (SigmoidGate.kind, BucketGate.kind)


def format_params(params: Mapping[str, Any]) -> str:
    """Tuned parameters for people: ``centre=4.097, slope=6.929`` (4 significant digits)."""

    def one(value: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, (int, float, list, tuple)):
            return str(value)
        if isinstance(value, (list, tuple)):
            return "[" + ", ".join(one(v) for v in value) + "]"
        return f"{value:.4g}"

    return ", ".join(f"{k}={one(v)}" for k, v in params.items())


def make_gate(kind: str, params: Mapping[str, Any] | None = None) -> Gate:
    if kind not in GATES:
        raise ConfigError(f"unknown gate {kind!r}; choose from {sorted(GATES)}")
    known = set(GATES[kind]().params())
    unknown = sorted(set(params or {}) - known)
    if unknown:
        raise ConfigError(
            f"gate {kind!r}: unknown parameter{'s' if len(unknown) > 1 else ''} {unknown}; "
            f"it takes {sorted(known)}"
        )
    try:
        return GATES[kind](**dict(params or {}))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"gate {kind!r}: {exc}") from None


def gate_from_dict(values: Any, *, source: str = "gate") -> Gate:
    """The gate of ``{"kind": ..., "params": {...}}`` (what :meth:`Gate.to_dict` writes).

    A saved gate names every parameter: a missing one is an error, never a default.
    """
    if not isinstance(values, Mapping) or "kind" not in values:
        raise ConfigError(f"{source}: expected a mapping with 'kind' and 'params', got {values!r}")
    params = values.get("params") or {}
    if not isinstance(params, Mapping):
        raise ConfigError(f"{source}.params must be a mapping, got {params!r}")
    kind = str(values["kind"])
    if kind in GATES:
        missing = sorted(set(GATES[kind]().params()) - set(params))
        if missing:
            raise ConfigError(f"{source}: the {kind} gate's parameters {missing} are missing")
    try:
        return make_gate(kind, params)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def load_gate(path: str | Path) -> Gate:
    """A gate saved by :meth:`Gate.save`; a missing or malformed file names itself."""
    return gate_from_dict(read_json(path, "gate"), source=str(path))


def parse_gate(text: str) -> Gate:
    """The CLI form: ``sigmoid:centre=1.5,slope=2`` or ``bucket:weights=0.2/0.5/0.9``."""
    kind, _, rest = text.partition(":")
    if kind == HeadGate.kind:
        raise ConfigError(
            "--gate: a head gate has a nested base gate and no text form; build the bundle "
            "from the experiment run that tuned it (--experiment DIR), or give its base gate here"
        )
    params: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--gate: {item!r} is not key=value")
        try:
            params[key] = [float(v) for v in value.split("/")] if "/" in value else float(value)
        except ValueError:
            raise ConfigError(f"--gate: {key}={value!r} is not a number") from None
    # A parameter left out is an error, never a silent default (bucket edges excepted:
    # the documented default buckets).
    missing = [k for k in _TEXT_REQUIRED.get(kind, ()) if k not in params]
    if missing:
        raise ConfigError(f"--gate {text!r}: give {', '.join(missing)} (the {kind} gate's parameters)")
    try:
        return make_gate(kind, params)
    except ConfigError as exc:
        raise ConfigError(f"--gate {text!r}: {exc}") from None


#: The parameters the CLI form of each gate must name.
_TEXT_REQUIRED = {"sigmoid": ("centre", "slope"), "bucket": ("weights",)}


#: What an anchor expert may be called: a letter, then letters, digits or ``_`` (it names
#: a score column). The fused ranker's own outputs and ids are taken.
ANCHOR_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
RESERVED_ANCHOR_NAMES = frozenset({"click", "llm", "gate", "score", "rank", "docid", "qid"})


def check_anchors(anchors: Sequence[tuple[str, Any]], *, source: str) -> None:
    """Anchor experts ``(name, weight)`` as :func:`fuse` mixes them: names usable as
    column prefixes and unique, weights finite numbers >= 0 summing to at most 1.

    Raises:
        ConfigError: Naming ``source`` and the offending anchor.
    """
    names = [name for name, _ in anchors]
    for name, weight in anchors:
        if not isinstance(name, str) or not ANCHOR_NAME.fullmatch(name):
            raise ConfigError(
                f"{source}: anchor name {name!r} must be a letter then letters, digits or _"
            )
        if name in RESERVED_ANCHOR_NAMES:
            raise ConfigError(f"{source}: anchor name {name!r} is taken by the fused ranker")
        number = isinstance(weight, int | float) and not isinstance(weight, bool)
        if not number or not math.isfinite(weight) or weight < 0:
            raise ConfigError(
                f"{source}: anchor {name!r} weight must be a number >= 0, got {weight!r}"
            )
    if len(set(names)) != len(names):
        raise ConfigError(f"{source}: anchor names repeat: {names}")
    total = float(sum(w for _, w in anchors))
    if total > 1.0 + 1e-9:
        raise ConfigError(
            f"{source}: anchor weights sum to {total:.4g}; at most 1 (the gated click/LLM mix "
            "takes the rest)"
        )


def fuse(
    gate: np.ndarray,
    click: np.ndarray,
    llm: np.ndarray,
    *,
    anchors: Sequence[np.ndarray] = (),
    anchor_weights: Sequence[float] = (),
) -> np.ndarray:
    """The fusion of per-query normalised scores, row by row.

    ``g * click + (1 - g) * llm`` gated by query frequency; with anchor experts
    (FAMOL, the gold expert, ...), ``sum_a w_a * anchor_a + (1 - sum_a w_a) *``
    that gated mix. The stacker's tuning, its predictions, the hybrid bundle
    and ``HybridRanker`` all fuse through this one function.

    Raises:
        ValueError: A weight count differing from the anchor count.
    """
    gated = gate * click + (1.0 - gate) * llm
    if len(anchor_weights) != len(anchors):
        raise ValueError(f"{len(anchor_weights)} anchor weights for {len(anchors)} anchor experts")
    if not anchors:
        return gated
    out = (1.0 - float(sum(anchor_weights))) * gated
    for weight, scores in zip(anchor_weights, anchors, strict=True):
        out = out + float(weight) * scores
    return out
