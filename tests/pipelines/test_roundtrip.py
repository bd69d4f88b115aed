"""The dataset round trip: a world written as a dataset and read back gives the same experiment."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from hybridrank import columns as C
from hybridrank.data import TUNING, Dataset, SimulationConfig
from hybridrank.ensemble import GateChoice, gate_rise, make_gate
from hybridrank.errors import ConfigError
from hybridrank.pipelines import (
    DataConfig,
    ExperimentConfig,
    WorldConfig,
    build_world,
    run_experiment,
    write_world,
)
from hybridrank.pipelines._crossfit_report import CROSSFIT
from tests.conftest import make_collection, write_trec_dir


@pytest.fixture(scope="module")
def world_config(tmp_path_factory: pytest.TempPathFactory) -> WorldConfig:
    root = write_trec_dir(
        make_collection(n_queries=80, n_docs=500, seed=3), tmp_path_factory.mktemp("c")
    )
    return WorldConfig(
        data=DataConfig(format="trec", path=str(root), stopwords="none"),
        simulation=SimulationConfig(n_sessions=1500, seed=0),
    )


@pytest.mark.slow
def test_experiment_on_written_world_equals_in_memory(
    world_config: WorldConfig, tmp_path: Path
) -> None:
    config = ExperimentConfig(
        world=world_config, seeds=(0,), sessions=(), tuning_queries=12, metrics=("ndcg@10", "mrr"),
        neural=None,
    )
    in_memory = run_experiment(config, tmp_path / "a", progress=False)

    dataset = build_world(
        world_config.replace(folds=config.world.folds.__class__(tuning_queries=12))
    )
    write_world(dataset, tmp_path / "world")
    read = Dataset.read(tmp_path / "world")
    from_disk = run_experiment(config, tmp_path / "b", dataset=read, progress=False)

    pd.testing.assert_frame_equal(in_memory.main.summary, from_disk.main.summary)
    assert in_memory.info["tuning_queries"] == from_disk.info["tuning_queries"]
    assert in_memory.main.to_text().splitlines()[1:] == from_disk.main.to_text().splitlines()[1:]
    gates = [r["runs"][next(iter(r["runs"]))]["gate"] for r in (in_memory.info, from_disk.info)]
    assert gates[0] == gates[1]
    # The default anchors: FAMOL, the gold expert and the raw mean dwell, each with a weight.
    anchors = in_memory.info["runs"]["seed0_sessions1500"]["anchors"]
    assert set(anchors) == {"famol", "gold_gbdt", "raw_dwell"}
    assert all(0 <= w <= 1 for w in anchors.values()) and sum(anchors.values()) <= 1 + 1e-9
    # The gate selection is recorded, and the kept trial's is the gate the run reports.
    run = in_memory.info["runs"]["seed0_sessions1500"]
    choice = GateChoice.from_dict(run["gate_selection"], source="info")
    assert choice.rule == "rising" and choice.within >= 1
    assert run["tuning_ndcg"] == pytest.approx(choice.value)
    kept = make_gate(run["gate_kind"], run["gate"])
    assert gate_rise(kept, choice.low_freq, choice.high_freq) == pytest.approx(choice.rise)
    # 12 tuning queries are too few for the default 5-fold cross-fit: skipped (logged).
    assert "tuning_crossfit" not in run and not (tmp_path / "a/report/tuning_crossfit.md").exists()
    # The run is named by the dataset's own sessions, whatever the config would simulate.
    assert list(from_disk.info["runs"]) == list(in_memory.info["runs"]) == ["seed0_sessions1500"]
    other = run_experiment(replace(config, main_sessions=99), tmp_path / "c", dataset=read,
                           progress=False)  # fmt: skip
    assert list(other.info["runs"]) == ["seed0_sessions1500"]


@pytest.mark.slow
def test_experiment_cross_fits_the_stacker_over_its_tuning_queries(tmp_path: Path) -> None:
    root = write_trec_dir(make_collection(n_queries=150, n_docs=600, seed=4), tmp_path / "c")
    world = WorldConfig(
        data=DataConfig(format="trec", path=str(root), stopwords="none"),
        simulation=SimulationConfig(n_sessions=1500, seed=0),
    )
    config = ExperimentConfig(
        world=world, seeds=(0,), sessions=(), tuning_queries=24, tuning_crossfit=2, neural=None,
        metrics=("ndcg@10",),
    )  # fmt: skip
    result = run_experiment(config, tmp_path / "x", progress=False)
    run = result.info["runs"]["seed0_sessions1500"]
    folds = run["tuning_crossfit"]["per_fold"]
    assert [f["fold"] for f in folds] == [0, 1]
    # The gold expert (a default anchor) learned from the tuning grades: retrained per fold.
    assert all(f["refitted"] == ["gold_gbdt"] for f in folds)
    assert sum(f["scored"] for f in folds) == len(result.info["tuning_queries"])
    scores = pd.read_parquet(tmp_path / "x" / "scores.parquet")
    assert scores[CROSSFIT].notna().equals(scores[TUNING] & scores[C.Y_EXPERT].notna()
                                           .groupby(scores[C.QID]).transform("any"))  # fmt: skip
    text = (tmp_path / "x" / "report" / "tuning_crossfit.md").read_text()
    assert "over 2 folds" in text and "gated_stacker_crossfit" in text
    assert (tmp_path / "x" / "report" / "tuning_crossfit.png").stat().st_size > 0
    side = pd.read_csv(tmp_path / "x" / "report" / "tuning_crossfit.csv")
    assert side["system"].iloc[0] == CROSSFIT
    assert not {"gated_stacker", "meta_ranker"} & set(side["system"])
    with pytest.raises(ConfigError, match="tuning_crossfit"):
        replace(config, tuning_crossfit=1)


def test_world_dataset_round_trip_is_exact(world_config: WorldConfig, tmp_path: Path) -> None:
    dataset = build_world(world_config)
    write_world(dataset, tmp_path / "w")
    read = Dataset.read(tmp_path / "w")
    for name in ("candidates", "splits", "impressions", "queries", "docs", "qrels"):
        pd.testing.assert_frame_equal(getattr(dataset, name), getattr(read, name))
    assert read.features == dataset.features
    assert read.tuning_qids == dataset.tuning_qids
    assert read.split_info == dataset.split_info
    assert (tmp_path / "w" / "config.yaml").exists()
    # The world config it was built with can be fed back.
    assert WorldConfig.from_yaml(tmp_path / "w" / "config.yaml") == world_config
