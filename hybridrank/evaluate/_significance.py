"""Paired significance tests and bootstrap confidence intervals over per-query values."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class PairedTest:
    """Result of a paired test of system A against system B.

    Attributes:
        mean_diff: Mean of A - B over the queries both systems have.
        p_value: Two-sided p-value.
        n: Number of paired queries used.
        test: ``"randomization"`` or ``"t-test"``.
    """

    mean_diff: float
    p_value: float
    n: int
    test: str


def _paired(a: npt.ArrayLike, b: npt.ArrayLike) -> np.ndarray:
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired values must be 1-D of equal length, got {x.shape}, {y.shape}")
    keep = ~(np.isnan(x) | np.isnan(y))
    return x[keep] - y[keep]


def randomization_test(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    *,
    n_resamples: int = 10_000,
    rng: np.random.Generator | int | None = 0,
    batch: int = 1_000,
) -> PairedTest:
    """Two-sided paired randomisation (sign-flip) test on per-query values.

    Under the null hypothesis the sign of each per-query difference is
    exchangeable; the p-value is the share of random sign flips whose mean
    difference is at least as extreme as the observed one, with the +1
    correction so it is never 0. Queries with NaN in either system are left out.
    """
    d = _paired(a, b)
    gen = np.random.default_rng(rng)
    if d.size == 0:
        return PairedTest(float("nan"), float("nan"), 0, "randomization")
    observed = abs(d.mean())
    extreme = 0
    done = 0
    while done < n_resamples:
        m = min(batch, n_resamples - done)
        signs = gen.integers(0, 2, size=(m, d.size), dtype=np.int8) * 2 - 1
        means = np.abs(signs @ d) / d.size
        extreme += int(np.count_nonzero(means >= observed - 1e-12))
        done += m
    p = (extreme + 1) / (n_resamples + 1)
    return PairedTest(float(d.mean()), float(p), int(d.size), "randomization")


def paired_t_test(a: npt.ArrayLike, b: npt.ArrayLike) -> PairedTest:
    """Two-sided paired Student t-test (scipy) on per-query values."""
    d = _paired(a, b)
    if d.size < 2 or np.allclose(d, d[0]):
        p = 1.0 if d.size and np.allclose(d, 0) else float("nan")
        return PairedTest(float(d.mean()) if d.size else float("nan"), p, int(d.size), "t-test")
    from scipy import stats  # scipy.stats takes half a second to import: on first use

    result = stats.ttest_1samp(d, 0.0)
    return PairedTest(float(d.mean()), float(result.pvalue), int(d.size), "t-test")


def bootstrap_ci(
    values: npt.ArrayLike,
    *,
    confidence: float = 0.95,
    n_resamples: int = 2_000,
    rng: np.random.Generator | int | None = 0,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean over queries (NaN skipped).

    Returns:
        ``(low, high)``; ``(nan, nan)`` when no value is finite.
    """
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return float("nan"), float("nan")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    gen = np.random.default_rng(rng)
    means = np.empty(n_resamples)
    step = max(1, 2_000_000 // max(x.size, 1))
    for start in range(0, n_resamples, step):
        stop = min(start + step, n_resamples)
        idx = gen.integers(0, x.size, size=(stop - start, x.size))
        means[start:stop] = x[idx].mean(axis=1)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return float(low), float(high)


def max_gain_test(
    gains: npt.ArrayLike, *, n_resamples: int = 10_000, rng: np.random.Generator | int | None = 0
) -> float:
    """One-sided p-value that the best of several candidates beats the baseline.

    ``gains`` holds, per candidate (rows) and query (columns), the candidate's
    value minus the baseline's. Under the null hypothesis no candidate differs
    from the baseline, so each query's signs may be flipped, jointly for every
    candidate. The statistic is the largest mean gain over the candidates;
    the p-value is the share of sign flips whose largest mean gain reaches
    the observed one (+1 correction). Testing the maximum over the same flips
    accounts for the best candidate having been chosen on these queries,
    which a test of the chosen one alone would ignore. Queries with a NaN
    gain in any candidate are left out.

    Example:
        >>> round(max_gain_test([[1.0, 2.0, 1.5, 0.5, 1.0, 2.0, 1.0, 1.5]]), 3)
        0.004
    """
    d = np.atleast_2d(np.asarray(gains, dtype=np.float64))
    d = d[:, ~np.isnan(d).any(axis=0)]
    if d.shape[1] == 0:
        return float("nan")
    observed = float(d.mean(axis=1).max())
    gen = np.random.default_rng(rng)
    reached = 0
    for start in range(0, n_resamples, 1_000):
        m = min(1_000, n_resamples - start)
        signs = gen.integers(0, 2, size=(m, d.shape[1])).astype(np.float64) * 2 - 1
        flipped = (signs @ d.T).max(axis=1) / d.shape[1]
        reached += int((flipped >= observed - 1e-12).sum())
    return (reached + 1) / (n_resamples + 1)
