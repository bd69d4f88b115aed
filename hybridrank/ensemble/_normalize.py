"""Per-query score normalisation, vectorised over grouped arrays."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from hybridrank._grouping import resolve_groups
from hybridrank.errors import ConfigError


def _group_ids(
    n: int, qid: npt.ArrayLike | None, offsets: npt.ArrayLike | None
) -> tuple[np.ndarray, np.ndarray]:
    off = resolve_groups(n, qid, offsets)
    return np.repeat(np.arange(off.shape[0] - 1), np.diff(off)), off


def zscore_per_query(
    scores: npt.ArrayLike, *, qid: npt.ArrayLike | None = None, offsets: npt.ArrayLike | None = None
) -> np.ndarray:
    """(s - mean) / std within each query; a query with constant scores gets zeros."""
    s = np.asarray(scores, dtype=np.float64)
    gid, off = _group_ids(s.shape[0], qid, offsets)
    counts = np.diff(off).astype(np.float64)
    mean = np.bincount(gid, weights=s, minlength=counts.size) / np.maximum(counts, 1)
    centred = s - mean[gid]
    var = np.bincount(gid, weights=centred**2, minlength=counts.size) / np.maximum(counts, 1)
    std = np.sqrt(var)[gid]
    return np.divide(centred, std, out=np.zeros_like(centred), where=std > 1e-12)


def rank_per_query(
    scores: npt.ArrayLike, *, qid: npt.ArrayLike | None = None, offsets: npt.ArrayLike | None = None
) -> np.ndarray:
    """Percentile rank within each query in (0, 1], 1 the best; ties share their mean rank."""
    s = np.asarray(scores, dtype=np.float64)
    gid, off = _group_ids(s.shape[0], qid, offsets)
    return _group_percentile(s, gid, np.diff(off))


def _group_percentile(values: np.ndarray, gid: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Percentile rank (0, 1] of ``values`` within their group ``gid`` (``counts`` rows per
    group, groups in any row order); ties share their mean rank."""
    order = np.lexsort((values, gid))
    sorted_v, sorted_g = values[order], gid[order]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    position = np.arange(values.shape[0]) - starts[sorted_g] + 1.0
    # Average ranks over ties (same group, same value).
    new_run = np.r_[True, (sorted_v[1:] != sorted_v[:-1]) | (sorted_g[1:] != sorted_g[:-1])]
    run_id = np.cumsum(new_run) - 1
    run_mean = np.bincount(run_id, weights=position) / np.bincount(run_id)
    ranks = np.empty(values.shape[0], dtype=np.float64)
    ranks[order] = run_mean[run_id] / np.asarray(counts, dtype=np.float64)[sorted_g]
    return ranks


def missing_last(
    values: npt.ArrayLike,
    *,
    sign: float = 1.0,
    qid: npt.ArrayLike | None = None,
    offsets: npt.ArrayLike | None = None,
) -> np.ndarray:
    """``sign * values`` as scores, a missing value (NaN) below every present one of its query.

    A raw feature as a ranker (``raw_dwell``: the mean dwell of a pair's clicks,
    missing for a pair never clicked): each query's missing values get its lowest
    present score minus 1, or 0 in a query without any. Per query, so a stacker
    that normalises an expert within the query sees the same scores in an
    experiment's table and in a single request.

    Example:
        >>> missing_last([3.0, float("nan"), 1.0, float("nan")], qid=["a", "a", "a", "b"])
        array([3., 0., 1., 0.])
    """
    s = np.asarray(values, dtype=np.float64) * float(sign)
    gid, off = _group_ids(s.shape[0], qid, offsets)
    present = np.isfinite(s)
    if present.all():
        return s
    lowest = np.full(off.shape[0] - 1, np.inf)
    np.minimum.at(lowest, gid[present], s[present])
    floor = np.where(np.isfinite(lowest), lowest - 1.0, 0.0)
    return np.where(present, s, floor[gid])


