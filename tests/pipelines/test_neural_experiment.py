"""The experiment's default LLM-neural model: out of fold, beside its untrained start."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hybridrank.data import Dataset, SimulationConfig
from hybridrank.errors import ConfigError
from hybridrank.pipelines import (
    DataConfig,
    ExperimentConfig,
    WorldConfig,
    build_world,
    run_experiment,
    write_world,
)
from hybridrank.pipelines._budget import per_query_values
from hybridrank.pipelines._experiment import DEFAULT_NEURAL, ENSEMBLE, UNTRAINED
from tests.conftest import make_collection, write_trec_dir


@pytest.fixture(scope="module")
def small_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_trec_dir(
        make_collection(n_queries=40, n_docs=200, seed=7), tmp_path_factory.mktemp("c")
    )
    config = WorldConfig(
        data=DataConfig(format="trec", path=str(root), stopwords="none"),
        simulation=SimulationConfig(n_sessions=400, seed=0),
    )
    out = tmp_path_factory.mktemp("w") / "world"
    write_world(build_world(config), out)
    return out


def test_the_default_experiment_trains_the_query_tower(
    small_world: Path, tiny_bert: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hybridrank.ensemble import StackerConfig

    assert ExperimentConfig().neural == dict(DEFAULT_NEURAL)
    config = ExperimentConfig(
        seeds=(0,), sessions=(), tuning_queries=10, metrics=("ndcg@10",),
        stacker=StackerConfig(n_trials=5), cache=str(tmp_path / "cache.sqlite"),
        neural={**DEFAULT_NEURAL, "model_path": tiny_bert, "max_seq_length": 32},
    )  # fmt: skip
    result = run_experiment(config, tmp_path / "exp", dataset=Dataset.read(small_world), progress=False)
    scores = pd.read_parquet(tmp_path / "exp" / "scores.parquet")
    assert {"llm_neural", UNTRAINED} <= set(scores.columns)
    assert np.isfinite(scores["llm_neural"]).all() and np.isfinite(scores[UNTRAINED]).all()
    assert not np.allclose(scores["llm_neural"], scores[UNTRAINED])  # it trained
    systems = set(result.main.summary["system"])
    assert {"llm_neural", UNTRAINED, ENSEMBLE} <= systems
    run = next(iter(result.info["runs"].values()))
    # The stacker's LLM expert: LLM-GBDT and the transformer, z-scored and averaged.
    assert run["llm_model"] == ENSEMBLE
    assert np.isfinite(scores[ENSEMBLE]).all()
    for name in ("llm_gbdt", "llm_neural"):
        r = scores.groupby("qid").apply(lambda g, n=name: g[ENSEMBLE].corr(g[n], method="spearman"))
        assert r.mean() > 0.3

    # A rerun on the same inputs reads the scores back from beside the answer cache.
    from hybridrank.neural import QueryTowerRanker

    assert len(list((tmp_path / "neural-scores").glob("*.parquet"))) == 1
    # The folds kept for a resume are gone once the whole run is stored.
    assert not list((tmp_path / "neural-scores" / "folds").glob("*.parquet"))

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("the rerun trained the neural model")

    monkeypatch.setattr(QueryTowerRanker, "fit", no_training)
    # The stacker's expert is no input of the transformer: the rerun hits the cache.
    rerun = replace(config, llm_expert="llm_neural", budgets=(0.5, 1.0), budget_strategies=("random",))
    result = run_experiment(rerun, tmp_path / "again", dataset=Dataset.read(small_world), progress=False)
    again = pd.read_parquet(tmp_path / "again" / "scores.parquet")
    np.testing.assert_array_equal(again["llm_neural"], scores["llm_neural"])
    np.testing.assert_array_equal(again[UNTRAINED], scores[UNTRAINED])
    assert next(iter(result.info["runs"].values()))["llm_model"] == "llm_neural"
    assert ENSEMBLE not in again.columns
    # The budget curve's stacker has LLM-GBDT as its expert at every point: the fully
    # labelled point is rerun without the transformer, not read from the main run.
    assert result.budget is not None
    assert {run["llm_model"] for run in result.budget.info.values()} == {"llm_gbdt"}
    curve = result.budget.per_query
    full = curve[(curve["budget"] == 1.0)].set_index(["system", "qid"])["value"]
    main = per_query_values(again, ["llm_gbdt", "gated_stacker"], "ndcg@10", {}).set_index(
        ["system", "qid"]
    )["value"]
    np.testing.assert_allclose(full["llm_gbdt"], main["llm_gbdt"].reindex(full["llm_gbdt"].index))
    stacker = main["gated_stacker"].reindex(full["gated_stacker"].index)
    assert not np.allclose(full["gated_stacker"], stacker)


def test_the_query_tower_reuses_the_judges_vectors_and_the_cache_can_be_off(
    small_world: Path, tiny_bert: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The judge's head view and the query tower read the same model at the same length:
    the documents are encoded once, by the judge. ``neural_cache: false`` trains and
    writes no score file."""
    from dataclasses import replace

    from hybridrank.ensemble import StackerConfig
    from hybridrank.labels.llm import AnnotateConfig
    from hybridrank.neural import BiEncoderRanker

    handed: list[int] = []
    real = BiEncoderRanker.add_document_embeddings

    def spy(self, vectors, **kwargs):  # type: ignore[no-untyped-def]
        handed.append(len(vectors))
        return real(self, vectors, **kwargs)

    monkeypatch.setattr(BiEncoderRanker, "add_document_embeddings", spy)
    judge = {"model_path": tiny_bert, "max_seq_length": 32, "head_tokens": 16, "batch_size": 16}
    config = ExperimentConfig(
        seeds=(0,), sessions=(), tuning_queries=10, metrics=("ndcg@10",),
        stacker=StackerConfig(n_trials=5), cache=str(tmp_path / "cache.sqlite"),
        annotate=AnnotateConfig.from_dict({"backend": "embedding", "params": judge}),
        neural={**DEFAULT_NEURAL, "model_path": tiny_bert, "max_seq_length": 16, "epochs": 1},
        neural_cache=False,
    )  # fmt: skip
    assert ExperimentConfig.from_dict(config.to_dict()) == config
    dataset = Dataset.read(small_world)
    run_experiment(config, tmp_path / "exp", dataset=dataset, progress=False)
    n_docs = dataset.candidates["docid"].nunique()
    assert len(handed) == 1 and handed[0] >= n_docs  # every document (and query) handed over
    assert not (tmp_path / "neural-scores").exists()  # nothing cached
    scores = pd.read_parquet(tmp_path / "exp" / "scores.parquet")
    assert np.isfinite(scores["llm_neural"]).all()

    # With the cache on, a run stopped in the third fold keeps the two finished ones ...
    from hybridrank.neural import QueryTowerRanker

    fit = QueryTowerRanker.fit
    fitted: list[int] = []

    def counted(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if len(fitted) == stop_after:
            raise KeyboardInterrupt
        fitted.append(1)
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(QueryTowerRanker, "fit", counted)
    stop_after = 2
    with pytest.raises(KeyboardInterrupt):
        run_experiment(replace(config, neural_cache=True), tmp_path / "again", dataset=dataset,
                       progress=False)  # fmt: skip
    folds = tmp_path / "neural-scores" / "folds"
    assert len(list(folds.glob("*.parquet"))) == 2
    # ... and the rerun trains the other folds only, then writes one file.
    fitted.clear()
    stop_after = -1
    run_experiment(replace(config, neural_cache=True), tmp_path / "again", dataset=dataset,
                   progress=False)  # fmt: skip
    assert len(fitted) == dataset.splits["fold"].nunique() - 2
    assert len(list((tmp_path / "neural-scores").glob("*.parquet"))) == 1
    assert not list(folds.glob("*.parquet"))  # gone once the whole run is stored
    resumed = pd.read_parquet(tmp_path / "again" / "scores.parquet")
    np.testing.assert_allclose(resumed["llm_neural"], scores["llm_neural"], rtol=1e-5, atol=1e-6)


def test_the_score_cache_keeps_the_most_recently_used_files(tmp_path: Path) -> None:
    import os

    from hybridrank.pipelines._neural_cache import NeuralScoreCache

    cache = NeuralScoreCache(tmp_path, max_files=2)
    for i, key in enumerate(["a", "b"]):
        cache.save(key, np.array([0.1, 0.2]), None)
        os.utime(cache.path(key), (1000 + i, 1000 + i))  # "a" older than "b"
    assert cache.load("a", 2) is not None  # a hit: "a" is now the most recent
    cache.save("c", np.array([0.3, 0.4]), None)
    assert sorted(p.stem for p in tmp_path.glob("*.parquet")) == ["a", "c"]  # "b" went
    with pytest.raises(ValueError, match="max_files"):
        NeuralScoreCache(tmp_path, max_files=0)


def test_neural_config_is_checked_when_read() -> None:
    with pytest.raises(ConfigError, match="epoch"):
        ExperimentConfig.from_dict({"neural": {"epoch": 3}})
    assert ExperimentConfig.from_dict({"neural": None}).neural is None
    # Keys tune the default; turning its offsets off trains the query encoder instead.
    tuned = ExperimentConfig.from_dict({"neural": {"document_steps": 0}}).neural
    assert tuned is not None and (tuned["epochs"], tuned["document_steps"]) == (2, 0)
    kept = ExperimentConfig.from_dict({"neural": {"document_steps": 0, "epochs": 4}}).neural
    assert kept is not None and kept["epochs"] == 4
    assert ExperimentConfig.from_dict({"neural": {"epochs": 1}}).neural["document_steps"] == 300
    assert ExperimentConfig().llm_expert == "ensemble"
    assert ExperimentConfig.from_dict({"llm_expert": "llm_gbdt"}).to_dict()["llm_expert"] == "llm_gbdt"
    with pytest.raises(ConfigError, match="llm_expert must be one of"):
        ExperimentConfig.from_dict({"llm_expert": "neural"})


def test_the_stackers_llm_expert_falls_back_to_the_model_that_ran() -> None:
    from hybridrank.ensemble import OOFScores
    from hybridrank.pipelines._experiment import _llm_expert

    qid, fold = np.repeat(["a", "b"], 3), np.repeat([0, 1], 3)
    trained = {0: frozenset({"b"}), 1: frozenset({"a"})}
    gbdt = OOFScores("llm_gbdt", np.arange(6.0), qid, fold, trained)
    neural = OOFScores("llm_neural", -np.arange(6.0), qid, fold, trained)
    assert _llm_expert("ensemble", {"llm_gbdt": gbdt}) == "llm_gbdt"  # neural: null
    assert _llm_expert("llm_neural", {"llm_gbdt": gbdt}) == "llm_gbdt"
    assert _llm_expert("llm_gbdt", {"llm_gbdt": gbdt, "llm_neural": neural}) == "llm_gbdt"
    assert _llm_expert("llm_neural", {"llm_gbdt": gbdt, "llm_neural": neural}) == "llm_neural"
    oof = {"llm_gbdt": gbdt, "llm_neural": neural}
    assert _llm_expert("ensemble", oof) == ENSEMBLE
    np.testing.assert_allclose(oof[ENSEMBLE].scores, 0.0, atol=1e-12)  # opposite orders cancel


def test_the_neural_model_reuses_only_the_judges_matching_view(tiny_bert: str) -> None:
    from hybridrank.labels.llm import EmbeddingJudge, Pair
    from hybridrank.pipelines._experiment import _reusable_embeddings

    judge = EmbeddingJudge(model_path=tiny_bert, max_seq_length=32, head_tokens=16, batch_size=8)
    judge.annotate([Pair("q", "d", "a query", "a document about it")])
    neural = {**DEFAULT_NEURAL, "model_path": tiny_bert, "max_seq_length": 16}
    reused = _reusable_embeddings(judge, neural)
    assert reused is not None and reused.max_seq_length == 16
    assert reused.model_path == Path(tiny_bert)
    assert set(reused.vectors) == {"a query", "a document about it"}
    assert _reusable_embeddings(judge, {**neural, "max_seq_length": 24}) is None  # no such view
    cross = {**neural, "architecture": "cross-encoder", "epochs": 1, "document_steps": 0}
    assert _reusable_embeddings(judge, cross) is None
    assert _reusable_embeddings(judge, {**neural, "model_path": None}) is None  # other weights
    assert _reusable_embeddings(judge, None) is None
    assert _reusable_embeddings(object(), neural) is None
