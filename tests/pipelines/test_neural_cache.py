"""The neural model's score cache: keyed by every input, whole files, a bad file is a miss."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hybridrank.neural import NeuralConfig
from hybridrank.pipelines._neural_cache import FoldCheckpoints, NeuralScoreCache, model_fingerprint


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
    mask = table["y_llm_soft"].notna().to_numpy()
    cfg = NeuralConfig(architecture="query-tower")
    key = cache.key(table, cfg, mask)
    assert key == cache.key(table.copy(), cfg, mask.copy())  # same inputs, same key
    others = {
        cache.key(table.assign(y_llm_soft=[2.5, 0.2, 3.0, np.nan]), cfg, mask),  # a label
        cache.key(table.assign(fold=[1, 1, 0, 0]), cfg, mask),  # the folds
        cache.key(table.iloc[[1, 0, 2, 3]], cfg, mask),  # the row order
        cache.key(table.assign(click_share=0.5), cfg, mask),  # another column it reads
        cache.key(table, NeuralConfig(architecture="query-tower", epochs=3), mask),
        cache.key(table, NeuralConfig(architecture="query-tower", target="grade"), mask),
        cache.key(table, cfg, np.array([True, True, False, False])),  # the training rows
    }
    assert key not in others and len(others) == 7


def test_the_start_models_files_name_it(tmp_path: Path) -> None:
    model = tmp_path / "model"
    (model / "1_Pooling").mkdir(parents=True)
    (model / "model.safetensors").write_bytes(b"\0" * (3 << 20))
    (model / "1_Pooling" / "config.json").write_text("{}")
    before = model_fingerprint(model)
    with (model / "model.safetensors").open("r+b") as fh:  # a change past the first MiB
        fh.seek(2 << 20)
        fh.write(b"\1")
    assert model_fingerprint(model) != before
    changed = model_fingerprint(model)
    (model / "1_Pooling" / "config.json").write_text('{"pooling_mode_cls_token": true}')
    assert model_fingerprint(model) != changed
    assert model_fingerprint("some/hub-name") == "some/hub-name"


def test_scores_round_trip_and_bad_files_miss(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = NeuralScoreCache(tmp_path / "scores")
    assert cache.load("k", 4) is None  # nothing yet
    assert cache.save("k", np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.0, 0.1, 0.2, 0.3]))
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
        cache.save("p", np.array([0.5, 0.6, 0.7, 0.8]), np.array([0.1, np.nan, 0.2, 0.3]))
        assert cache.load("p", 4) is None  # a partial untrained column
        pd.DataFrame({"score": ["a", "b"], "untrained": [1.0, 2.0]}).to_parquet(cache.path("s"))
        assert cache.load("s", 2) is None  # not numbers
        cache.path("k").write_bytes(b"not parquet")
        assert cache.load("k", 4) is None
    assert "expected 5 rows" in caplog.text and "unreadable" in caplog.text
    assert "not numbers" in caplog.text


def test_a_cache_that_cannot_be_written_does_not_stop_the_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    cache = NeuralScoreCache(blocked / "scores")  # its folder cannot be made
    with caplog.at_level(logging.WARNING):
        assert cache.save("k", np.array([0.1, 0.2]), None) is None
    assert "could not be cached" in caplog.text


def test_fold_checkpoints_round_trip_and_clear(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = NeuralScoreCache(tmp_path)
    folds = cache.folds("k", "experiment")
    assert folds.directory == tmp_path / "folds" and folds.load(0, 2) is None
    assert folds.key != cache.folds("k", "train").key  # producers never share folds
    folds.save(0, np.array([0.5, 0.25]), {"fold": np.int64(0), "fit_s": np.float32(1.5)})
    done = folds.load(0, 2)
    assert done is not None
    np.testing.assert_array_equal(done[0], [0.5, 0.25])
    assert done[1] == {"fold": 0, "fit_s": 1.5} and isinstance(done[1]["fold"], int)
    assert folds.load(0, 2, needs=("loss_history",)) is None  # a record without what is needed
    with caplog.at_level(logging.WARNING):
        assert folds.load(0, 3) is None  # another table's fold
        folds.path(1).write_bytes(b"cut")
        assert folds.load(1, 2) is None
    assert "does not fit" in caplog.text and "unreadable" in caplog.text
    # Storing the whole run removes its folds, and only its folds.
    other = cache.folds("other", "experiment")
    other.save(0, np.array([1.0]), {"fold": 0})
    cache.save("k", np.array([0.5, 0.25, 0.1]), None)
    assert folds.load(0, 2) is None and other.load(0, 1) is not None


def test_fold_checkpoints_keep_the_newest_files(tmp_path: Path) -> None:
    import os

    for i, key in enumerate(["a", "b", "c"]):
        FoldCheckpoints(tmp_path, key, max_files=2).save(0, np.array([0.1]), {"fold": 0})
        os.utime(tmp_path / f"{key}-fold0.parquet", (1000 + i, 1000 + i))
    FoldCheckpoints(tmp_path, "c", max_files=2).save(1, np.array([0.2]), {"fold": 1})
    # The oldest go first, never the running key's own folds.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c-fold0.parquet", "c-fold1.parquet"]
    FoldCheckpoints(tmp_path, "d", max_files=1).save(0, np.array([0.3]), {"fold": 0})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d-fold0.parquet"]
