"""Ranking metrics over grouped flat arrays, vectorised with numpy.

Every metric has the signature ``fn(scores, labels, *, qid=None, offsets=None,
k=None) -> per-query array`` (Rax's convention): ``scores`` and ``labels``
are flat arrays of shape ``(n_rows,)`` whose rows are grouped by query, given
either as a row-level ``qid`` (rows of a query contiguous) or as ``offsets``
of shape ``(n_queries + 1,)``. The result has one value per query, in the
order queries first appear.

Policy for queries without a relevant document (no label >= 1 among its
rows): every metric returns NaN for them. Means over queries skip NaN and
reports count those queries separately, so a collection whose candidates miss
all relevant documents for some queries neither inflates nor deflates the
score. Ties in score are broken by row order (the earlier row ranks higher),
so results are deterministic.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

from hybridrank._grouping import Padded, resolve_groups
from hybridrank.errors import ConfigError

Gain = Literal["exp", "linear"]

# Above this many padded cells per real row the dense grid would waste memory
# (one huge query among small ones); the flat sort path is used instead.
_MAX_PAD_RATIO = 4.0
# Below this many grid cells one thread is faster than several.
_PARALLEL_MIN_CELLS = 1_000_000


class MetricFn(Protocol):
    def __call__(
        self,
        scores: npt.ArrayLike,
        labels: npt.ArrayLike,
        *,
        qid: npt.ArrayLike | None = None,
        offsets: npt.ArrayLike | None = None,
        k: int | None = None,
    ) -> np.ndarray: ...


@dataclass(frozen=True)
class RankedLabels:
    """Labels of each query's top-k rows in rank order.

    Attributes:
        top: Labels in score order, shape ``(n_queries, k)``; 0 past a
            query's last row.
        valid: True where ``top`` holds a real row.
        ideal: Labels sorted descending, same shape (the ideal ranking).
        has_relevant: Whether the query has any label >= 1, shape ``(n_queries,)``.
    """

    top: np.ndarray
    valid: np.ndarray
    ideal: np.ndarray
    has_relevant: np.ndarray


def _as_arrays(scores: npt.ArrayLike, labels: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores)
    y = np.asarray(labels)
    # Signed integer and float inputs are used as they are (no copy); others
    # (unsigned, bool, object) are converted, so negation cannot wrap around.
    if s.dtype.kind not in "if":
        s = s.astype(np.float64)
    if y.dtype.kind not in "if":
        y = y.astype(np.float64)
    if s.ndim != 1 or y.shape != s.shape:
        raise ValueError(f"scores and labels must be 1-D of equal length, got {s.shape}, {y.shape}")
    if s.dtype.kind == "f" and np.isnan(s).any():
        raise ValueError(f"scores contain {int(np.isnan(s).sum())} NaN values")
    if y.dtype.kind == "f" and np.isnan(y).any():
        raise ValueError(f"labels contain {int(np.isnan(y).sum())} NaN values")
    return s, y


def _top_k_columns(grid: np.ndarray, k: int) -> np.ndarray:
    """Column indices of each row's k largest values, largest first, ties by column."""
    n, width = grid.shape
    if k >= width:
        order = np.argsort(-grid, axis=1, kind="quicksort")
        vals = np.take_along_axis(grid, order, axis=1)
    else:
        part = np.argpartition(grid, width - k, axis=1)[:, width - k :]
        part_vals = np.take_along_axis(grid, part, axis=1)
        inner = np.argsort(-part_vals, axis=1, kind="quicksort")
        order = np.take_along_axis(part, inner, axis=1)
        vals = np.take_along_axis(part_vals, inner, axis=1)
    kk = order.shape[1]
    tied = np.any(vals[:, 1:] == vals[:, :-1], axis=1) if kk > 1 else np.zeros(n, dtype=bool)
    if k < width:
        # The k-th value shared with a row left out: the selection itself is a tie.
        tied |= np.count_nonzero(grid >= vals[:, -1:], axis=1) > k
    if tied.any():
        rows = np.flatnonzero(tied)
        order[rows] = np.argsort(-grid[rows], axis=1, kind="stable")[:, :kk]
    return order


