"""Multi-objective gbdt studies: NDCG and serving cost, the Pareto front, picking a trial."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from hybridrank import columns as C
from hybridrank.errors import ConfigError
from hybridrank.tuning import (
    Pick,
    StudySpec,
    lambdamart_params,
    pareto_front,
    pick_trial,
    run_study,
    study_report,
    trials_table,
)


def _gbdt_inputs(n_q: int = 60, per: int = 20, seed: int = 0) -> tuple[pd.DataFrame, list[str]]:
    rng = np.random.default_rng(seed)
    qid = np.repeat([f"q{i:03d}" for i in range(n_q)], per)
    y = rng.integers(0, 4, qid.size).astype(float)
    f1 = y + rng.normal(0, 1.0, qid.size)
    f2 = rng.normal(0, 1, qid.size)
    table = pd.DataFrame({C.QID: qid, "f1": f1, "f2": f2, C.Y_CLICK: y, C.Y_EXPERT: y,
                          C.FREQ: 1, "tuning": np.repeat(np.arange(n_q) < 15, per)})  # fmt: skip
    return table, ["f1", "f2"]


@pytest.mark.parametrize("cost", ["latency", "size"])
def test_multi_objective_gbdt_study_front_and_pick(cost: str, tmp_path: Path) -> None:
    spec = StudySpec(kind="gbdt", n_trials=6, out=str(tmp_path / "s"), objectives=("ndcg", cost),
                     latency_repeats=5, space={"num_leaves": [2, 16]})  # fmt: skip
    result = run_study(spec, lambda: _gbdt_inputs(), progress=False)
    study = result.study
    assert len(study.directions) == 2 and len(study.trials) == 6
    table = trials_table(study)
    assert {"ndcg", "p50_ms", "size", "n_trees", "best_round", "num_leaves"} <= set(table.columns)
    assert (table["p50_ms"] > 0).all() and (table["size"] >= 2).all()
    front = pareto_front(study)
    assert 1 <= len(front) <= 6 and front["ndcg"].is_monotonic_decreasing
    text, paths = study_report(study, tmp_path / "report")
    assert "Pareto front" in text and paths["png"].read_bytes()[:4] == b"\x89PNG"
    assert paths["csv"].exists()

    best = table["ndcg"].max()
    fastest = pick_trial(table, "ndcg>=best-1, fastest")
    assert fastest["p50_ms"] == table["p50_ms"].min()
    chosen = pick_trial(table, f"ndcg>={best - 1e-12}, smallest")
    assert chosen["ndcg"] == pytest.approx(best)
    with pytest.raises(ConfigError, match="no trial meets ndcg>=2: NDCG ranges"):
        pick_trial(table, "ndcg>=2, fastest")
    assert Pick.parse("ndcg>=best-0.005, p50_ms<=1.5, smallest").describe() == (
        "ndcg>=best-0.005, p50_ms<=1.5"
    )
    # Resuming a single-objective study under the same name is refused with a clear message.
    with pytest.raises(ConfigError, match="objective"):
        run_study(StudySpec(kind="gbdt", n_trials=7, out=spec.out), lambda: _gbdt_inputs(),
                  progress=False)  # fmt: skip
    # So is one with the other cost: its trials would mix milliseconds and leaf counts.
    other = "size" if cost == "latency" else "latency"
    with pytest.raises(ConfigError, match=rf"scored on objectives \['ndcg', '{cost}'\]"):
        run_study(replace(spec, n_trials=8, objectives=("ndcg", other)),
                  lambda: _gbdt_inputs(), progress=False)  # fmt: skip
    assert len(result.study.trials) == 6


def test_pick_rule_parsing() -> None:
    rule = Pick.parse("ndcg>=best-0.005, latency<=1.5, fastest")
    assert rule.constraints == (("ndcg", ">=", -0.005, True), ("p50_ms", "<=", 1.5, False))
    assert rule.chooser == "fastest"
    for bad in ("ndcg>=0.6", "speed<3, fastest", "fastest, smallest"):
        with pytest.raises(ConfigError):
            Pick.parse(bad)
    with pytest.raises(ConfigError, match="objectives"):
        StudySpec(kind="stacker", objectives=("ndcg", "latency"))
    with pytest.raises(ConfigError, match="objectives"):
        StudySpec(kind="gbdt", objectives=("latency",))


def test_picked_trial_is_a_train_config_train_gbdt_accepts(tmp_path: Path) -> None:
    from hybridrank.pipelines import GBDTTrainConfig, train_config_for_trial, write_train_config

    trial = {"learning_rate": 0.07, "num_leaves": 9, "min_data_in_leaf": 12,
             "feature_fraction": 0.8, "lambda_l2": 0.5, "best_round": 42}  # fmt: skip
    assert lambdamart_params(trial) == {
        "learning_rate": 0.07, "num_leaves": 9, "min_child_samples": 12, "colsample": 0.8,
        "reg_lambda": 0.5, "n_estimators": 42, "early_stopping_rounds": None,
    }  # fmt: skip
    spec = StudySpec(kind="gbdt", dataset="runs/world", seed=3,
                     experiment={"features": ["click", "text"]})  # fmt: skip
    config = train_config_for_trial(spec, trial)
    path = write_train_config(config, tmp_path / "picked.yaml", header="trial #4")
    read = GBDTTrainConfig.from_yaml(path)
    assert read == config
    assert read.gbdt.num_leaves == 9 and read.gbdt.min_child_samples == 12
    assert read.gbdt.n_estimators == 42 and read.gbdt.early_stopping_rounds is None
    assert read.dataset == "runs/world" and read.features == ("click", "text")
    assert read.label == "click" and read.gbdt.seed == 3
    assert path.read_text().startswith("# trial #4")
    assert yaml.safe_load(path.read_text())["gbdt"]["colsample"] == 0.8


def test_gbdt_study_searches_config_fields_on_either_engine_and_prunes(tmp_path: Path) -> None:
    spec = StudySpec(
        kind="gbdt", n_trials=4, out=str(tmp_path / "x"), latency_repeats=3,
        experiment={"gbdt": {"engine": "xgboost", "max_depth": 3}},
        space={"num_leaves": [2, 8], "min_data_in_leaf": [2, 10]},  # a LightGBM name, read as its field
    )  # fmt: skip
    assert set(spec.space) == {"num_leaves", "min_child_samples"}
    study = run_study(spec, lambda: _gbdt_inputs(), progress=False).study
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert done and all(t.user_attrs["engine"] == "xgboost" for t in done)
    names = set(done[0].params)
    assert names == {"learning_rate", "num_leaves", "min_child_samples", "colsample", "reg_lambda"}
    # Every name is a LambdaMARTConfig field: a best trial pastes into `gbdt:`.
    from hybridrank.gbdt import LambdaMARTConfig

    LambdaMARTConfig.from_dict({"engine": "xgboost", **study.best_trial.params})
    assert 2 <= done[0].params["min_child_samples"] <= 10
    # Pruning sees one validation NDCG per boosting round: the kept rounds and the 30 after.
    rounds = done[0].user_attrs["best_round"]
    assert len(done[0].intermediate_values) in (rounds + 30, 300)
    with pytest.raises(ConfigError, match="twice"):
        StudySpec(kind="gbdt", space={"lambda_l2": [0.1, 1.0], "reg_lambda": [0.1, 1.0]})


def test_study_inputs_record_their_dataset_for_reuse_and_study_best(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """`study run --dataset X` records X with the inputs: a rerun on other data is refused
    (its trials would mix with X's), and `study best` writes a config that trains on X."""
    from types import SimpleNamespace

    from hybridrank.cli import main
    from hybridrank.errors import DataFormatError
    from hybridrank.pipelines._study import (
        INPUTS_RECORD,
        _check_inputs_record,
        _inputs_record,
        recorded_dataset,
    )

    out = tmp_path / "s"
    spec = StudySpec(kind="gbdt", n_trials=3, out=str(out), space={"num_leaves": [2, 8]},
                     experiment={"features": ["click"]})  # fmt: skip
    run_study(spec, lambda: _gbdt_inputs(), progress=False)
    world = SimpleNamespace(path=tmp_path / "world")
    (out / INPUTS_RECORD).write_text(__import__("json").dumps(_inputs_record(spec, world)))
    assert recorded_dataset(out) == str((tmp_path / "world").resolve())
    _check_inputs_record(out, spec, world)  # the same data: reused
    with pytest.raises(ConfigError, match="inputs were built from dataset"):
        _check_inputs_record(out, spec, SimpleNamespace(path=tmp_path / "world2"))
    other = StudySpec(kind="gbdt", out=str(out), experiment={"features": ["click", "text"]})
    with pytest.raises(ConfigError, match="experiment: block"):
        _check_inputs_record(out, other, world)
    # The stacker's selection rule chooses among finished trials and changes no score: a
    # study is resumed with another one.
    stacker = {"features": ["click"], "stacker": {"selection": "rising"}}
    (out / INPUTS_RECORD).write_text(
        __import__("json").dumps(_inputs_record(replace(spec, experiment=stacker), world))
    )
    best = {"features": ["click"], "stacker": {"selection": "best", "selection_se": 2.0}}
    _check_inputs_record(out, replace(spec, experiment=best), world)
    with pytest.raises(ConfigError, match="experiment: block"):
        _check_inputs_record(out, replace(spec, experiment={**best, "stacker": {"k": 5}}), world)
    # The same directory holding other data since (new LLM labels, a rebuilt world): its
    # manifest's table sums tell, and the rerun is refused.
    (tmp_path / "world").mkdir()
    manifest = tmp_path / "world" / "dataset.yaml"
    tables = {"candidates": {"file": "candidates.parquet", "sha256": "a" * 64}}
    manifest.write_text(yaml.safe_dump({"tables": tables}))
    (out / INPUTS_RECORD).write_text(__import__("json").dumps(_inputs_record(spec, world)))
    _check_inputs_record(out, spec, world)
    tables["llm_labels"] = {"file": "llm_labels.parquet", "sha256": "b" * 64}
    manifest.write_text(yaml.safe_dump({"tables": tables}))
    with pytest.raises(ConfigError, match=r"changed since.*\['llm_labels'\]"):
        _check_inputs_record(out, spec, world)
    tables["llm_labels"]["sha256"] = "c" * 64
    (out / INPUTS_RECORD).write_text(__import__("json").dumps(_inputs_record(spec, world)))
    tables["candidates"]["sha256"] = "d" * 64
    manifest.write_text(yaml.safe_dump({"tables": tables}))
    with pytest.raises(ConfigError, match=r"\['candidates', 'llm_labels'\] differ"):
        _check_inputs_record(out, spec, world)
    manifest.unlink()
    # The spec file names no dataset (it came from --dataset): the picked config has it.
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump({"study": {
        "kind": "gbdt", "out": str(out), "space": {"num_leaves": [2, 8]},
        "experiment": {"features": ["click"]}}}))  # fmt: skip
    picked = tmp_path / "picked.yaml"
    assert main(["study", "best", str(spec_file), "--config-out", str(picked)]) == 0
    written = yaml.safe_load(picked.read_text())
    assert written["dataset"] == str((tmp_path / "world").resolve())
    assert "world" not in written  # the dataset is read, no world built: no block to mislead
    # A stacker study has no train config to write: said, with where its result is.
    stacker_file = tmp_path / "stacker.yaml"
    stacker_file.write_text(yaml.safe_dump({"study": {"kind": "stacker", "out": str(out)}}))
    assert main(["study", "best", str(stacker_file), "--config-out", str(picked)]) == 2
    err = capsys.readouterr().err
    assert "is a stacker study" in err and "bundle --study" in err and "--pick" not in err
    # A spec naming another dataset: the one the study ran on wins, and it is said.
    raw = yaml.safe_load(spec_file.read_text())
    raw["study"]["dataset"] = str(tmp_path / "elsewhere")
    spec_file.write_text(yaml.safe_dump(raw))
    assert main(["study", "best", str(spec_file), "--config-out", str(picked)]) == 0
    assert yaml.safe_load(picked.read_text())["dataset"] == str((tmp_path / "world").resolve())
    printed = capsys.readouterr().out
    assert "the study ran on" in printed and "warning" not in printed  # no inputs file here
    # Inputs with 15 labelled tuning queries (fewer than 20): the pick is said to be noise.
    _gbdt_inputs()[0].to_parquet(out / "study_inputs.parquet")
    assert main(["study", "best", str(spec_file), "--config-out", str(picked)]) == 0
    assert "scored on 15 labelled tuning queries (fewer than 20)" in capsys.readouterr().out
    # A damaged record is an error naming it, never a silent pass.
    (out / INPUTS_RECORD).write_text("[1, 2]")
    with pytest.raises(DataFormatError, match="not a study inputs record"):
        _check_inputs_record(out, spec, world)


