from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hybridrank.data import Dataset, SimulationConfig
from hybridrank.errors import ConfigError
from hybridrank.neural import CrossEncoderRanker, NeuralConfig
from hybridrank.pipelines import (
    COSINE,
    DataConfig,
    NeuralTrainConfig,
    WorldConfig,
    build_world,
    minilm_cosine,
    train_neural,
    write_world,
)
from hybridrank.pipelines._train_neural import cosine_column

from ..conftest import write_trec_dir
from ..neural.stand_in_labels import stand_in_llm_labels


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory, tiny_collection):
    root = write_trec_dir(tiny_collection, tmp_path_factory.mktemp("trec"))
    config = WorldConfig(
        data=DataConfig(format="trec", path=str(root)),
        simulation=SimulationConfig(n_sessions=500, seed=2),
    )
    out = tmp_path_factory.mktemp("world")
    write_world(build_world(config), out)
    return out


def test_train_neural_writes_a_run(world_dir, tiny_bert, tmp_path) -> None:
    world = Dataset.read(world_dir)
    table = world.table()
    # the top 8 per query keep the five folds' fits and scoring to seconds
    cand = table[table["bm25_rank"] <= 8].reset_index(drop=True)
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
    config = NeuralTrainConfig(dataset=str(world_dir), neural=neural, metrics=("ndcg@10",))
    run = train_neural(config, tmp_path / "run", candidates=cand)
    for name in ("model/ranker.json", "config.yaml", "metrics.json", "folds.json", "loss.png"):
        assert (run.path / name).exists(), name
    assert (run.path / "report").is_dir()
    assert run.table["neural_ce"].notna().all()
    assert len(run.folds) == cand["fold"].nunique()
    systems = {r["system"] for r in json.loads((run.path / "metrics.json").read_text())}
    assert {"bm25", COSINE, "minilm_cosine_len32", "neural_ce"} <= systems
    # The labelled tuning queries are left out of the report.
    assert world.tuning_qids
    assert not world.tuning_qids & set(run.report.per_query["qid"])
    loaded = CrossEncoderRanker.load(run.path / "model")
    assert loaded.config_ == neural
    back = NeuralTrainConfig.from_yaml(run.path / "config.yaml")
    assert back == config


def test_a_stopped_run_resumes_at_its_first_unfinished_fold(
    world_dir, tiny_bert, tmp_path, monkeypatch
) -> None:
    world = Dataset.read(world_dir)
    cand = world.table()
    cand = cand[cand["bm25_rank"] <= 5].reset_index(drop=True)
    rng = np.random.default_rng(1)
    cand[COSINE] = rng.random(len(cand))
    cand["y_llm"] = stand_in_llm_labels(cand, cand[COSINE].to_numpy())
    neural = NeuralConfig(
        architecture="bi-encoder", model_path=tiny_bert, device="cpu", max_seq_length=16,
        batch_size=16, epochs=1, subsample_queries=4,
    )  # fmt: skip
    config = NeuralTrainConfig(
        dataset=str(world_dir), neural=neural, metrics=("ndcg@10",), cache=str(tmp_path / "a.sqlite"),
        baseline_at_model_length=False, final_model=False,
    )  # fmt: skip
    from hybridrank.neural import BiEncoderRanker

    fit = BiEncoderRanker.fit
    fitted: list[int] = []

    def fails_in_the_third_fold(self, *args, **kwargs):
        if len(fitted) == 2:
            raise KeyboardInterrupt  # the run is stopped
        fitted.append(1)
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(BiEncoderRanker, "fit", fails_in_the_third_fold)
    with pytest.raises(KeyboardInterrupt):
        train_neural(config, tmp_path / "run", candidates=cand)
    assert not (tmp_path / "run").exists()
    kept = tmp_path / "neural-scores" / "folds"
    assert len(list(kept.glob("*-fold*.parquet"))) == 2
    # The rerun trains only the three unfinished folds, and reads the two others back.
    fitted.clear()
    monkeypatch.setattr(BiEncoderRanker, "fit", lambda self, *a, **k: (fitted.append(1), fit(self, *a, **k))[1])
    run = train_neural(config, tmp_path / "run", candidates=cand)
    assert len(fitted) == cand["fold"].nunique() - 2
    assert [r.get("resumed", False) for r in run.folds][:2] == [True, True]
    assert all("loss_history" in r for r in run.folds)
    assert run.table["neural_bi"].notna().all()
    assert not list(kept.glob("*.parquet"))  # gone once the run is saved