def _top_k_desc(grid: np.ndarray, k: int) -> np.ndarray:
    """Each row's k largest values, largest first (values only: ties do not matter)."""
    width = grid.shape[1]
    if k >= width:
        return -np.sort(-grid, axis=1)
    part = np.partition(grid, width - k, axis=1)[:, width - k :]
    return -np.sort(-part, axis=1)


Block = tuple[np.ndarray, np.ndarray, np.ndarray]


def _rank_grid(grid_s: np.ndarray, grid_y: np.ndarray, mask: np.ndarray | None, k: int) -> Block:
    cols = _top_k_columns(grid_s, k)
    top = np.take_along_axis(grid_y, cols, axis=1)
    if mask is None:
        valid = np.ones(top.shape, dtype=bool)
    else:
        valid = np.take_along_axis(mask, cols, axis=1)
        top = np.where(valid, top, 0.0)
    return top, valid, _top_k_desc(grid_y, k)


def _chunked(n_q: int, work: Callable[[slice], Block], n_cells: int) -> Block:
    """Run ``work`` over row blocks in threads (numpy releases the GIL in sorts
    and ufuncs), then stack the blocks."""
    n_workers = min(os.cpu_count() or 1, 8)
    if n_cells < _PARALLEL_MIN_CELLS or n_workers < 2 or n_q < 2 * n_workers:
        return work(slice(0, n_q))
    bounds = np.linspace(0, n_q, n_workers + 1).astype(int)
    blocks = [slice(int(a), int(b)) for a, b in itertools.pairwise(bounds)]
    with ThreadPoolExecutor(max_workers=n_workers) as pool:
        parts = list(pool.map(work, blocks))
    return (
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] for p in parts]),
    )


def rank_labels(
    scores: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    qid: npt.ArrayLike | None = None,
    offsets: npt.ArrayLike | None = None,
    k: int | None = None,
) -> RankedLabels:
    """Sort each query's labels by score and keep the top ``k`` (all when None)."""
    s, y = _as_arrays(scores, labels)
    off = resolve_groups(s.shape[0], qid, offsets)
    lengths = np.diff(off)
    n_q = lengths.shape[0]
    width = int(lengths.max()) if n_q else 0
    kk = width if k is None else int(k)
    if kk < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if n_q == 0 or width == 0:
        empty = np.zeros((n_q, kk))
        return RankedLabels(empty, empty.astype(bool), empty, np.zeros(n_q, dtype=bool))

    k_eff = min(kk, width)
    if lengths.min() == width:
        # Every query has the same number of rows: the grid is a reshape, no padding.
        grid_s = s.reshape(n_q, width)
        grid_y = y.reshape(n_q, width)
        top, valid, ideal = _chunked(
            n_q, lambda b: _rank_grid(grid_s[b], grid_y[b], None, k_eff), s.shape[0]
        )
    elif n_q * width <= _MAX_PAD_RATIO * s.shape[0] + 1_000_000:
        pad = Padded.from_offsets(off)

        def work(b: slice) -> Block:
            m, idx = pad.mask[b], pad.index[b]
            return _rank_grid(np.where(m, s[idx], -np.inf), np.where(m, y[idx], 0.0), m, k_eff)

        top, valid, ideal = _chunked(n_q, work, n_q * width)
    else:
        top, valid, ideal = _flat_top_k(s, y, off, k_eff)
    # The ideal order starts with the query's best label.
    has_rel = ideal[:, 0] >= 1
    if top.shape[1] < kk:
        extra = kk - top.shape[1]
        top = np.pad(top, ((0, 0), (0, extra)))
        valid = np.pad(valid, ((0, 0), (0, extra)))
        ideal = np.pad(ideal, ((0, 0), (0, extra)))
    return RankedLabels(top=top, valid=valid, ideal=ideal, has_relevant=has_rel)


