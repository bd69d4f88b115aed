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
