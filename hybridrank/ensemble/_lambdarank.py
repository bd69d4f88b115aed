"""LambdaRank gradients over grouped arrays, vectorised per query with a padded grid.

These power FAMOL's custom objective: one call per label source, each with
its own row mask (click labels exist only for shown rows), combined with
per-query weights.
"""

from __future__ import annotations

import numpy as np

from hybridrank._grouping import Padded


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
    without its position-bias and normalisation options).

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
        padded: A precomputed grid for these offsets (reused across rounds).

    Returns:
        ``(grad, hess)``, each shape ``(n,)``.
    """
    pad = padded or Padded.from_offsets(offsets)
    mask = pad.mask.copy()
    y_all = np.asarray(labels, dtype=np.float64)
    has_label = ~np.isnan(y_all)
    if valid is not None:
        has_label &= np.asarray(valid, dtype=bool)
    mask &= has_label[pad.index]
    y = np.where(mask, np.nan_to_num(y_all)[pad.index], 0.0)
    s = np.where(mask, np.asarray(scores, dtype=np.float64)[pad.index], -np.inf)
    if gain is None:
        table = label_gain if label_gain is not None else 2.0 ** np.arange(32) - 1.0
        gain = np.where(mask, table[np.clip(y.astype(np.int64), 0, table.size - 1)], 0.0)
    else:
        gain = np.where(mask, np.asarray(gain, dtype=np.float64)[pad.index], 0.0)

    # Current rank of every labelled row within its query (1-based, by score).
    order = np.argsort(-s, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(
        ranks, order, np.arange(1, s.shape[1] + 1)[None, :].repeat(s.shape[0], 0), axis=1
    )
    disc = np.where(mask, 1.0 / np.log2(ranks + 1.0), 0.0)
    ideal = -np.sort(-gain, axis=1)
    idcg = (ideal / np.log2(np.arange(2, s.shape[1] + 2))[None, :]).sum(axis=1)
    inv_idcg = np.divide(1.0, idcg, out=np.zeros_like(idcg), where=idcg > 0)

    # Only a row above its query's lowest label can be the higher side of a pair, so
    # the (higher, any) grid is (n_queries, width_hi, width): with graded labels most
    # rows hold the lowest label (and with click labels most rows hold none), so
    # width_hi is a fraction of width.
    y_low = np.where(mask, y, np.inf).min(axis=1, initial=np.inf)
    hi_mask = mask & (y > y_low[:, None])
    width_hi = int(hi_mask.sum(axis=1).max(initial=0))
    hi = np.argsort(~hi_mask, axis=1, kind="stable")[:, :width_hi]
    hi_valid = np.take_along_axis(hi_mask, hi, axis=1)
    s_safe = np.where(mask, s, 0.0)

    def at_hi(grid: np.ndarray) -> np.ndarray:
        return np.take_along_axis(grid, hi, axis=1)

    pair = (at_hi(y)[:, :, None] > y[:, None, :]) & hi_valid[:, :, None] & mask[:, None, :]
    diff = at_hi(s_safe)[:, :, None] - s_safe[:, None, :]
    rho = 1.0 / (1.0 + np.exp(np.clip(sigma * diff, -50, 50)))
    delta = (
        np.abs(at_hi(gain)[:, :, None] - gain[:, None, :])
        * np.abs(at_hi(disc)[:, :, None] - disc[:, None, :])
        * inv_idcg[:, None, None]
    )
    lam = np.where(pair, sigma * rho * delta, 0.0)
    h = np.where(pair, sigma * sigma * rho * (1.0 - rho) * delta, 0.0)
    grad_grid = lam.sum(axis=1)
    hess_grid = h.sum(axis=1)
    rows = np.arange(s.shape[0])[:, None]
    # Columns of ``hi`` are distinct within a row, so the fancy-indexed += adds once each.
    grad_grid[rows, hi] -= np.where(hi_valid, lam.sum(axis=2), 0.0)
    hess_grid[rows, hi] += np.where(hi_valid, h.sum(axis=2), 0.0)

    n = np.asarray(scores).shape[0]
    grad = np.zeros(n)
    hess = np.zeros(n)
    grad[pad.index[pad.mask]] = grad_grid[pad.mask]
    hess[pad.index[pad.mask]] = hess_grid[pad.mask]
    return grad, hess
