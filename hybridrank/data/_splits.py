"""K-fold splits by query."""

from __future__ import annotations

import logging

import numpy as np
import numpy.typing as npt
import pandas as pd

from hybridrank.errors import ConfigError

logger = logging.getLogger(__name__)


def query_folds(
    n_queries: int,
    *,
    n_folds: int = 5,
    seed: int | np.random.Generator = 0,
    strata: npt.ArrayLike | None = None,
) -> np.ndarray:
    """Assign each query to one of ``n_folds`` folds.

    Queries are shuffled with the seed and dealt round-robin; with ``strata``
    (for example the frequency bucket of each query) the dealing runs within
    each stratum, so every fold gets a similar share of head and tail queries.

    Returns:
        Integer fold id per query, shape ``(n_queries,)``, values in ``[0, n_folds)``.

    Example:
        >>> np.bincount(query_folds(10, n_folds=5, seed=1)).tolist()
        [2, 2, 2, 2, 2]
    """
    if n_folds < 2:
        raise ConfigError(f"n_folds must be >= 2, got {n_folds}")
    if n_queries < n_folds:
        hint = (
            "no queries were read"
            if n_queries == 0
            else f"use at most {n_queries} folds (--folds, folds.n_folds) or more queries"
            if n_queries >= 2
            else "cross-validation needs at least 2 queries"
        )
        raise ConfigError(f"cannot split {n_queries} queries into {n_folds} folds: {hint}")
    rng = np.random.default_rng(seed)
    folds = np.empty(n_queries, dtype=np.int64)
    groups = np.zeros(n_queries, dtype=np.int64)
    if strata is not None:
        s = np.asarray(strata)
        if s.shape != (n_queries,):
            raise ValueError(f"strata must have shape ({n_queries},), got {s.shape}")
        _, groups = np.unique(s, return_inverse=True)
    offset = 0
    for g in range(int(groups.max()) + 1 if n_queries else 0):
        members = np.flatnonzero(groups == g)
        perm = rng.permutation(members)
        # Continue the round-robin across strata so small strata do not all land in fold 0.
        folds[perm] = (np.arange(perm.size) + offset) % n_folds
        offset += perm.size
    return folds


def fold_of_rows(qid: npt.ArrayLike, query_ids: npt.ArrayLike, folds: npt.ArrayLike) -> np.ndarray:
    """Broadcast per-query folds to rows of a table keyed by ``qid``."""
    lookup = pd.Series(np.asarray(folds), index=pd.Index(np.asarray(query_ids)))
    out = lookup.reindex(np.asarray(qid))
    if out.isna().any():
        raise KeyError(f"query {out.index[out.isna().to_numpy()][0]!r} has no fold")
    return out.to_numpy(dtype=np.int64)


def choose_tuning_queries(
    queries: pd.DataFrame, n: int, seed: int, *, qid: str = "qid", bucket: str = "bucket",
    eligible: str = "has_relevant",
) -> set[str]:
    """``n`` eligible queries, stratified by bucket (at least 4 per bucket where possible).

    Never more than a fifth of the eligible queries, overall and in each
    bucket: the rest must stay for evaluation. A request above that is cut,
    with a warning saying so.

    Args:
        queries: One row per query with the ``qid``, ``bucket`` and boolean
            ``eligible`` (has a relevant candidate) columns.
        n: Queries wanted.
        seed: Seed of the draw.
    """
    if n <= 0:
        return set()
    pool = queries[queries[eligible].to_numpy(dtype=bool)]
    cap = max(len(pool) // 5, 1)
    asked = n
    n = min(n, cap)
    rng = np.random.default_rng(seed)
    sizes = pool[bucket].value_counts()
    share = sizes / sizes.sum()
    want = np.maximum(np.round(share * n).astype(int), np.minimum(4, sizes)).astype(int)
    # A bucket never gives more than a fifth of its eligible queries (at least one), and
    # keeps one to evaluate: a bucket of one query gives none, or no table would show it.
    limit = pd.Series(np.where(sizes >= 2, np.maximum(sizes // 5, 1), 0), index=sizes.index)
    want = np.minimum(want, limit).astype(int)
    # The per-bucket floor can overshoot n: take the surplus from the buckets that give
    # most, the smaller bucket first on a tie; with fewer queries than buckets, the
    # smallest buckets give none (n is a cap, never exceeded).
    counts = sizes.to_numpy()
    while want.sum() > n:
        w = want.to_numpy()
        want.iloc[max(range(len(w)), key=lambda i: (w[i], -counts[i]))] -= 1
    # Rounding and the per-bucket limits can undershoot n: give the rest to the buckets
    # furthest below their share that can still give one.
    target = share * n
    while want.sum() < n and (want < limit).any():
        room = (want < limit).to_numpy()
        gap = np.where(room, (target - want).to_numpy(), -np.inf)
        want.iloc[int(np.argmax(gap))] += 1
    if want.sum() < asked:
        logger.warning(
            "tuning set: %d queries asked for, using %d: at most a fifth of the %d queries "
            "with a relevant candidate, and of each frequency bucket's (%s; a bucket of one "
            "gives none), so the rest stay for evaluation",
            asked, int(want.sum()), len(pool),
            ", ".join(f"{name} {int(c)}" for name, c in sizes.items()),
        )  # fmt: skip
    chosen: set[str] = set()
    for name, k in want.items():
        members = pool.loc[pool[bucket] == name, qid].to_numpy()
        chosen.update(
            str(q) for q in rng.choice(members, size=min(int(k), members.size), replace=False)
        )
    return chosen