def _flat_top_k(
    s: np.ndarray, y: np.ndarray, off: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lengths = np.diff(off)
    gid = np.repeat(np.arange(lengths.shape[0]), lengths)
    out = []
    for key in (-s, -y):
        order = np.lexsort((key, gid))
        rank = np.arange(s.shape[0]) - off[gid]
        keep = rank < k
        grid = np.zeros((lengths.shape[0], k))
        mask = np.zeros((lengths.shape[0], k), dtype=bool)
        grid[gid[keep], rank[keep]] = y[order][keep]
        mask[gid[keep], rank[keep]] = True
        out.append((grid, mask))
    (top, valid), (ideal, _) = out
    return top, valid, ideal


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))


def _gain(labels: np.ndarray, gain: Gain) -> np.ndarray:
    if gain == "exp":
        return np.exp2(labels) - 1.0
    if gain == "linear":
        return labels
    raise ValueError(f"gain must be 'exp' or 'linear', got {gain!r}")


def _no_relevant_to_nan(values: np.ndarray, ranked: RankedLabels) -> np.ndarray:
    return np.where(ranked.has_relevant, values, np.nan)


def dcg_at_k(
    scores: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    qid: npt.ArrayLike | None = None,
    offsets: npt.ArrayLike | None = None,
    k: int | None = None,
    gain: Gain = "exp",
) -> np.ndarray:
    """Discounted cumulative gain of the top ``k``: sum of gain(label) / log2(rank + 1).

    Example:
        >>> dcg_at_k([3.0, 2.0, 1.0], [0, 1, 1], offsets=[0, 3], gain="linear").round(4)
        array([1.1309])
    """
    ranked = rank_labels(scores, labels, qid=qid, offsets=offsets, k=k)
    disc = _discounts(ranked.top.shape[1])
    value = (_gain(ranked.top, gain) * disc).sum(axis=1)
    return _no_relevant_to_nan(value, ranked)


def ndcg_at_k(
    scores: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    qid: npt.ArrayLike | None = None,
    offsets: npt.ArrayLike | None = None,
    k: int | None = None,
    gain: Gain = "exp",
) -> np.ndarray:
    """Normalised DCG: DCG@k over the DCG@k of the ideal order of the same rows.

    The ideal ranking is computed from the query's own rows (the candidates),
    not from all judged documents. ``gain="exp"`` uses 2^label - 1 (Burges),
    ``"linear"`` uses the label (trec_eval).
    """
    ranked = rank_labels(scores, labels, qid=qid, offsets=offsets, k=k)
    disc = _discounts(ranked.top.shape[1])
    dcg = (_gain(ranked.top, gain) * disc).sum(axis=1)
    idcg = (_gain(ranked.ideal, gain) * disc).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.where(idcg > 0, dcg / np.where(idcg > 0, idcg, 1.0), np.nan)
    return _no_relevant_to_nan(value, ranked)


def mrr(
    scores: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    qid: npt.ArrayLike | None = None,
    offsets: npt.ArrayLike | None = None,
    k: int | None = None,
    threshold: float = 1.0,
) -> np.ndarray:
    """Reciprocal rank of the first row with label >= ``threshold`` (0 if none in the top k)."""
    ranked = rank_labels(scores, labels, qid=qid, offsets=offsets, k=k)
    hit = (ranked.top >= threshold) & ranked.valid
    first = np.argmax(hit, axis=1)
    value = np.where(hit.any(axis=1), 1.0 / (first + 1.0), 0.0)
    return _no_relevant_to_nan(value, ranked)


