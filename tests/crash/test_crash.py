"""Crash tests: each writer SIGKILLed at 20 seeded points of its file-system work.

The invariant everywhere: the target is the previous complete state (it
loads and verifies) or the new complete state, never a mix; the next run of
the same command completes. See ``_zygote.py`` for how the kills are placed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from hybridrank import columns as C
from hybridrank.data import Dataset, SimulationConfig
from hybridrank.gbdt import GBDTBundle, LambdaMARTConfig
from hybridrank.pipelines import (
    DataConfig,
    GBDTTrainConfig,
    WorldConfig,
    build_world,
    train_gbdt,
    write_world,
)
from tests.conftest import make_collection, write_trec_dir
from tests.crash import writers

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
KILLS = 20


def _kill_many(
    root: Path, writer: str, params: dict[str, Any], previous: Path | None, kills: int = KILLS
) -> dict[str, Any]:
    root.mkdir(parents=True, exist_ok=True)
    spec = {
        "writer": writer,
        "params": params,
        "root": str(root),
        "previous": str(previous) if previous is not None else str(root / "no-previous"),
        "kills": kills,
        "seed": 0,
    }
    (root / "spec.json").write_text(json.dumps(spec))
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    subprocess.run(
        [sys.executable, "-m", "tests.crash._zygote", str(root / "spec.json")],
        cwd=REPO, env=env, check=True, timeout=900,
    )  # fmt: skip
    results = json.loads((root / "results.json").read_text())
    assert results["clean_status"] == 0, "the uninterrupted run failed"
    assert results["total_points"] >= 2
    killed = [k for k, status in results["points"].items() if status == -signal.SIGKILL]
    assert len(results["points"]) == min(kills, results["total_points"])
    assert killed, "no kill landed"
    return results


@pytest.fixture(scope="module")
def collection_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_trec_dir(
        make_collection(n_queries=50, n_docs=300, seed=5), tmp_path_factory.mktemp("c")
    )


def _world(collection_dir: Path, seed: int) -> WorldConfig:
    return WorldConfig(
        data=DataConfig(format="trec", path=str(collection_dir), stopwords="none"),
        simulation=SimulationConfig(n_sessions=600, seed=seed),
    )


@pytest.fixture(scope="module")
def world_dir(collection_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_world(
        build_world(_world(collection_dir, 1)), tmp_path_factory.mktemp("w") / "world"
    )


def test_world_build(collection_dir: Path, world_dir: Path, tmp_path: Path) -> None:
    params = {"collection": str(collection_dir), "sessions": 600, "seed": 2}
    results = _kill_many(tmp_path, "world_build", params, world_dir)
    for k in results["points"]:
        dataset = Dataset.read(tmp_path / f"k{k}" / "target")  # loads and verifies, or raises
        assert dataset.source["world"]["simulation"]["seed"] in (1, 2)
        assert len(dataset.candidates) > 0


def test_dataset_import(world_dir: Path, tmp_path: Path) -> None:
    world = Dataset.read(world_dir)
    files = tmp_path / "files"
    files.mkdir()
    log = world.impressions
    log.to_csv(files / "log.csv", index=False)
    assert world.queries is not None and world.docs is not None and world.qrels is not None
    world.queries.to_csv(files / "queries.tsv", sep="\t", header=False, index=False)
    world.docs[[C.DOCID, C.TEXT]].to_csv(files / "docs.tsv", sep="\t", header=False, index=False)
    (files / "qrels").write_text(
        "".join(f"{q} 0 {d} {g}\n" for q, d, g in world.qrels.itertuples(index=False))
    )
    params = {k: str(files / f) for k, f in (("log", "log.csv"), ("queries", "queries.tsv"), ("docs", "docs.tsv"), ("qrels", "qrels"))}  # fmt: skip
    results = _kill_many(tmp_path / "runs", "dataset_import", params, world_dir)
    for k in results["points"]:
        dataset = Dataset.read(tmp_path / "runs" / f"k{k}" / "target")
        assert dataset.source["producer"] in ("world build", "dataset import")
        assert dataset.summary()["sessions"] == world.summary()["sessions"]


def test_train_gbdt(world_dir: Path, tmp_path: Path) -> None:
    previous = tmp_path / "previous"
    train_gbdt(
        GBDTTrainConfig(gbdt=LambdaMARTConfig(n_estimators=20, n_jobs=1)),
        previous, dataset=Dataset.read(world_dir), progress=False,
    )  # fmt: skip
    params = {"dataset": str(world_dir), "engine": "xgboost"}
    results = _kill_many(tmp_path / "runs", "train_gbdt", params, previous)
    engines = set()
    for k in results["points"]:
        bundle = GBDTBundle.load(tmp_path / "runs" / f"k{k}" / "target")  # manifest verified
        engines.add(bundle.ranker.engine_)
    assert engines <= {"lightgbm", "xgboost"}
    assert len(engines) == 2, "kills both before and after the swap leave both states"


def test_bundle(world_dir: Path, tmp_path: Path) -> None:
    from hybridrank.serve import HybridRanker

    click = tmp_path / "click"
    train_gbdt(
        GBDTTrainConfig(gbdt=LambdaMARTConfig(n_estimators=20, n_jobs=1)),
        click, dataset=Dataset.read(world_dir), progress=False,
    )  # fmt: skip
    results = _kill_many(
        tmp_path / "runs", "bundle", {"click": str(click), "llm": str(click)}, None
    )
    complete = 0
    for k in results["points"]:
        target = tmp_path / "runs" / f"k{k}" / "target"
        if target.exists():
            HybridRanker.load(target)  # verified, or raises
            complete += 1
    assert complete < len(results["points"])


def test_annotate_and_cache_resume(world_dir: Path, tmp_path: Path) -> None:
    from hybridrank.labels.llm import AnswerCache, make_annotator
    from hybridrank.pipelines import annotate_dataset

    world = Dataset.read(world_dir)
    pairs = world.candidates[[C.QID, C.DOCID]].head(40)
    pairs.to_parquet(tmp_path / "pairs.parquet", index=False)
    results = _kill_many(
        tmp_path / "runs", "annotate", {"pairs": str(tmp_path / "pairs.parquet")}, world_dir
    )
    annotator = make_annotator("embedding")
    for i, k in enumerate(results["points"]):
        target = tmp_path / "runs" / f"k{k}" / "target"
        dataset = Dataset.read(target)
        assert dataset.llm_labels is None or len(dataset.llm_labels) == len(pairs)
        if i % 5:
            continue  # the resume check below loads the judge: on every fifth point
        with AnswerCache(target.parent / "cache.sqlite") as cache:
            stats = annotate_dataset(
                dataset, annotator, cache, candidates=pairs, progress=False
            ).stats
        assert stats.cached + stats.new == stats.distinct and stats.failed == 0


def test_experiment(world_dir: Path, tmp_path: Path) -> None:
    writer = writers.make(
        "experiment", {"dataset": str(world_dir), "cache": str(tmp_path / "cache.sqlite")}
    )
    previous = tmp_path / "previous"
    writer.run(previous)  # also fills the answer cache the children read
    results = _kill_many(
        tmp_path / "runs", "experiment",
        {"dataset": str(world_dir), "cache": str(tmp_path / "cache.sqlite")}, previous, kills=10,
    )  # fmt: skip
    for k in results["points"]:
        target = tmp_path / "runs" / f"k{k}" / "target"
        info = json.loads((target / "info.json").read_text())
        scores = pd.read_parquet(target / "scores.parquet")
        assert info["best_single"] in scores.columns
        assert (target / "report" / "main.csv").exists()
        assert np.isfinite(scores["click_gbdt"]).all()


def test_train_neural(
    world_dir: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    pytest.importorskip("sentence_transformers")
    from tests.neural.conftest import build_tiny_bert
    from tests.neural.stand_in_labels import stand_in_llm_labels

    model = build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))
    table = Dataset.read(world_dir).table()
    cand = table[table["bm25_rank"] <= 6].reset_index(drop=True)
    cand["y_llm"] = stand_in_llm_labels(cand, np.random.default_rng(0).random(len(cand)))
    cand.to_parquet(tmp_path / "cand.parquet", index=False)
    params = {
        "model": str(model),
        "dataset": str(world_dir),
        "candidates": str(tmp_path / "cand.parquet"),
    }
    previous = tmp_path / "previous"
    writers.make("train_neural", {**params, "seed": 1}).run(previous)
    results = _kill_many(
        tmp_path / "runs", "train_neural", {**params, "seed": 2}, previous, kills=6
    )
    seeds = set()
    for k in results["points"]:
        target = tmp_path / "runs" / f"k{k}" / "target"
        config = yaml.safe_load((target / "config.yaml").read_text())
        folds = json.loads((target / "folds.json").read_text())  # written last: a complete run
        assert folds["folds"] and (target / "model" / "ranker.json").exists()
        assert (target / "scores.parquet").exists() and (target / "report").is_dir()
        seeds.add(config["neural"]["seed"])
    assert seeds <= {1, 2}


STUDY = """
import sys
import pandas as pd
from hybridrank.tuning import StudySpec, run_study
spec = StudySpec(kind="stacker", n_trials=100_000, out=sys.argv[1], heartbeat_interval=None, grace_period=1)
run_study(spec, lambda: (pd.read_parquet(sys.argv[1] + "/study_inputs.parquet"), []), progress=False)
"""


def test_study_run_killed_at_random_moments(tmp_path: Path) -> None:
    import time

    import optuna

    from hybridrank.tuning import StudySpec, make_storage, run_study
    from tests.tuning.test_studies import _inputs

    out = tmp_path / "study"
    out.mkdir()
    _inputs().to_parquet(out / "study_inputs.parquet")
    delays = np.random.default_rng(0).uniform(1.0, 6.0, size=KILLS // 2)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for delay in delays:
        proc = subprocess.Popen([sys.executable, "-c", STUDY, str(out)], cwd=REPO, env=env)
        time.sleep(float(delay))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        storage = make_storage(None, out, heartbeat_interval=None)
        try:  # the storage opens and reads after every kill
            optuna.load_study(study_name="hybridrank-stacker", storage=storage)
        except KeyError:
            continue  # killed before the study was created
    time.sleep(1.1)  # past the grace period: unrecorded RUNNING trials count as dead
    storage = make_storage(None, out, heartbeat_interval=None)
    before = optuna.load_study(study_name="hybridrank-stacker", storage=storage)
    done = sum(t.state.is_finished() for t in before.trials)
    spec = StudySpec(
        kind="stacker", n_trials=done + 3, out=str(out), heartbeat_interval=None, grace_period=1
    )
    result = run_study(
        spec, lambda: (pd.read_parquet(out / "study_inputs.parquet"), []), progress=False
    )
    trials = result.study.get_trials(deepcopy=False)
    assert not [t.number for t in trials if t.state == optuna.trial.TrialState.RUNNING]
    assert len({t.number for t in trials}) == len(trials)
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials) >= 3
