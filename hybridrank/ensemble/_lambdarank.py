"""LambdaRank gradients over grouped arrays: the pairs listed once, scored every round.

These power FAMOL's custom objective (one pair list per label source, each
with its own row mask: click labels exist only for shown rows, combined with
per-query weights) and the propensity-weighted objective of the unbiased
baseline. Labels do not change between boosting rounds, so which rows pair
up, and each pair's gain difference, are computed once
(:meth:`LambdaRankPairs.build`); a round only ranks the rows by the new
scores and evaluates the pairs (:meth:`LambdaRankPairs.gradients`). On the
NFCorpus world (about 35 candidates per query) the list holds roughly a tenth
of the cells of a dense (higher row, any row) grid per query.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hybridrank._grouping import Padded

#: Most (query, row, row) cells compared at once while listing pairs (16 MiB of booleans).
PAIR_BLOCK_CELLS = 1 << 24


@dataclass(frozen=True)
class LambdaRankPairs:
    """Every (higher label, lower label) pair of rows within a query, for fixed labels.

    Attributes:
        padded: The ``(n_queries, width)`` grid of the queries' rows.
        mask: Grid cells of rows that take part (labelled and valid).
        higher: Grid cell (flat index) of each pair's higher-labelled row.
        lower: Grid cell (flat index) of each pair's lower-labelled row.
        weight: ``|gain_higher - gain_lower| / IDCG`` of the pair's query.
        n_rows: Rows of the flat arrays.
    """

    padded: Padded
    mask: np.ndarray
    higher: np.ndarray
    lower: np.ndarray
    weight: np.ndarray
    n_rows: int

    @classmethod
    def build(
        cls,
        labels: np.ndarray,
        offsets: np.ndarray,
        *,
        label_gain: np.ndarray | None = None,
        gain: np.ndarray | None = None,
        valid: np.ndarray | None = None,
        padded: Padded | None = None,
    ) -> LambdaRankPairs:
        """The pairs of ``labels`` (see :func:`lambdarank_gradients` for the arguments)."""
        pad = padded or Padded.from_offsets(offsets)
        y_all = np.asarray(labels, dtype=np.float64)
        has_label = ~np.isnan(y_all)
        if valid is not None:
            has_label &= np.asarray(valid, dtype=bool)
        mask = pad.mask & has_label[pad.index]
        y = np.where(mask, np.nan_to_num(y_all)[pad.index], 0.0)
        if gain is None:
            table = label_gain if label_gain is not None else 2.0 ** np.arange(32) - 1.0
            g = np.where(mask, table[np.clip(y.astype(np.int64), 0, table.size - 1)], 0.0)
        else:
            g = np.where(mask, np.asarray(gain, dtype=np.float64)[pad.index], 0.0)
        width = mask.shape[1]
        ideal = -np.sort(-g, axis=1)
        idcg = (ideal / np.log2(np.arange(2, width + 2))[None, :]).sum(axis=1)
        inv_idcg = np.divide(1.0, idcg, out=np.zeros_like(idcg), where=idcg > 0)

        # Every (higher, lower) pair, a block of queries at a time: the block's
        # (query, row, row) comparison stays under PAIR_BLOCK_CELLS cells.
        block = max(1, PAIR_BLOCK_CELLS // max(width * width, 1))
        higher, lower = [], []
        for start in range(0, mask.shape[0], block):
            ys, ms = y[start : start + block], mask[start : start + block]
            pair = (ys[:, :, None] > ys[:, None, :]) & ms[:, :, None] & ms[:, None, :]
            pair &= (inv_idcg[start : start + block] > 0)[:, None, None]
            q, i, j = np.nonzero(pair)
            base = (q + start) * width
            higher.append(base + i)
            lower.append(base + j)
        hi_cell = np.concatenate(higher) if higher else np.zeros(0, dtype=np.int64)
        lo_cell = np.concatenate(lower) if lower else np.zeros(0, dtype=np.int64)
        flat_g = g.ravel()
        weight = np.abs(flat_g[hi_cell] - flat_g[lo_cell]) * inv_idcg[hi_cell // max(width, 1)]
        return cls(
            padded=pad,
            mask=mask,
            higher=hi_cell,
            lower=lo_cell,
            weight=weight,
            n_rows=int(np.asarray(offsets)[-1]),
        )

    def gradients(self, scores: np.ndarray, sigma: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """Gradient and Hessian per row at ``scores`` (shape ``(n_rows,)``)."""
        pad, mask = self.padded, self.mask
        s = np.where(mask, np.asarray(scores, dtype=np.float64)[pad.index], -np.inf)
        # Current rank of every labelled row within its query (1-based, by score; ties
        # keep row order).
        order = np.argsort(-s, axis=1, kind="stable")
        ranks = np.empty_like(order)
        np.put_along_axis(ranks, order, np.arange(1, s.shape[1] + 1)[None, :], axis=1)
        disc = np.where(mask, 1.0 / np.log2(ranks + 1.0), 0.0).ravel()
        flat_s = np.where(mask, s, 0.0).ravel()
        hi, lo = self.higher, self.lower
        rho = 1.0 / (1.0 + np.exp(np.clip(sigma * (flat_s[hi] - flat_s[lo]), -50, 50)))
        delta = self.weight * np.abs(disc[hi] - disc[lo])
        lam = sigma * rho * delta
        h = sigma * sigma * rho * (1.0 - rho) * delta
        cells = mask.size
        grad_grid = np.bincount(lo, lam, cells) - np.bincount(hi, lam, cells)
        hess_grid = np.bincount(lo, h, cells) + np.bincount(hi, h, cells)
        grad = np.zeros(self.n_rows)
        hess = np.zeros(self.n_rows)
        rows = pad.index.ravel()[pad.mask.ravel()]
        grad[rows] = grad_grid[pad.mask.ravel()]
        hess[rows] = hess_grid[pad.mask.ravel()]
        return grad, hess


def lambdarank_gradients(
    scores: np.ndarray,
    labels: np.ndarray,
    offsets: np.ndarray,
    *,
    label_gain: np.ndarray | None = None,
    gain: np.ndarray | None = None,
    sigma: float = 1.0,
    valid: np.ndarray | None = None,
    padded: Padded | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Gradient and Hessian of LambdaRank (NDCG-weighted pairwise logistic loss) per row.

    For every pair (i, j) of one query with label_i > label_j:
    ``rho = 1 / (1 + exp(sigma (s_i - s_j)))``, ``|dNDCG|`` the change of NDCG
    when the two swap ranks, ``grad_i -= sigma rho |dNDCG|``,
    ``grad_j += sigma rho |dNDCG|`` and both Hessians grow by
    ``sigma^2 rho (1 - rho) |dNDCG|`` (Burges 2010; LightGBM's lambdarank
    without its position-bias and normalisation options). A boosting loop
    builds :class:`LambdaRankPairs` once and calls its ``gradients`` per round.

    Args:
        scores: Current scores, shape ``(n,)``.
        labels: Graded labels; NaN marks rows without a label (they take part
            in no pair and get zero gradient).
        offsets: Query offsets, shape ``(n_queries + 1,)``.
        label_gain: Gain per integer label; default ``2^l - 1``.
        gain: Gain per row, in place of ``label_gain[label]`` (pairs still
            come from the labels): e.g. a click weighted by the inverse of its
            position's examination, for propensity-weighted LambdaMART.
        sigma: Sigmoid steepness.
        valid: Optional extra row mask of rows that count.
        padded: A precomputed grid for these offsets.

    Returns:
        ``(grad, hess)``, each shape ``(n,)``.
    """
    pairs = LambdaRankPairs.build(
        labels, offsets, label_gain=label_gain, gain=gain, valid=valid, padded=padded
    )
    return pairs.gradients(scores, sigma)
