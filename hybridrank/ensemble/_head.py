"""The head queries' click weight, chosen on held-out clicks instead of expert grades.

A stacker's gate is tuned on a few dozen labelled queries, of which only a
handful are head queries, so the click weight where clicks are plentiful is
the least supported part of the gate. Head queries need no expert grade to be
judged: their held-out sessions (sessions no model was trained on) score any
ranking with the position-debiased click metric (IPS-weighted DCG@k, see
:func:`~hybridrank.evaluate.ips_click_metric`). :func:`tune_head_weight` scores
the stacker's fused ranking of the head queries for a grid of click weights
and keeps the best one as a :class:`~hybridrank.ensemble.HeadGate` when it
beats the tuned gate significantly (a sign-flip test that allows for the
choice among the grid), or the tuned gate unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
import pandas as pd

from hybridrank import columns as C
from hybridrank.ensemble._gates import Gate, HeadGate
from hybridrank.ensemble._stacker import StackerData
from hybridrank.evaluate import ips_click_metric, max_gain_test


@dataclass(frozen=True)
class HeadTuning:
    """The outcome of :func:`tune_head_weight`.

    Attributes:
        gate: ``HeadGate(base, min_frequency, weight)`` with the chosen weight,
            or the base gate itself when no weight scores above it on the
            held-out clicks, or the clicks are too few (``reason`` says which).
        weight: The chosen click weight of the head queries, or None.
        min_frequency: Queries at or above this frequency are head queries.
        curve: ``weight`` and the click metric (mean over head queries) per grid point;
            empty when the clicks were too few.
        base_value: The click metric of the base gate's ranking.
        best_value: The click metric of the grid's best weight (that of the
            base gate when no weight scores above it), kept or not.
        best_weight: The grid's best weight, kept or not (None without a grid).
        p_value: :func:`~hybridrank.evaluate.max_gain_test` of the grid's
            weights against the base gate over the head queries (NaN when not
            tested).
        n_queries: Head queries with at least one clicked held-out session.
        n_sessions: Their held-out sessions with a click.
        reason: Why the base gate was kept, else None.
    """

    gate: Gate
    weight: float | None
    min_frequency: float
    curve: pd.DataFrame
    base_value: float
    best_value: float
    n_queries: int
    n_sessions: int
    reason: str | None = None
    p_value: float = float("nan")
    best_weight: float | None = None

    def summary(self) -> dict[str, object]:
        """The figures a report or ``info.json`` keeps (a figure not computed is None)."""

        def number(x: float) -> float | None:
            return None if np.isnan(x) else float(x)

        return {
            "min_frequency": self.min_frequency, "weight": self.weight,
            "base_value": number(self.base_value), "best_value": number(self.best_value),
            "best_weight": self.best_weight, "head_queries": self.n_queries,
            "held_out_sessions": self.n_sessions,
            "p_value": number(self.p_value), "kept_base": self.reason,
        }  # fmt: skip


def tune_head_weight(
    base: Gate,
    data: StackerData,
    *,
    qid: npt.ArrayLike,
    docid: npt.ArrayLike,
    log: pd.DataFrame,
    examination: npt.ArrayLike,
    min_frequency: float,
    anchor_weights: Sequence[float] = (),
    grid: int = 21,
    k: int = 10,
    min_sessions: int = 50,
    max_p: float = 0.05,
    clip: float = 0.01,
    seed: int = 0,
) -> HeadTuning:
    """Choose the head queries' click weight on held-out clicks.

    Each weight of the grid is scored as ``HeadGate(base, min_frequency, w)``
    (the head queries take ``w``, the rarer ones at most ``w``, so a rising
    base gate stays rising) on the head queries' held-out sessions. The base
    gate is scored too, and the best weight is kept only when it scores above
    it with p < ``max_p`` by :func:`~hybridrank.evaluate.max_gain_test` over
    the head queries (each query's mean over its held-out sessions), which
    allows for the best of the grid having been picked on the same clicks:
    with a few head queries a weight chosen by noise must not move the gate.

    Args:
        base: The gate tuned on the labelled queries.
        data: The experts' normalised scores (:func:`~hybridrank.ensemble.prepare`),
            whole queries, scored by models that never saw ``log``.
        qid: Query id per row of ``data``.
        docid: Document id per row of ``data``.
        log: Held-out impression log (``session_id, qid, docid, position, click``).
        examination: Examination probability by position (index 0 = position 1)
            of a click model fitted on the other sessions.
        min_frequency: Queries of at least this frequency are head queries.
        anchor_weights: The stacker's anchor weights (``data`` holds the anchors' scores).
        grid: Number of weights tried, evenly spaced in [0, 1].
        k: Cut-off of the click metric.
        min_sessions: Fewer clicked held-out sessions on head queries than
            this keep the base gate: their clicks are too few to choose by.
        max_p: The best weight must beat the base gate with p below this
            (1.0: any gain is kept).
        clip: Lower bound of the propensities.
        seed: Seed of the test's sign flips.

    Raises:
        ValueError: ``grid`` below 2, or rows that do not match ``data``.
    """
    if grid < 2:
        raise ValueError(f"grid must be >= 2 weights, got {grid}")
    if not 0 < max_p <= 1:
        raise ValueError(f"max_p must be in (0, 1], got {max_p}")
    qid = np.asarray(qid)
    docid = np.asarray(docid)
    if qid.shape[0] != data.click.shape[0] or docid.shape[0] != qid.shape[0]:
        raise ValueError("qid and docid must have one value per row of the stacker's data")
    head = data.row_freq >= min_frequency
    head_qids = pd.unique(qid[head])
    held = log[log[C.QID].isin(head_qids)]
    clicked = held.groupby(C.SESSION_ID, sort=False)[C.CLICK].max()
    n_sessions = int((clicked > 0).sum())
    n_queries = int(held.loc[held[C.CLICK] > 0, C.QID].nunique())

    def per_query(gate: Gate) -> pd.Series:
        scores = pd.DataFrame(
            {C.QID: qid[head], C.DOCID: docid[head],
             "score": data.fused(gate, anchor_weights)[head]}
        )  # fmt: skip
        return ips_click_metric(held, scores, examination, k=k, clip=clip).per_query

    def keep(reason: str, curve: pd.DataFrame, base_value: float) -> HeadTuning:
        return HeadTuning(base, None, float(min_frequency), curve, base_value, base_value,
                          n_queries, n_sessions, reason)  # fmt: skip

    if n_sessions < min_sessions:
        return keep(
            f"{n_sessions} clicked held-out sessions on head queries (< {min_sessions})",
            pd.DataFrame(columns=["weight", f"ips_dcg@{k}"]),
            float("nan"),
        )
    weights = np.linspace(0.0, 1.0, grid).round(6)
    runs = [per_query(HeadGate(base, min_frequency, float(w))) for w in weights]
    values = np.array([float(r.mean()) for r in runs])
    curve = pd.DataFrame({"weight": weights, f"ips_dcg@{k}": values})
    base_run = per_query(base)
    base_value = float(base_run.mean())
    best = int(np.argmax(values))  # the first of equal values: the lowest weight
    if values[best] <= base_value:
        return keep("no head weight scores above the tuned gate", curve, base_value)
    gains = np.vstack([r.reindex(base_run.index).to_numpy() - base_run.to_numpy() for r in runs])
    p_value = max_gain_test(gains, rng=seed)
    if max_p < 1 and not p_value < max_p:  # max_p 1: any gain, even at p = 1
        return replace(
            keep(f"weight {weights[best]:g} scores above it with p = {p_value:.3f} "
                 f"(not < {max_p:g})", curve, base_value),
            p_value=p_value, best_value=float(values[best]), best_weight=float(weights[best]),
        )  # fmt: skip
    return HeadTuning(
        gate=HeadGate(base, min_frequency, float(weights[best])),
        weight=float(weights[best]),
        min_frequency=float(min_frequency),
        curve=curve,
        base_value=base_value,
        best_value=float(values[best]),
        best_weight=float(weights[best]),
        n_queries=n_queries,
        n_sessions=n_sessions,
        p_value=p_value,
    )
