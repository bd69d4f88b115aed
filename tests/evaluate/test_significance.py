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


def test_max_gain_test_allows_for_choosing_the_best_candidate() -> None:
    from hybridrank.evaluate import max_gain_test

    gen = np.random.default_rng(3)
    # Every query gains: significant even though it is the best of one.
    assert max_gain_test(np.full((1, 12), 0.5)) < 0.001
    # Twenty candidates of pure noise: the best one alone looks significant
    # far more often than one time in twenty; the max test does not.
    single, joint = [], []
    for _ in range(40):
        noise = gen.normal(size=(20, 15))
        best = int(noise.mean(axis=1).argmax())
        single.append(randomization_test(noise[best], np.zeros(15), n_resamples=2_000).p_value)
        joint.append(max_gain_test(noise, n_resamples=2_000, rng=1))
    assert np.mean(np.array(single) < 0.05) > 0.2
    assert np.mean(np.array(joint) < 0.05) <= 0.1
    assert all(j >= s / 2 for s, j in zip(single, joint, strict=True))
    # NaN queries are left out; none left is NaN.
    assert np.isnan(max_gain_test([[np.nan, np.nan]]))
    with_nan = np.array([[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, np.nan]])
    assert max_gain_test(with_nan) == pytest.approx(max_gain_test(with_nan[:, :6]))
