"""The neural model's score cache: keyed by every input, whole files, a bad file is a miss."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hybridrank.neural import NeuralConfig
from hybridrank.pipelines._neural_cache import NeuralScoreCache


@pytest.fixture
def table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "qid": ["a", "a", "b", "b"],
            "query": ["cats", "cats", "dogs", "dogs"],
            "document": ["cats purr", "rain", "dogs bark", "snow"],
            "y_llm_soft": [2.5, 0.1, 3.0, np.nan],
            "fold": [0, 0, 1, 1],
        }
    )


def test_the_key_changes_with_every_input(table: pd.DataFrame, tmp_path: Path) -> None:
    cache = NeuralScoreCache(tmp_path)
    cols = list(table.columns)
    mask = table["y_llm_soft"].notna().to_numpy()
    cfg = NeuralConfig(architecture="query-tower")
    key = cache.key(table, cols, cfg, mask)
    assert key == cache.key(table.copy(), cols, cfg, mask.copy())  # same inputs, same key
    relabelled = table.assign(y_llm_soft=[2.5, 0.2, 3.0, np.nan])
    refolded = table.assign(fold=[1, 1, 0, 0])
    reordered = table.iloc[[1, 0, 2, 3]]
    others = {
        cache.key(relabelled, cols, cfg, mask),
        cache.key(refolded, cols, cfg, mask),
        cache.key(reordered, cols, cfg, mask),
        cache.key(table, cols, NeuralConfig(architecture="query-tower", epochs=3), mask),
        cache.key(table, cols, cfg, np.array([True, True, False, False])),
        cache.key(table, cols[:-1], cfg, mask),
    }
    assert key not in others and len(others) == 6


def test_scores_round_trip_and_bad_files_miss(
    table: pd.DataFrame, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = NeuralScoreCache(tmp_path / "scores")
    assert cache.load("k", 4) is None  # nothing yet
    cache.save("k", np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.0, 0.1, 0.2, 0.3]))
    hit = cache.load("k", 4)
    assert hit is not None
    np.testing.assert_array_equal(hit["score"], [0.1, 0.2, 0.3, 0.4])
    np.testing.assert_array_equal(hit["untrained"], [0.0, 0.1, 0.2, 0.3])
    assert [p.name for p in (tmp_path / "scores").iterdir()] == ["k.parquet"]  # no temp left
    cache.save("x", np.array([0.5, 0.6, 0.7, 0.8]), None)
    loaded = cache.load("x", 4)
    assert loaded is not None and loaded["untrained"].isna().all()

    with caplog.at_level(logging.WARNING):
        assert cache.load("k", 5) is None  # made for another table
        cache.path("k").write_bytes(b"not parquet")
        assert cache.load("k", 4) is None
    assert "expected 5 rows" in caplog.text and "unreadable" in caplog.text
