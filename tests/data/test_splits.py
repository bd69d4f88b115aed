from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hybridrank.data import fold_of_rows, query_folds
from hybridrank.errors import ConfigError


def test_folds_balanced_and_seeded() -> None:
    f = query_folds(103, n_folds=5, seed=1)
    assert np.bincount(f).min() >= 20
    np.testing.assert_array_equal(f, query_folds(103, n_folds=5, seed=1))
    assert not np.array_equal(f, query_folds(103, n_folds=5, seed=2))


def test_stratified_folds_spread_each_stratum() -> None:
    strata = np.array(["high"] * 10 + ["low"] * 90)
    f = query_folds(100, n_folds=5, seed=0, strata=strata)
    assert np.bincount(f[strata == "high"], minlength=5).tolist() == [2, 2, 2, 2, 2]


def test_fold_errors_and_rows() -> None:
    # A configuration error (one line from the CLI) that says what to do.
    with pytest.raises(ConfigError, match="use at most 3 folds"):
        query_folds(3, n_folds=5)
    with pytest.raises(ConfigError, match="no queries were read"):
        query_folds(0, n_folds=5)
    with pytest.raises(ConfigError, match="at least 2 queries"):
        query_folds(1, n_folds=2)
    with pytest.raises(ConfigError):
        query_folds(10, n_folds=1)
    rows = fold_of_rows(["a", "a", "b"], ["a", "b"], [3, 1])
    assert rows.tolist() == [3, 3, 1]
    with pytest.raises(KeyError, match="'c'"):
        fold_of_rows(["c"], ["a"], [0])


def test_tuning_queries_never_exceed_a_fifth_even_with_more_buckets() -> None:
    from hybridrank.data import choose_tuning_queries

    queries = pd.DataFrame({
        "qid": [f"q{i}" for i in range(5)],
        "bucket": ["low", "low", "low", "mid", "high"],
        "has_relevant": True,
    })  # fmt: skip
    chosen = choose_tuning_queries(queries, 60, seed=0)
    assert len(chosen) == 1 and chosen <= {"q0", "q1", "q2"}  # the largest bucket keeps its one
    big = pd.DataFrame({
        "qid": [f"q{i}" for i in range(300)],
        "bucket": ["low"] * 150 + ["mid"] * 100 + ["high"] * 50,
        "has_relevant": True,
    })  # fmt: skip
    chosen = choose_tuning_queries(big, 60, seed=0)
    assert len(chosen) == 60
    by_bucket = big.set_index("qid").loc[sorted(chosen), "bucket"].value_counts()
    assert by_bucket.to_dict() == {"low": 30, "mid": 20, "high": 10}


def test_a_bucket_of_one_query_keeps_it_for_evaluation() -> None:
    from hybridrank.data import choose_tuning_queries

    queries = pd.DataFrame({
        "qid": [f"q{i}" for i in range(21)],
        "bucket": ["low"] + ["mid"] * 10 + ["high"] * 10,
        "has_relevant": True,
    })  # fmt: skip
    for seed in range(5):
        chosen = choose_tuning_queries(queries, 60, seed=seed)
        assert "q0" not in chosen and len(chosen) == 4  # two of each bucket of ten


@pytest.mark.parametrize("n", [10, 11, 12, 13, 14])  # 11: rounding gave 10 before
def test_tuning_queries_honour_the_count_up_to_the_caps(
    n: int, caplog: pytest.LogCaptureFixture
) -> None:
    """Rounding per bucket must not cut the count (CISI: 14 asked, 12 given)."""
    from hybridrank.data import choose_tuning_queries

    sizes = {"low": 12, "mid": 14, "high": 35}  # a fifth: 2 + 2 + 7 = 11 of 61 (12 overall)
    queries = pd.DataFrame({
        "qid": [f"q{i}" for i in range(61)],
        "bucket": [b for b, k in sizes.items() for _ in range(k)],
        "has_relevant": True,
    })  # fmt: skip
    with caplog.at_level("WARNING"):
        chosen = choose_tuning_queries(queries, n, seed=0)
    assert len(chosen) == min(n, 11)
    by_bucket = queries.set_index("qid").loc[sorted(chosen), "bucket"].value_counts()
    assert all(by_bucket[b] <= max(k // 5, 1) for b, k in sizes.items() if b in by_bucket)
    if n > 11:  # the real number is said
        assert f"{n} queries asked for, using 11" in caplog.text
    else:
        assert "tuning set" not in caplog.text