def err_at_k(
    scores: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    qid: npt.ArrayLike | None = None,
    offsets: npt.ArrayLike | None = None,
    k: int | None = None,
    max_grade: float | None = None,
) -> np.ndarray:
    """Expected reciprocal rank (Chapelle et al. 2009) over the top ``k``.

    A row of grade ``g`` stops the user with probability
    ``R = (2^g - 1) / 2^max_grade``; ERR = sum_r (1/r) R_r prod_{i<r}(1 - R_i).

    Args:
        max_grade: Highest grade of the scale; default the largest label seen.
    """
    ranked = rank_labels(scores, labels, qid=qid, offsets=offsets, k=k)
    g_max = float(np.max(ranked.top, initial=0.0)) if max_grade is None else float(max_grade)
    if max_grade is None:
        g_max = max(g_max, float(np.max(ranked.ideal, initial=0.0)))
    stop = (np.exp2(ranked.top) - 1.0) / np.exp2(g_max)
    stop = np.where(ranked.valid, stop, 0.0)
    reach = np.cumprod(1.0 - stop, axis=1)
    reach = np.concatenate([np.ones((reach.shape[0], 1)), reach[:, :-1]], axis=1)
    ranks = np.arange(1, stop.shape[1] + 1, dtype=np.float64)
    value = (reach * stop / ranks).sum(axis=1)
    return _no_relevant_to_nan(value, ranked)


def precision_at_k(
    scores: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    qid: npt.ArrayLike | None = None,
    offsets: npt.ArrayLike | None = None,
    k: int | None = None,
    threshold: float = 1.0,
) -> np.ndarray:
    """Share of the top ``k`` with label >= ``threshold``; divides by k even when a query has fewer rows (trec_eval)."""
    if k is None:
        raise ValueError("precision_at_k needs k")
    ranked = rank_labels(scores, labels, qid=qid, offsets=offsets, k=k)
    value = ((ranked.top >= threshold) & ranked.valid).sum(axis=1) / float(k)
    return _no_relevant_to_nan(value, ranked)


MetricFamily = Callable[..., np.ndarray]

#: Metric families by name; ``parse_metric`` reads names like ``ndcg@10``.
METRICS: dict[str, tuple[MetricFamily, dict[str, object]]] = {
    "ndcg": (ndcg_at_k, {"gain": "exp"}),
    "ndcg_lin": (ndcg_at_k, {"gain": "linear"}),
    "dcg": (dcg_at_k, {"gain": "exp"}),
    "dcg_lin": (dcg_at_k, {"gain": "linear"}),
    "mrr": (mrr, {}),
    "err": (err_at_k, {}),
    "p": (precision_at_k, {}),
}


@dataclass(frozen=True)
class Metric:
    """A named metric with its cut-off, callable over grouped arrays.

    Example:
        >>> m = parse_metric("ndcg@10")
        >>> m.name, m.k
        ('ndcg@10', 10)
    """

    family: str
    k: int | None

    @property
    def name(self) -> str:
        return self.family if self.k is None else f"{self.family}@{self.k}"

    def __call__(
        self,
        scores: npt.ArrayLike,
        labels: npt.ArrayLike,
        *,
        qid: npt.ArrayLike | None = None,
        offsets: npt.ArrayLike | None = None,
    ) -> np.ndarray:
        fn, extra = METRICS[self.family]
        return fn(scores, labels, qid=qid, offsets=offsets, k=self.k, **extra)


def check_metrics(names: Sequence[str], *, key: str = "metrics") -> None:
    """Every name parses (:func:`parse_metric`); the error names the config ``key``.

    Config classes call it when they are built, so a bad metric fails when the config is
    read, not when the report is made after the training.
    """
    for name in names:
        try:
            parse_metric(name)
        except ConfigError as exc:
            raise ConfigError(f"{key}: {exc}") from None


def parse_metric(name: str) -> Metric:
    """Parse ``family[@k]`` (``ndcg@10``, ``ndcg_lin@5``, ``mrr``, ``err@20``, ``p@10``).

    Raises:
        ConfigError: An unknown family or a cut-off that is not a positive integer.
    """
    family, _, cut = str(name).strip().lower().partition("@")
    if family not in METRICS:
        raise ConfigError(f"unknown metric {name!r}; known families: {sorted(METRICS)}")
    k: int | None = None
    if cut:
        if not cut.isdigit() or int(cut) < 1:
            raise ConfigError(f"metric {name!r}: cut-off after '@' must be a positive integer")
        k = int(cut)
    if family == "p" and k is None:
        raise ConfigError("precision needs a cut-off, for example p@10")
    return Metric(family=family, k=k)
