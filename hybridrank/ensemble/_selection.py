"""Which tuned gate to keep when the tuning queries cannot tell the good ones apart.

The stacker's gate is tuned on a few dozen labelled queries, only a handful of
them head queries, and the anchors' weights are tuned with it. Many trials
then score within noise of the top one, with gates of every shape: flat at 0,
flat at 1, rising. The top trial's shape is an accident of the sampler.

``rising`` keeps the product's prior where the data is silent: among the
trials whose per-query NDCG is within ``se`` standard errors of the top
trial's (paired differences over the tuning queries), it keeps the one whose
click weight rises most from the rare queries to the frequent ones (rises
compared to 0.01; then the higher tuning NDCG, then the earlier trial). When
the data prefers a flat gate by more than the noise, no rising trial is
within reach and the top trial is kept. ``best`` keeps the top trial.

With a head gate (the head queries' click weight fixed from held-out clicks)
the rise is that of its base gate, the part the study tunes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from hybridrank.ensemble._gates import Gate, HeadGate, gate_from_dict
from hybridrank.errors import ConfigError

SELECTIONS = ("best", "rising")


@dataclass(frozen=True)
class GateCandidate:
    """One finished trial: its number, its gate and its NDCG per tuning query (NaN: a
    query without a relevant candidate)."""

    number: int
    gate: Gate
    per_query: np.ndarray


@dataclass(frozen=True)
class GateChoice:
    """What the selection kept and what it passed over.

    Attributes:
        rule: ``best`` or ``rising``.
        trial / value / rise: The kept trial, its mean tuning NDCG and its rise.
        best_trial / best_value / best_rise: The top trial's.
        best_gate: The top trial's gate (``Gate.to_dict``), to show what was passed over.
        within: Trials within ``se`` standard errors of the top one (itself included).
        low_freq / high_freq: Frequencies the rise is measured between.
    """

    rule: str
    trial: int
    value: float
    rise: float
    best_trial: int
    best_value: float
    best_rise: float
    best_gate: dict[str, Any]
    within: int
    low_freq: float
    high_freq: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self, se: float) -> str:
        """One line: the kept trial against the top one (``se``: the rule's standard errors)."""
        return (
            f"trial #{self.trial}, {self.value:.4f} on the tuning queries, {self.within} "
            f"trials within {se:g} SE of the top #{self.best_trial} ({self.best_value:.4f}); "
            f"selection {self.rule}, click weight rise {self.rise:.2f} (top's "
            f"{self.best_rise:.2f})"
        )

    @classmethod
    def from_dict(cls, values: Any, *, source: str) -> GateChoice:
        """The choice :meth:`to_dict` wrote, checked field by field.

        Raises:
            ConfigError: A missing or unknown field, or a value no selection writes.
        """
        names = sorted(cls.__dataclass_fields__)
        if not isinstance(values, dict) or sorted(values) != names:
            got = sorted(values) if isinstance(values, dict) else values
            raise ConfigError(f"{source}: a gate selection needs the fields {names}, got {got!r}")

        def number(name: str, low: float, high: float, *, integer: bool = False) -> None:
            v = values[name]
            ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            if not ok or not low <= v <= high or (integer and v != int(v)):
                kind = "an integer" if integer else "a number"
                raise ConfigError(f"{source}.{name} must be {kind} in [{low:g}, {high:g}], "
                                  f"got {v!r}")  # fmt: skip

        if values["rule"] not in SELECTIONS:
            raise ConfigError(f"{source}.rule must be one of {list(SELECTIONS)}, "
                              f"got {values['rule']!r}")  # fmt: skip
        for name in ("trial", "best_trial"):
            number(name, 0, math.inf, integer=True)
        number("within", 1, math.inf, integer=True)
        for name in ("value", "best_value"):
            number(name, 0, 1)
        for name in ("rise", "best_rise"):
            number(name, -1, 1)
        number("low_freq", 0, math.inf)
        number("high_freq", values["low_freq"], math.inf)
        if values["rule"] == "best" and values["trial"] != values["best_trial"]:
            raise ConfigError(f"{source}: rule 'best' keeps the top trial, but trial "
                              f"{values['trial']} is not best_trial {values['best_trial']}")  # fmt: skip
        gate_from_dict(values["best_gate"], source=f"{source}.best_gate")
        return cls(**values)


def reference_frequencies(
    query_freq: np.ndarray, bucket_edges: Sequence[float]
) -> tuple[float, float]:
    """The rare and the frequent end the rise is measured between: the median frequency of
    the queries in the lowest bucket (``<= edges[0]``) and in the highest (``> edges[-1]``);
    a bucket without a query, or no edges at all, falls back to the lowest or highest
    frequency."""
    f = np.asarray(query_freq, dtype=np.float64)
    if f.size == 0:
        return 0.0, 0.0
    if len(bucket_edges) == 0:
        return float(f.min()), float(f.max())
    low, high = f[f <= bucket_edges[0]], f[f > bucket_edges[-1]]
    lo = float(np.median(low)) if low.size else float(f.min())
    hi = float(np.median(high)) if high.size else float(f.max())
    return lo, hi


def rise_ends(
    query_freq: np.ndarray, bucket_edges: Sequence[float], query_bucket: np.ndarray | None = None
) -> tuple[float, float]:
    """Where a gate's rise is measured: at the dataset's own buckets when each query's is
    given (:func:`bucket_frequencies`), else at ``bucket_edges`` (:func:`reference_frequencies`)."""
    if query_bucket is None:
        return reference_frequencies(query_freq, bucket_edges)
    return bucket_frequencies(query_freq, query_bucket)


def mean_ndcg(per_query: np.ndarray) -> float:
    """The mean over the queries with a relevant candidate (NaN left out); 0 without any."""
    return float(np.nanmean(per_query)) if np.any(~np.isnan(per_query)) else 0.0


def bucket_frequencies(query_freq: np.ndarray, query_bucket: np.ndarray) -> tuple[float, float]:
    """The rare and the frequent end from the dataset's own buckets: the median frequency of
    the queries in the bucket whose median is lowest and in the one whose median is highest
    (frequency buckets, so the rarest and the most frequent, whatever their names)."""
    f = np.asarray(query_freq, dtype=np.float64)
    if f.size == 0:
        return 0.0, 0.0
    medians = pd.Series(f).groupby(np.asarray(query_bucket, dtype=str)).median()
    return float(medians.min()), float(medians.max())


def gate_rise(gate: Gate, low_freq: float, high_freq: float) -> float:
    """``g(high_freq) - g(low_freq)``: how much more the click expert weighs on frequent queries."""
    low, high = gate(np.array([low_freq, high_freq], dtype=np.float64))
    return float(high - low)


def tuned_rise(gate: Gate, low_freq: float, high_freq: float) -> float:
    """The rise of the part of ``gate`` a study tunes: a head gate's base gate (its head
    weight is fixed for every trial, so the head end says nothing of the trial's shape)."""
    return gate_rise(gate.base if isinstance(gate, HeadGate) else gate, low_freq, high_freq)


def choose_trial(
    candidates: Sequence[GateCandidate],
    best_number: int,
    *,
    rule: str,
    se: float,
    low_freq: float,
    high_freq: float,
) -> GateChoice:
    """The trial to keep by ``rule`` (see the module docstring).

    Raises:
        ValueError: An unknown rule, or ``best_number`` not among the candidates.
    """
    if rule not in SELECTIONS:
        raise ValueError(f"gate selection must be one of {SELECTIONS}, got {rule!r}")
    by_number = {c.number: c for c in candidates}
    if best_number not in by_number:
        raise ValueError(f"the top trial #{best_number} is not among the candidates")
    best = by_number[best_number]
    scored = ~np.isnan(best.per_query)

    def mean(c: GateCandidate) -> float:
        return mean_ndcg(c.per_query)

    def rise(c: GateCandidate) -> float:
        return tuned_rise(c.gate, low_freq, high_freq)

    within = [best]
    if int(scored.sum()) >= 2:
        for c in candidates:
            if c.number == best_number:
                continue
            d = (c.per_query - best.per_query)[scored]
            if np.isnan(d).any():
                continue
            if d.mean() >= -se * d.std(ddof=1) / np.sqrt(d.size):
                within.append(c)
    kept = (
        max(within, key=lambda c: (round(rise(c), 2), mean(c), -c.number))
        if rule == "rising"
        else best
    )
    return GateChoice(
        rule=rule, trial=kept.number, value=mean(kept), rise=rise(kept),
        best_trial=best.number, best_value=mean(best), best_rise=rise(best),
        best_gate=best.gate.to_dict(),
        within=len(within), low_freq=low_freq, high_freq=high_freq,
    )  # fmt: skip