def test_a_famol_study_best_trial_becomes_a_train_config(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """`study best` on a famol study writes `label: famol` with the trial's alpha."""
    from hybridrank.cli import main
    from hybridrank.pipelines import GBDTTrainConfig

    out = tmp_path / "s"
    famol_gbdt = {"n_estimators": 20, "early_stopping_rounds": None, "n_jobs": 1}
    spec = StudySpec(kind="famol", n_trials=3, out=str(out),
                     experiment={"famol": {"gbdt": famol_gbdt}})  # fmt: skip
    table, features = _gbdt_inputs()
    table[C.Y_LLM] = table[C.Y_EXPERT]
    result = run_study(spec, lambda: (table, features), progress=False)
    best = result.study.best_trial
    spec_file = tmp_path / "famol.yaml"
    spec_file.write_text(yaml.safe_dump({"study": {"kind": "famol", "out": str(out),
                                                   "experiment": {"famol": {"gbdt": famol_gbdt}}}}))  # fmt: skip
    picked = tmp_path / "famol_train.yaml"
    assert main(["study", "best", str(spec_file), "--config-out", str(picked)]) == 0
    config = GBDTTrainConfig.from_yaml(picked)  # what train gbdt reads
    assert config.label == "famol"
    assert (config.famol.centre, config.famol.slope) == pytest.approx(
        (best.params["centre"], best.params["slope"])
    )
    assert config.gbdt.n_estimators == 20 and config.famol_model.gbdt == config.gbdt
    assert f"best trial #{best.number} of famol study" in capsys.readouterr().out
    assert main(["study", "best", str(spec_file), "--pick", "ndcg>=0.5, fastest",
                 "--config-out", str(picked)]) == 2  # fmt: skip
    assert "no serving costs" in capsys.readouterr().err


def test_gbdt_trials_train_the_rounds_the_experiment_block_names(tmp_path: Path) -> None:
    spec = StudySpec(kind="gbdt", n_trials=2, out=str(tmp_path / "s"),
                     experiment={"gbdt": {"n_estimators": 7, "early_stopping_rounds": None}})  # fmt: skip
    study = run_study(spec, lambda: _gbdt_inputs(), progress=False).study
    assert [t.user_attrs["best_round"] for t in study.trials] == [7, 7]