def test_cli_parser_mounts_under_train() -> None:
    from hybridrank.cli import build_parser
    from hybridrank.cli._train import cmd_train_neural

    args = build_parser().parse_args(
        [
            "train",
            "neural",
            "--config",
            "x.yaml",
            "--dataset",
            "w",
            "--out",
            "o",
            "--profile",
            "quick",
        ]
    )
    assert args.func is cmd_train_neural
    assert str(args.dataset) == "w" and args.profile == "quick"


def test_cli_says_which_folds_a_rerun_read_back(monkeypatch, capsys, tmp_path) -> None:
    from types import SimpleNamespace

    import hybridrank.pipelines
    from hybridrank.cli import main

    folds = [{"fold": 0, "resumed": True}, {"fold": 1, "resumed": True}, {"fold": 2}]
    run = SimpleNamespace(
        folds=folds, report=SimpleNamespace(to_text=lambda: "table"), timings={}, path=tmp_path
    )
    monkeypatch.setattr(hybridrank.pipelines, "train_neural", lambda config, out: run)
    assert main(["train", "neural", "--dataset", str(tmp_path), "--out", str(tmp_path / "o")]) == 0
    assert "resumed: fold(s) 0, 1 read back" in capsys.readouterr().out


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
    # At the model's own length (train neural's second baseline) it comes from the cache too.
    monkeypatch.undo()
    short = minilm_cosine(table, config, max_seq_length=8)
    short_cached = minilm_cosine(table, config, max_seq_length=8, cache=tmp_path / "answers.sqlite")
    np.testing.assert_allclose(short_cached, short, rtol=0, atol=1e-5)
    assert not np.allclose(short, encoded)  # 8 tokens cut these texts: another baseline
    monkeypatch.setattr(EmbeddingJudge, "annotate", no_encoding)
    np.testing.assert_allclose(
        minilm_cosine(table, config, max_seq_length=8, cache=tmp_path / "answers.sqlite"),
        short_cached, rtol=0, atol=0,
    )  # fmt: skip


def test_study_profiles_load() -> None:
    path = Path(__file__).resolve().parents[2] / "studies" / "neural.yaml"
    quick = NeuralTrainConfig.from_yaml(path, "quick")
    full = NeuralTrainConfig.from_yaml(path, "full")
    assert quick.neural.epochs == 1 and quick.neural.max_seq_length == 64
    assert quick.neural.architecture == "bi-encoder" and quick.neural.loss == "listwise"
    ce = NeuralTrainConfig.from_yaml(path, "quick", architecture="cross-encoder")
    assert ce.neural.loss == "pointwise" and ce.neural.subsample_queries == 20
    assert full.neural.max_seq_length == 256 and full.neural.subsample_queries is None
    with pytest.raises(ConfigError, match="no profile"):
        NeuralTrainConfig.from_yaml(path, "huge")


def test_profiles_tune_each_architecture(tmp_path) -> None:
    path = tmp_path / "neural.yaml"
    path.write_text(
        "neural: {learning_rate: 1.0e-3}\n"
        "profiles:\n"
        "  quick:\n"
        "    baseline: false\n"
        "    neural: {epochs: 1}\n"
        "    bi-encoder: {loss: listwise, learning_rate: 1.0e-5}\n"
        "    cross-encoder: {max_seq_length: 48}\n"
    )
    ce = NeuralTrainConfig.from_yaml(path, "quick")
    assert ce.neural.architecture == "cross-encoder" and ce.neural.max_seq_length == 48
    assert ce.neural.learning_rate == 1e-3 and ce.neural.loss == "pointwise"
    assert ce.neural.epochs == 1 and ce.baseline is False
    bi = NeuralTrainConfig.from_yaml(path, "quick", architecture="bi-encoder")
    assert bi.neural.architecture == "bi-encoder" and bi.neural.loss == "listwise"
    assert bi.neural.learning_rate == 1e-5 and bi.neural.max_seq_length == 256
    assert NeuralTrainConfig.from_dict(bi.to_dict()) == bi
