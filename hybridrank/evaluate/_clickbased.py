"""Click-based, position-debiased evaluation on held-out sessions (IPS-weighted DCG@k).

Without expert grades a ranker can still be scored on the clicks of sessions
it was not trained on. A click at logged position ``p`` says more when users
rarely look at ``p``: under a position-based click model a document is
clicked with probability ``examination[p] * relevance``, so weighting each
click by ``1 / examination[p]`` (inverse propensity scoring, Joachims,
Swaminathan and Schnabel, WSDM 2017) makes its expectation the document's
relevance, whatever position the logging ranker put it at. The score of a
ranker for one session is

    IPS-DCG@k = sum over clicked d of  w(d) / log2(1 + rank(d))   (0 if rank(d) > k)

with ``w(d) = 1 / max(examination[p(d) - 1], clip)`` and ``rank(d)`` the rank
the evaluated ranker gives ``d`` among the query's scored candidates.

Conventions:

* ``examination`` is the examination probability by position, index 0 for
  position 1 (a fitted click model's ``examination_``, computed in
  :mod:`hybridrank.labels`; this layer does not fit models). It is used as
  given: a curve scaled by a constant scales every ranker's score alike.
* Propensities are clipped from below at ``clip`` (default 0.01), which caps
  a click's weight at ``1 / clip``: deep clicks then add some bias but cannot
  dominate the mean through their variance.
* Ties in the evaluated ranker's scores are broken *pessimistically*: a
  document tied with others takes the lowest rank of the tie, so a ranker
  cannot gain by giving many documents one score.
* A clicked document the ranker did not score (absent from its table)
  counts as unranked and adds 0.
* Only sessions with at least one click are scored: the metric estimates a
  ranker's DCG given that the user clicked, i.e. per query the relevance-
  weighted DCG divided by the query's click-through probability under the
  logging ranker, a factor that is the same for every evaluated ranker.
* A query's value is the mean over its sessions; summaries average queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from hybridrank import columns as C
from hybridrank.errors import DataFormatError
from hybridrank.evaluate._significance import bootstrap_ci

ALL = "all"
EVALUATION = "click-based, position-debiased (IPS)"
"""Label of click-based rows in reports, so they are never read as graded metrics."""

LOG_COLUMNS: tuple[str, ...] = (C.SESSION_ID, C.QID, C.DOCID, C.POSITION, C.CLICK)
"""Impression-log columns the click-based metric reads."""


def metric_name(k: int) -> str:
    """Name of the click-based metric at cut-off ``k``, e.g. ``ips_dcg@10``."""
    return f"ips_dcg@{k}"


@dataclass(frozen=True)
class ClickMetricResult:
    """IPS-weighted DCG@k of one ranker on an impression log.

    Attributes:
        per_query: Mean IPS-DCG@k over each query's sessions with a click,
            indexed by query id (order of first appearance in the log).
        per_session: IPS-DCG@k of each session with a click, indexed by
            session id.
        sessions_per_query: Sessions with a click per query, same index as
            ``per_query``.
        mean: Mean of ``per_query`` (NaN when no session has a click).
        n_queries: Queries with at least one clicked session.
        n_sessions: Sessions with at least one click.
        n_clicks: Clicks scored.
        n_unranked_clicks: Clicks on documents the ranker did not score.
        k: Rank cut-off.
        name: Metric name, ``ips_dcg@<k>``.
    """

    per_query: pd.Series
    per_session: pd.Series
    sessions_per_query: pd.Series
    mean: float
    n_queries: int
    n_sessions: int
    n_clicks: int
    n_unranked_clicks: int
    k: int
    name: str


def _check_columns(table: pd.DataFrame, needed: Sequence[str], what: str) -> None:
    if not isinstance(table, pd.DataFrame):
        raise DataFormatError(f"{what} must be a pandas DataFrame, got {type(table).__name__}")
    for col in needed:
        if col not in table.columns:
            raise DataFormatError(
                f"{what} lacks this column; it has {list(table.columns)}", column=col
            )


def _check_log(log: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Validate the log; return its positions (int) and clicks (bool)."""
    _check_columns(log, LOG_COLUMNS, "impression log")
    for col in LOG_COLUMNS:
        na = log[col].isna().to_numpy()
        if na.any():
            raise DataFormatError("missing value", row=int(np.flatnonzero(na)[0]), column=col)
    if pd.api.types.is_bool_dtype(log[C.POSITION]):
        raise DataFormatError("positions must be whole numbers >= 1", column=C.POSITION)
    pos = pd.to_numeric(log[C.POSITION], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(pos) | (pos < 1) | (pos != np.floor(pos))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataFormatError(
            f"position must be a whole number >= 1 (1 = top), got {log[C.POSITION].iloc[row]!r}",
            row=row,
            column=C.POSITION,
        )
    click = log[C.CLICK].to_numpy()
    bad = ~np.isin(click, [0, 1])
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataFormatError(f"click must be 0 or 1, got {click[row]!r}", row=row, column=C.CLICK)
    return pos.astype(np.int64), click.astype(bool)


def _check_examination(examination: npt.ArrayLike, max_position: int, clip: float) -> np.ndarray:
    if not 0 < clip <= 1:
        raise ValueError(f"clip must be in (0, 1], got {clip}")
    exam = np.asarray(examination, dtype=np.float64)
    if exam.ndim != 1:
        raise ValueError(f"examination must be 1-D (index 0 = position 1), got shape {exam.shape}")
    if exam.shape[0] < max_position:
        raise ValueError(
            f"examination covers positions 1..{exam.shape[0]} but the log shows position "
            f"{max_position}; fit the click model with max_rank >= {max_position} or cut the log"
        )
    if not np.all(np.isfinite(exam)) or np.any(exam < 0):
        raise ValueError("examination must hold finite probabilities >= 0")
    return np.maximum(exam, clip)


def _ranks(scores: pd.DataFrame, score: str) -> pd.DataFrame:
    """Pessimistic rank of each (qid, docid) among its query's scored candidates."""
    _check_columns(scores, (C.QID, C.DOCID, score), "score table")
    s = pd.to_numeric(scores[score], errors="coerce")
    na = s.isna().to_numpy()
    if na.any():
        raise DataFormatError(
            f"{int(na.sum())} NaN or non-numeric scores; score every candidate or drop it",
            row=int(np.flatnonzero(na)[0]),
            column=score,
        )
    dup = scores.duplicated([C.QID, C.DOCID]).to_numpy()
    if dup.any():
        row = int(np.flatnonzero(dup)[0])
        raise DataFormatError(
            f"(qid, docid) = ({scores[C.QID].iloc[row]!r}, {scores[C.DOCID].iloc[row]!r}) "
            "is scored twice",
            row=row,
            column=C.DOCID,
        )
    frame = pd.DataFrame({C.QID: scores[C.QID].to_numpy(), C.DOCID: scores[C.DOCID].to_numpy()})
    # method="max": a tie takes its lowest rank (pessimistic).
    frame["_rank"] = (
        pd.Series(s.to_numpy(dtype=np.float64))
        .groupby(frame[C.QID].to_numpy(), sort=False)
        .rank(method="max", ascending=False)
        .to_numpy()
    )
    return frame


def ips_click_metric(
    log: pd.DataFrame,
    scores: pd.DataFrame,
    examination: npt.ArrayLike,
    *,
    k: int = 10,
    clip: float = 0.01,
    score: str = "score",
) -> ClickMetricResult:
    """Click-based, position-debiased DCG@k (IPS-weighted) of one ranker.

    Args:
        log: Held-out impression log: ``session_id, qid, docid, position
            (1-based), click (0/1)``, one query per session.
        scores: The ranker's scores: ``qid, docid`` and the ``score`` column,
            one row per candidate.
        examination: Examination probability by position, shape
            ``(>= max position,)``, index 0 = position 1.
        k: Rank cut-off of the evaluated ranking.
        clip: Lower bound of the propensities (a click weighs at most ``1 / clip``).
        score: Column of ``scores`` holding the scores (higher ranks first).

    Returns:
        Per-query and per-session values with counts; see :class:`ClickMetricResult`.

    Raises:
        DataFormatError: On a missing column, a bad position or click, a NaN
            score or a (qid, docid) scored twice, naming the column.
        ValueError: On an examination curve shorter than the log's deepest
            position, negative or NaN, or ``k``/``clip`` out of range.

    Example:
        >>> log = pd.DataFrame({"session_id": [1, 1], "qid": ["q", "q"], "docid": ["a", "b"],
        ...                     "position": [1, 2], "click": [0, 1]})
        >>> run = pd.DataFrame({"qid": ["q", "q"], "docid": ["a", "b"], "score": [0.0, 1.0]})
        >>> ips_click_metric(log, run, [1.0, 0.5]).mean  # b clicked at 2 (w=2), ranked 1st
        2.0
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    pos, click = _check_log(log)
    prop = _check_examination(examination, int(pos.max()) if pos.size else 0, clip)
    ranks = _ranks(scores, score)

    clicked = pd.DataFrame(
        {
            C.SESSION_ID: log[C.SESSION_ID].to_numpy()[click],
            C.QID: log[C.QID].to_numpy()[click],
            C.DOCID: log[C.DOCID].to_numpy()[click],
            "_w": 1.0 / prop[pos[click] - 1],
        }
    )
    clicked = clicked.merge(ranks, on=[C.QID, C.DOCID], how="left", sort=False)
    rank = clicked["_rank"].to_numpy(dtype=np.float64)
    unranked = np.isnan(rank)
    in_top = ~unranked & (rank <= k)
    disc = np.where(in_top, 1.0 / np.log2(1.0 + np.where(in_top, rank, 1.0)), 0.0)
    clicked["_gain"] = clicked["_w"].to_numpy() * disc

    per_session_frame = clicked.groupby(C.SESSION_ID, sort=False).agg(
        qid=(C.QID, "first"), value=("_gain", "sum")
    )
    name = metric_name(k)
    per_session = per_session_frame["value"].rename(name)
    by_query = per_session_frame.groupby("qid", sort=False)["value"]
    per_query = by_query.mean().rename(name)
    per_query.index.name = C.QID
    sessions_per_query = by_query.size().rename("n_sessions")
    sessions_per_query.index.name = C.QID
    return ClickMetricResult(
        per_query=per_query,
        per_session=per_session,
        sessions_per_query=sessions_per_query,
        mean=float(per_query.mean()) if len(per_query) else float("nan"),
        n_queries=len(per_query),
        n_sessions=len(per_session),
        n_clicks=len(clicked),
        n_unranked_clicks=int(unranked.sum()),
        k=k,
        name=name,
    )


def _bucket_names(qids: pd.Index, bucket_of: pd.Series | None) -> np.ndarray:
    """Bucket name per query; ``""`` for queries ``bucket_of`` does not name."""
    if bucket_of is None:
        return np.full(len(qids), ALL, dtype=object)
    if not bucket_of.index.is_unique:
        dup = bucket_of.index[bucket_of.index.duplicated()][0]
        raise ValueError(f"bucket_of names query {dup!r} twice; give one bucket per query")
    mapped = bucket_of.reindex(qids).to_numpy(dtype=object)
    return np.array(["" if pd.isna(b) else str(b) for b in mapped], dtype=object)


def ips_click_report(
    log: pd.DataFrame,
    table: pd.DataFrame,
    systems: Sequence[str],
    examination: npt.ArrayLike,
    *,
    bucket_of: pd.Series | None = None,
    k: int = 10,
    clip: float = 0.01,
    n_bootstrap: int = 2_000,
    seed: int = 0,
) -> pd.DataFrame:
    """Click-based IPS-DCG@k of several systems, per bucket and overall.

    Args:
        log: Held-out impression log (see :func:`ips_click_metric`).
        table: Candidate table with ``qid, docid`` and a score column per system.
        systems: Score columns to evaluate.
        examination: Examination probability by position, index 0 = position 1.
        bucket_of: Bucket of each query, indexed by query id; None for
            overall only. Queries it does not name count in ``"all"`` only.
        k: Rank cut-off.
        clip: Lower bound of the propensities.
        n_bootstrap: Resamples of the bootstrap confidence intervals (over queries).
        seed: Seed of the bootstrap (the same resamples for every system).

    Returns:
        One row per (system, bucket), buckets in order of first appearance
        in ``bucket_of`` and ``"all"`` last, with columns ``system, bucket,
        evaluation`` (always :data:`EVALUATION`), ``ips_dcg@<k>`` (mean over
        queries), ``ips_dcg@<k>_ci_low``, ``ips_dcg@<k>_ci_high``, ``n``
        (queries) and ``n_sessions``.

    Raises:
        DataFormatError: On a missing column or NaN scores, naming the column.
        ValueError: On an empty ``systems`` or a bad examination curve.
    """
    if not systems:
        raise ValueError("systems is empty; name at least one score column")
    _check_columns(table, (C.QID, C.DOCID, *systems), "candidate table")
    name = metric_name(k)
    order: list[str] = []
    if bucket_of is not None:
        order = [
            str(b) for b in dict.fromkeys(bucket_of.to_numpy()) if pd.notna(b) and str(b) != ALL
        ]
    rows: list[dict[str, Any]] = []
    for system in systems:
        result = ips_click_metric(
            log, table[[C.QID, C.DOCID, system]], examination, k=k, clip=clip, score=system
        )
        pq = result.per_query
        buckets = _bucket_names(pq.index, bucket_of)
        n_sessions = result.sessions_per_query.to_numpy()
        for b in [*order, ALL]:
            sel = np.ones(len(pq), dtype=bool) if b == ALL else buckets == b
            values = pq.to_numpy()[sel]
            low, high = bootstrap_ci(values, n_resamples=n_bootstrap, rng=seed)
            rows.append(
                {
                    "system": system,
                    C.BUCKET: b,
                    "evaluation": EVALUATION,
                    name: float(values.mean()) if values.size else float("nan"),
                    f"{name}_ci_low": low,
                    f"{name}_ci_high": high,
                    "n": int(values.size),
                    "n_sessions": int(n_sessions[sel].sum()),
                }
            )
    return pd.DataFrame(rows)


__all__ = ["ClickMetricResult", "ips_click_metric", "ips_click_report"]
