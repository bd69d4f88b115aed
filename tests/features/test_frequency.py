from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hybridrank import columns as C
from hybridrank.errors import ConfigError
from hybridrank.features import BucketConfig, FrequencyBuckets, query_frequency


def test_query_frequency_counts_sessions() -> None:
    log = pd.DataFrame({C.SESSION_ID: [0, 0, 1, 2, 2], C.QID: ["a", "a", "a", "b", "b"]})
    freq = query_frequency(log, ["a", "b", "c"])
    assert freq.to_dict() == {"a": 2, "b": 1, "c": 0}


def test_fixed_buckets_default_edges() -> None:
    b = FrequencyBuckets().fit([])
    assert b.transform([0, 2, 3, 20, 21, 1000]).tolist() == [
        "low",
        "low",
        "mid",
        "mid",
        "high",
        "high",
    ]
    assert b.describe() == ["low: 0-2", "mid: 3-20", "high: >20"]


def test_quantile_buckets_fit_on_training_only() -> None:
    train = np.arange(100)
    b = FrequencyBuckets(BucketConfig(kind="quantile")).fit(train)
    counts = pd.Series(b.transform(train)).value_counts()
    assert counts.min() >= 30
    # Edges are fixed by fit; transforming other data does not move them.
    assert b.transform([0, 1000]).tolist() == ["low", "high"]


def test_bucket_config_validation() -> None:
    with pytest.raises(ConfigError, match="edges"):
        BucketConfig(edges=(5,))
    with pytest.raises(ConfigError, match="increase"):
        BucketConfig(edges=(20, 2))
    with pytest.raises(ConfigError, match="unknown keys"):
        BucketConfig.from_dict({"bins": 3})
    with pytest.raises(RuntimeError, match="not fitted"):
        FrequencyBuckets().transform([1])
    with pytest.raises(ValueError, match="non-negative"):
        FrequencyBuckets().fit([]).transform([-1])


@given(st.lists(st.integers(0, 10_000), min_size=1, max_size=50))
def test_buckets_monotone_in_frequency(freqs: list[int]) -> None:
    b = FrequencyBuckets().fit(freqs)
    order = {"low": 0, "mid": 1, "high": 2}
    f = np.sort(np.asarray(freqs))
    ranks = [order[x] for x in b.transform(f)]
    assert ranks == sorted(ranks)
