"""The writers the crash tests kill, each with the previous state it replaces.

``make(name, params)`` returns an object whose ``run(target)`` performs one
write into ``target`` (in a forked child of the zygote).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Writer:
    run: Callable[[Path], None]


def _world_build(params: dict[str, Any]) -> Writer:
    from hybridrank.data import SimulationConfig
    from hybridrank.pipelines import DataConfig, WorldConfig, build_world, write_world

    def run(target: Path) -> None:
        config = WorldConfig(
            data=DataConfig(format="trec", path=params["collection"], stopwords="none"),
            simulation=SimulationConfig(n_sessions=params["sessions"], seed=params["seed"]),
        )
        write_world(build_world(config), target)

    return Writer(run)


def _dataset_import(params: dict[str, Any]) -> Writer:
    from hybridrank.pipelines import ImportConfig, import_dataset

    def run(target: Path) -> None:
        config = ImportConfig(
            log=params["log"], log_format="impressions", queries=params["queries"],
            docs=params["docs"], qrels=params["qrels"],
        )  # fmt: skip
        import_dataset(config).write(target)

    return Writer(run)


def _annotate(params: dict[str, Any]) -> Writer:
    import pandas as pd

    from hybridrank.data import Dataset
    from hybridrank.labels.llm import AnswerCache, make_annotator
    from hybridrank.pipelines import annotate_dataset

    def run(target: Path) -> None:
        dataset = Dataset.read(target)
        pairs = pd.read_parquet(params["pairs"])
        with AnswerCache(target.parent / "cache.sqlite") as cache:
            labels = annotate_dataset(
                dataset, make_annotator("embedding"), cache, candidates=pairs, progress=False
            ).llm_labels
        dataset.update(llm_labels=labels)

    return Writer(run)


def _train_gbdt(params: dict[str, Any]) -> Writer:
    from hybridrank.data import Dataset
    from hybridrank.gbdt import LambdaMARTConfig
    from hybridrank.pipelines import GBDTTrainConfig, train_gbdt

    def run(target: Path) -> None:
        config = GBDTTrainConfig(
            gbdt=LambdaMARTConfig(engine=params["engine"], n_estimators=20, n_jobs=1)
        )
        train_gbdt(config, target, dataset=Dataset.read(params["dataset"]), progress=False)

    return Writer(run)


def _bundle(params: dict[str, Any]) -> Writer:
    from hybridrank.ensemble import SigmoidGate
    from hybridrank.serve import build_hybrid_bundle

    def run(target: Path) -> None:
        build_hybrid_bundle(
            params["click"], params["llm"], target, gate=SigmoidGate(centre=1.0, slope=2.0)
        )

    return Writer(run)


def _experiment(params: dict[str, Any]) -> Writer:
    from hybridrank.data import Dataset
    from hybridrank.ensemble import FAMOLConfig, SchedulingConfig
    from hybridrank.gbdt import LambdaMARTConfig
    from hybridrank.pipelines import ExperimentConfig, run_experiment

    def run(target: Path) -> None:
        small = LambdaMARTConfig(n_estimators=15, early_stopping_rounds=None, n_jobs=1)
        config = ExperimentConfig(
            seeds=(0,), sessions=(), gbdt=small, cache=params["cache"],
            famol=FAMOLConfig(gbdt=small), scheduling=SchedulingConfig(gbdt=small),
            metrics=("ndcg@10",), neural=None,
        )  # fmt: skip
        run_experiment(config, target, dataset=Dataset.read(params["dataset"]), progress=False)

    return Writer(run)


def _train_neural(params: dict[str, Any]) -> Writer:
    import pandas as pd

    from hybridrank.neural import NeuralConfig
    from hybridrank.pipelines import NeuralTrainConfig, train_neural

    def run(target: Path) -> None:
        neural = NeuralConfig(
            model_path=params["model"], device="cpu", max_seq_length=32, batch_size=16,
            epochs=1, subsample_queries=4, seed=params["seed"],
        )  # fmt: skip
        config = NeuralTrainConfig(
            dataset=params["dataset"], neural=neural, metrics=("ndcg@10",), baseline=False
        )
        train_neural(config, target, candidates=pd.read_parquet(params["candidates"]))

    return Writer(run)


WRITERS: dict[str, Callable[[dict[str, Any]], Writer]] = {
    "train_neural": _train_neural,
    "world_build": _world_build,
    "dataset_import": _dataset_import,
    "annotate": _annotate,
    "train_gbdt": _train_gbdt,
    "bundle": _bundle,
    "experiment": _experiment,
}


def make(name: str, params: dict[str, Any]) -> Writer:
    return WRITERS[name](params)
