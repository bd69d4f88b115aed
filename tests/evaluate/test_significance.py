from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from hybridrank.evaluate import bootstrap_ci, paired_t_test, randomization_test


def test_randomization_identical_systems_p_is_one(rng: np.random.Generator) -> None:
    a = rng.random(50)
    result = randomization_test(a, a, n_resamples=2000)
    assert result.p_value == 1.0
    assert result.mean_diff == 0.0


def test_randomization_detects_clear_difference(rng: np.random.Generator) -> None:
    a = rng.random(80)
    b = a - 0.1 + rng.normal(0, 0.02, 80)
    result = randomization_test(a, b, n_resamples=5000, rng=1)
    assert result.p_value < 0.001
    assert result.mean_diff == pytest.approx(np.mean(a - b))


def test_randomization_agrees_with_t_test_roughly(rng: np.random.Generator) -> None:
    a = rng.random(200)
    b = a + rng.normal(0.02, 0.15, 200)
    r = randomization_test(a, b, n_resamples=20000, rng=2)
    t = paired_t_test(a, b)
    assert abs(r.p_value - t.p_value) < 0.03


def test_nan_pairs_are_left_out() -> None:
    a = np.array([0.5, np.nan, 0.7, 0.2])
    b = np.array([0.4, 0.3, np.nan, 0.1])
    assert randomization_test(a, b, n_resamples=100).n == 2
    assert paired_t_test(a, b).n == 2


def test_t_test_matches_scipy(rng: np.random.Generator) -> None:
    a, b = rng.random(30), rng.random(30)
    assert paired_t_test(a, b).p_value == pytest.approx(stats.ttest_rel(a, b).pvalue)


def test_bootstrap_ci_brackets_mean_and_is_seeded(rng: np.random.Generator) -> None:
    x = rng.random(300)
    low, high = bootstrap_ci(x, rng=3)
    assert low < x.mean() < high
    assert (low, high) == bootstrap_ci(x, rng=3)
    # Roughly the normal-theory interval.
    se = x.std(ddof=1) / np.sqrt(x.size)
    assert high - low == pytest.approx(2 * 1.96 * se, rel=0.15)
    assert all(np.isnan(bootstrap_ci([np.nan])))
