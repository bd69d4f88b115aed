from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from hybridrank.neural import (
    COSINE,
    CrossEncoderRanker,
    NeuralConfig,
    NeuralTrainConfig,
    add_train_neural_parser,
    cmd_train_neural,
    train_neural,
)
from hybridrank.neural._train import cosine_column, minilm_cosine
from hybridrank.world import DataConfig, SimulationConfig, WorldConfig, build_world

from ..conftest import write_trec_dir
from .stand_in_labels import stand_in_llm_labels


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory, tiny_collection):
    root = write_trec_dir(tiny_collection, tmp_path_factory.mktemp("trec"))
    config = WorldConfig(
        data=DataConfig(format="trec", path=str(root)),
        simulation=SimulationConfig(n_sessions=500, seed=2),
    )
    out = tmp_path_factory.mktemp("world")
    build_world(config).save(out)
    return out


def test_train_neural_writes_a_run(world_dir, tiny_bert, tmp_path) -> None:
    from hybridrank.world import ClickWorld

    world = ClickWorld.load(world_dir)
    # the top 8 per query keep the five folds' fits and scoring to seconds
    cand = world.candidates[world.candidates["bm25_rank"] <= 8].reset_index(drop=True)
    rng = np.random.default_rng(0)
    cand[COSINE] = rng.random(len(cand))  # a given baseline column is reused, not recomputed
    cand[cosine_column(32)] = rng.random(len(cand))  # the same at the model's length
    cand["y_llm"] = stand_in_llm_labels(cand, cand[COSINE].to_numpy())
    neural = NeuralConfig(
        model_path=tiny_bert,
        device="cpu",
        max_seq_length=32,
        batch_size=16,
        epochs=1,
        subsample_queries=4,
    )
    config = NeuralTrainConfig(world_dir=str(world_dir), neural=neural, metrics=("ndcg@10",))
    run = train_neural(config, tmp_path / "run", candidates=cand)
    for name in ("model/ranker.json", "config.yaml", "metrics.json", "folds.json", "loss.png"):
        assert (run.path / name).exists(), name
    assert (run.path / "report").is_dir()
    assert run.table["neural_ce"].notna().all()
    assert len(run.folds) == cand["fold"].nunique()
    systems = {r["system"] for r in json.loads((run.path / "metrics.json").read_text())}
    assert {"bm25", COSINE, "minilm_cosine_len32", "neural_ce"} <= systems
    loaded = CrossEncoderRanker.load(run.path / "model")
    assert loaded.config_ == neural
    back = NeuralTrainConfig.from_yaml(run.path / "config.yaml")
    assert back == config


def test_cli_parser_mounts_under_train() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    train = sub.add_parser("train")
    add_train_neural_parser(train.add_subparsers(dest="train_command"))
    args = parser.parse_args(
        [
            "train",
            "neural",
            "--config",
            "x.yaml",
            "--world",
            "w",
            "--out",
            "o",
            "--profile",
            "quick",
        ]
    )
    assert args.func is cmd_train_neural
    assert str(args.world) == "w" and args.profile == "quick"


def test_cosine_baseline_is_the_judge_score_and_comes_from_its_cache(tmp_path, monkeypatch) -> None:
    """At 256 tokens the untrained cosine is the embedded judge's score; a rerun reads the cache."""
    import pandas as pd

    from hybridrank.labels.llm import EmbeddingJudge

    table = pd.DataFrame(
        {
            "qid": ["a", "a", "b"],
            "docid": ["d1", "d2", "d1"],
            "query": ["vitamin d and bones", "vitamin d and bones", "statins"],
            "document": [
                "Vitamin D supplements and bone density in older adults.",
                "Statin use and muscle pain: a cohort study.",
                "Vitamin D supplements and bone density in older adults.",
            ],
        }
    )
    config = NeuralConfig(architecture="bi-encoder", device="cpu")
    encoded = minilm_cosine(table, config)
    cached = minilm_cosine(table, config, cache=tmp_path / "answers.sqlite")
    np.testing.assert_allclose(cached, encoded, rtol=0, atol=1e-5)

    def no_encoding(self, pairs):  # type: ignore[no-untyped-def]
        raise AssertionError("encoded although the cache holds every pair")

    monkeypatch.setattr(EmbeddingJudge, "annotate", no_encoding)
    again = minilm_cosine(table, config, cache=tmp_path / "answers.sqlite")
    np.testing.assert_allclose(again, cached, rtol=0, atol=0)
    assert cosine_column(256) == COSINE and cosine_column(64) == "minilm_cosine_len64"