def break_ties(
    scores: npt.ArrayLike,
    secondary: npt.ArrayLike,
    *,
    qid: npt.ArrayLike | None = None,
    offsets: npt.ArrayLike | None = None,
) -> np.ndarray:
    """``scores`` with exact ties inside a query ordered by ``secondary`` (higher first).

    Adds ``secondary``'s within-query percentile times half the smallest gap
    between two different scores of one query, so the order of unequal scores
    never changes. NaN in ``secondary`` ranks below every value.

    Example:
        >>> break_ties([1.0, 1.0, 2.0], [0.2, 0.9, 0.0], qid=["a", "a", "a"]).argsort()[::-1]
        array([2, 1, 0])
    """
    s = np.asarray(scores, dtype=np.float64)
    key = np.asarray(secondary, dtype=np.float64)
    if key.shape != s.shape:
        raise ValueError(f"scores and secondary differ in shape: {s.shape}, {key.shape}")
    gid, _ = _group_ids(s.shape[0], qid, offsets)
    order = np.lexsort((s, gid))
    gaps = np.diff(s[order])
    same_query = gid[order][1:] == gid[order][:-1]
    positive = gaps[same_query & (gaps > 0)]
    step = 0.5 * float(positive.min()) if positive.size else 1.0
    key = np.where(np.isnan(key), -np.inf, key)
    return s + step * rank_per_query(key, qid=qid, offsets=offsets)


NORMALISERS: dict[str, Callable[..., np.ndarray]] = {
    "zscore": zscore_per_query,
    "rank": rank_per_query,
}


def normalised_mean(
    parts: Sequence[npt.ArrayLike],
    *,
    qid: npt.ArrayLike | None = None,
    offsets: npt.ArrayLike | None = None,
    normalisation: str = "zscore",
) -> np.ndarray:
    """The row-wise mean of several models' per-query normalised scores: one model of them.

    The experiment's ``llm_ensemble`` and a bundle's several LLM models both
    combine through this function.
    """
    if not parts:
        raise ValueError("normalised_mean: no scores to average")
    if normalisation not in NORMALISERS:
        raise ConfigError(
            f"normalisation must be one of {sorted(NORMALISERS)}, got {normalisation!r}"
        )
    norm = NORMALISERS[normalisation]
    return np.mean([norm(p, qid=qid, offsets=offsets) for p in parts], axis=0)


#: How exact score ties inside a query are ordered: ``text`` (by :func:`text_order` of the
#: pair's text scores) or ``none`` (the input order).
TIE_BREAKS = ("text", "none")


def _percentile_ignoring_nan(values: np.ndarray, gid: np.ndarray, n_groups: int) -> np.ndarray:
    """Percentile rank (0, 1] within each group among its finite values (ties averaged); NaN
    stays NaN. Groups need not be contiguous."""
    out = np.full(values.shape[0], np.nan)
    idx = np.flatnonzero(np.isfinite(values))
    if idx.size:
        g = gid[idx]
        out[idx] = _group_percentile(values[idx], g, np.bincount(g, minlength=n_groups))
    return out


def text_order(columns: Sequence[npt.ArrayLike], *, qid: npt.ArrayLike) -> np.ndarray:
    """The mean of ``columns``' within-query percentile ranks, in [0, 1] (1 the best).

    A NaN value takes no part: its pair averages the other columns' percentiles
    (0 with none). ``columns`` are text scores, e.g. the judge's semantic
    similarity and BM25: the order ``rule`` ranks by and exact ties are broken by.
    Rows of a query need not be contiguous.
    """
    q = np.asarray(qid)
    if not columns:
        return np.zeros(q.shape[0])
    _, gid = np.unique(q, return_inverse=True)
    gid = gid.ravel()
    n_groups = int(gid.max()) + 1 if gid.size else 0
    stacked = np.column_stack(
        [_percentile_ignoring_nan(np.asarray(c, dtype=np.float64), gid, n_groups) for c in columns]
    )
    present = np.isfinite(stacked)
    total = np.where(present, stacked, 0.0).sum(axis=1)
    return total / np.maximum(present.sum(axis=1), 1)
