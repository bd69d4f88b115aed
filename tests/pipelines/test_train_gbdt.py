from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from hybridrank import columns as C
from hybridrank.cli import main
from hybridrank.data import TUNING, Dataset, SimulationConfig
from hybridrank.ensemble import FAMOLConfig, FAMOLRanker
from hybridrank.errors import ConfigError, DataFormatError
from hybridrank.evaluate import evaluate_table
from hybridrank.features import CLICK_FEATURES
from hybridrank.gbdt import GBDTBundle, LambdaMARTConfig, LambdaMARTRanker, feature_importance
from hybridrank.pipelines import (
    BEST_FEATURE,
    DataConfig,
    GBDTTrainConfig,
    WorldConfig,
    best_feature_baseline,
    build_world,
    train_gbdt,
    training_differences,
    warn_below_best_feature,
    write_world,
)

from ..conftest import write_trec_dir


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_collection):
    root = write_trec_dir(tiny_collection, tmp_path_factory.mktemp("trec"))
    config = GBDTTrainConfig(
        world=WorldConfig(
            data=DataConfig(format="trec", path=str(root)),
            simulation=SimulationConfig(n_sessions=3000, seed=2, zipf_exponent=0.8),
        ),
        gbdt=LambdaMARTConfig(n_estimators=40, min_child_samples=5, early_stopping_rounds=None),
        metrics=("ndcg@10",),
    )
    out = tmp_path_factory.mktemp("run")
    return train_gbdt(config, out), config


def test_bundle_contents(trained) -> None:
    run, _ = trained
    for name in (
        "model/model.txt",
        "model/model_dump.json",
        "schema.json",
        "config.yaml",
        "metrics.json",
        "report/report.md",
        "curves.png",
        "train_table.parquet",
        "manifest.json",
    ):
        assert (run.path / name).exists(), name
    assert "gbdt_click" in run.table.columns
    # Never-shown candidates have no click label, and were not trained on as 0.
    assert run.table[C.Y_CLICK].isna().any()
    assert run.table["gbdt_click"].notna().all()
    metrics = json.loads((run.path / "metrics.json").read_text())
    assert {m["system"] for m in metrics} == {"bm25", BEST_FEATURE, "gbdt_click"}
    # The labelled tuning queries are left out of the report (they are the calibration set).
    assert run.name == "gbdt_click"
    tuning = set(run.table.loc[run.table[TUNING], C.QID])
    assert tuning
    assert run.report is not None
    assert not tuning & set(run.report.per_query[C.QID])
    config = yaml.safe_load((run.path / "config.yaml").read_text())
    assert GBDTTrainConfig.from_dict(config) == trained[1]


def test_report_shows_the_best_single_input_feature(trained) -> None:
    run, _ = trained
    assert run.report is not None
    assert run.report.systems == ("bm25", BEST_FEATURE, "gbdt_click")
    # Chosen per fold among the model's own inputs, recorded with the report.
    choices = run.report.meta[BEST_FEATURE]
    assert len(choices) == len(set(run.table[C.FOLD]))
    assert {c["feature"] for c in choices} <= set(run.features)
    assert all(c["sign"] in (1, -1) for c in choices)
    assert f"{BEST_FEATURE}: the model's single input feature" in run.report.title
    saved = json.loads((run.path / "report" / "report.json").read_text())
    assert saved["meta"][BEST_FEATURE] == choices


def test_a_model_below_its_best_feature_is_warned_about(trained, caplog) -> None:
    run, _ = trained
    rows = run.table.loc[~run.table[TUNING]].copy()
    best = best_feature_baseline(rows, run.features)
    assert best is not None
    rows[BEST_FEATURE] = best.scores
    rows["shuffled"] = np.random.default_rng(0).random(len(rows))  # a model that learned nothing
    report = evaluate_table(rows, ["shuffled", BEST_FEATURE], metrics=("ndcg@10",))
    with caplog.at_level("WARNING", logger="hybridrank.pipelines._best_feature"):
        warn_below_best_feature(report, "shuffled", best)
    assert "shuffled ranks below its best single input feature" in caplog.text
    assert best.describe() in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="hybridrank.pipelines._best_feature"):
        warn_below_best_feature(report, BEST_FEATURE, best)  # level with itself: no warning
    assert not caplog.text


def test_bundle_round_trip_and_schema_errors(trained) -> None:
    run, _ = trained
    bundle = GBDTBundle.load(run.path)
    table = pd.read_parquet(run.path / "train_table.parquet")
    np.testing.assert_allclose(
        bundle.predict(table), run.ranker.predict(table[run.features]), rtol=1e-6
    )
    with pytest.raises(DataFormatError, match="missing"):
        bundle.predict(table.drop(columns=["qd_ctr"]))


def test_tampered_bundle_is_refused(trained, tmp_path: Path) -> None:
    import shutil

    run, _ = trained
    copy = tmp_path / "copy"
    shutil.copytree(run.path, copy)
    with (copy / "model" / "model.txt").open("a") as fh:
        fh.write("\n")
    with pytest.raises(DataFormatError, match=r"model/model\.txt was modified"):
        GBDTBundle.load(copy)
    (copy / "schema.json").unlink()
    with pytest.raises(DataFormatError, match=r"schema\.json is missing"):
        GBDTBundle.load(copy)


def test_importance_tables(trained, tmp_path: Path) -> None:
    run, _ = trained
    imp = feature_importance(run.ranker, run.table, run.features, n_repeats=1)
    assert set(imp.overall.columns) == {"gain", "split", "shap", "permutation"}
    assert imp.overall["gain"].sum() == pytest.approx(1.0)
    assert set(imp.by_bucket[C.BUCKET]) >= {"all"}
    # Bucket columns in rising frequency, whatever order the table lists queries in.
    present = [b for b in ("low", "mid", "high") if b in set(run.table[C.BUCKET])]
    assert len(present) >= 2
    assert list(imp.bucket_table().columns) == [*present, "all"]
    n_all = int(imp.by_bucket.loc[imp.by_bucket[C.BUCKET] == "all", "queries"].iloc[0])
    assert imp.bucket_table(counts=True).columns[-1] == f"all (n={n_all})" and n_all > 0
    shuffled = run.table.iloc[::-1].reset_index(drop=True)
    again = feature_importance(run.ranker, shuffled, run.features, n_repeats=1)
    assert list(again.bucket_table().columns) == [*present, "all"]
    # The smoothed debiased CTR is what the model leans on; shuffling it hurts.
    assert imp.top(3).index.str.startswith(("qd_", "doc_", "bm25", "tfidf", "term")).all()
    paths = imp.write(tmp_path)
    assert paths["png_buckets"].read_bytes()[:4] == b"\x89PNG"
    assert "Permutation importance per frequency bucket" in paths["markdown"].read_text()
    # Without buckets only the overall table is written (a per-bucket one would repeat it).
    plain = feature_importance(run.ranker, run.table, run.features, bucket=None, n_repeats=1)
    assert not plain.has_buckets and "per frequency bucket" not in plain.to_text()
    written = plain.write(tmp_path)  # over the run with buckets: its bucket files go
    assert set(written) == {"overall_csv", "markdown", "png_overall"}
    assert not (tmp_path / "importance_by_bucket.png").exists()
    assert not (tmp_path / "importance_by_bucket.csv").exists()


def test_cli_train_and_importance(trained, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _, config = trained
    cfg = tmp_path / "train.yaml"
    cfg.write_text(yaml.safe_dump(config.to_dict()))
    out = tmp_path / "cli-run"
    assert main(["train", "gbdt", "--config", str(cfg), "--out", str(out)]) == 0
    assert "gbdt_click" in capsys.readouterr().out
    assert main(["importance", str(out), "--top", "5", "--repeats", "1"]) == 0
    printed = capsys.readouterr().out
    assert "Top 5 features" in printed
    assert (out / "importance" / "importance.png").exists()
    # A bad config is one clear line.
    cfg.write_text("gbdt: {engine: catboost}\n")
    assert main(["train", "gbdt", "--config", str(cfg), "--out", str(out)]) == 2
    assert "gbdt.engine" in capsys.readouterr().err


def test_oracle_and_config_errors() -> None:
    with pytest.raises(ConfigError, match="label"):
        GBDTTrainConfig(label="votes")
    with pytest.raises(ConfigError, match="unknown sections"):
        GBDTTrainConfig.from_dict({"model": {}})


@pytest.fixture(scope="module", params=["harvest", "engine", "none"])
def unbiased_run(request, tmp_path_factory, tiny_collection):
    root = write_trec_dir(tiny_collection, tmp_path_factory.mktemp("trec-u"))
    config = GBDTTrainConfig.from_dict(
        {
            "world": {
                "data": {"format": "trec", "path": str(root)},
                "simulation": {"n_sessions": 3000, "seed": 2, "zipf_exponent": 0.8},
            },
            "label": "clicks",
            "unbiased": {"propensity": request.param},
            "features": ["click", "text"],
            "gbdt": {"engine": "xgboost", "n_estimators": 30, "early_stopping_rounds": None},
            "metrics": ["ndcg@10"],
        }
    )
    return train_gbdt(config, tmp_path_factory.mktemp("run-u"), progress=False), config


def test_clicks_label_trains_unbiased_lambdamart(unbiased_run) -> None:
    run, config = unbiased_run
    assert run.name == "gbdt_unbiased"
    # Click features hold the label's own click: left out unless asked for.
    assert not set(run.features) & set(CLICK_FEATURES)
    assert run.table["gbdt_unbiased"].notna().all()
    assert run.report is not None
    assert "gbdt_unbiased" in set(run.report.summary["system"])
    bias = run.position_bias
    assert bias is not None
    if config.unbiased.propensity == "none":
        # No correction: only the PBM's curve is shown, for reference.
        assert list(bias.columns) == ["pbm_examination"]
        assert "not corrected" in (run.path / "position_bias.md").read_text()
        return
    learned = "harvested" if config.unbiased.propensity == "harvest" else "xgboost"
    assert list(bias.columns) == [learned, "pbm_examination"]
    assert bias.loc[1, learned] == pytest.approx(1.0)
    assert bias.loc[1, "pbm_examination"] == pytest.approx(1.0)
    # Examination falls down the page (3,000 sessions: a loose check of the shape).
    assert bias.loc[5, learned] < bias.loc[2, learned] < 1.0
    for name in ("position_bias.csv", "position_bias.md", "position_bias.png"):
        assert (run.path / name).is_file()
    assert learned in (run.path / "position_bias.md").read_text()
    back = GBDTTrainConfig.from_yaml(run.path / "config.yaml")
    assert back == config
    saved = json.loads((run.path / "model" / "ranker.json").read_text())
    assert saved["position_bias"]["1"] == 1.0
    assert ("harvested" in saved["position_bias_source"]) == (learned == "harvested")


def test_clicks_label_options() -> None:
    config = GBDTTrainConfig.from_dict({"label": "clicks", "unbiased": {"max_position": 5}})
    assert config.unbiased.max_position == 5
    with pytest.raises(ConfigError, match=r"unbiased\.max_position"):
        GBDTTrainConfig.from_dict({"label": "clicks", "unbiased": {"max_position": 0}})
    with pytest.raises(ConfigError, match="unbiased"):
        GBDTTrainConfig.from_dict({"label": "clicks", "unbiased": {"max_positon": 5}})
    with pytest.raises(ConfigError, match=r"unbiased\.propensity must be one of"):
        GBDTTrainConfig.from_dict({"label": "clicks", "unbiased": {"propensity": "em"}})
    with pytest.raises(ConfigError, match=r"unbiased\.min_propensity"):
        GBDTTrainConfig.from_dict({"label": "clicks", "unbiased": {"min_propensity": 0}})
    with pytest.raises(ConfigError, match="one process"):
        GBDTTrainConfig.from_dict({"label": "clicks", "dask": {"n_workers": 2}})
    with pytest.raises(ConfigError, match=r"gbdt\.params\.num_leafs.*num_leaves"):
        GBDTTrainConfig.from_dict({"gbdt": {"params": {"num_leafs": 7}}})
    with pytest.raises(ConfigError, match=r"gbdt\.num_leaves must be >= 2"):
        GBDTTrainConfig.from_dict({"gbdt": {"num_leaves": -3}})


def test_clicks_label_keeps_click_features_when_asked() -> None:
    from hybridrank.pipelines import UnbiasedConfig
    from hybridrank.pipelines._unbiased import unbiased_features

    names = ["bm25", "qd_ctr"]
    assert unbiased_features(names, UnbiasedConfig()) == ["bm25"]
    assert unbiased_features(names, UnbiasedConfig(click_features=True)) == names
    with pytest.raises(DataFormatError, match="no features left"):
        unbiased_features(["qd_ctr"], UnbiasedConfig())


def test_dense_feature_group_in_train_gbdt(tmp_path, tiny_collection) -> None:
    """``features: [text, dense]``: the packaged MiniLM's cosine of every candidate is an input."""
    root = write_trec_dir(tiny_collection, tmp_path / "trec")
    config = GBDTTrainConfig.from_dict(
        {
            "world": {
                "data": {"format": "trec", "path": str(root)},
                "simulation": {"n_sessions": 500, "seed": 1},
            },
            "label": "ctr",
            "features": ["text", "dense"],
            "gbdt": {"n_estimators": 10, "early_stopping_rounds": None, "min_child_samples": 5},
            "metrics": ["ndcg@10"],
        }
    )
    run = train_gbdt(config, tmp_path / "run", progress=False)
    assert "dense_cosine" in run.features
    dense = run.table["dense_cosine"]
    assert dense.notna().all() and dense.between(-1, 1).all() and dense.std() > 0
    schema = json.loads((run.path / "schema.json").read_text())
    assert "dense_cosine" in json.dumps(schema)


def test_propensities_reach_the_gradients_and_a_fixed_order_log_names_the_way_out() -> None:
    import pandas as pd

    from hybridrank.errors import DataFormatError
    from hybridrank.gbdt import LambdaMARTConfig
    from hybridrank.pipelines import UnbiasedConfig, fit_unbiased
    from hybridrank.pipelines._unbiased import propensity_objective

    # One session, clicks at positions 1 and 4; equal scores.
    session = np.zeros(5, dtype=np.int64)
    click = np.array([1, 0, 0, 1, 0])
    exam = np.array([1.0, 0.7, 0.5, 0.25, 0.2])
    rows = np.arange(5)
    plain, _ = propensity_objective(session, click, click.astype(float))(rows)(np.zeros(5))
    weighted, _ = propensity_objective(session, click, click / exam)(rows)(np.zeros(5))
    # Both clicks are pushed up; weighting by 1 / examination pushes the click shown at
    # position 4 (examined a quarter as often) 4x as hard, relative to the unweighted loss.
    assert plain[0] < 0 and plain[3] < 0 and weighted[0] < 0 and weighted[3] < 0
    assert (weighted[3] / plain[3]) / (weighted[0] / plain[0]) == pytest.approx(4.0)

    fixed = pd.DataFrame(
        {
            C.SESSION_ID: np.repeat(np.arange(50), 3),
            C.QID: "q",
            C.DOCID: np.tile(["a", "b", "c"], 50),
            C.POSITION: np.tile([1, 2, 3], 50),
            C.CLICK: np.tile([1, 1, 0], 50),
            "bm25": np.tile([3.0, 2.0, 1.0], 50),
        }
    )
    with pytest.raises(DataFormatError, match=r"never varied.*propensity: engine"):
        fit_unbiased(fixed, ["bm25"], LambdaMARTConfig(n_estimators=5), UnbiasedConfig())


def test_click_labels_on_shown_pairs_only_without_click_features_warn(
    tmp_path, tiny_collection, caplog
) -> None:
    import logging

    root = write_trec_dir(tiny_collection, tmp_path / "trec")
    spec = {
        "world": {
            "data": {"format": "trec", "path": str(root)},
            "simulation": {"n_sessions": 400, "seed": 1},
        },
        "label": "click",
        "features": ["text"],
        "gbdt": {"n_estimators": 5, "early_stopping_rounds": None, "min_child_samples": 5},
        "metrics": ["ndcg@10"],
    }
    with caplog.at_level(logging.WARNING, logger="hybridrank.pipelines._train_gbdt"):
        train_gbdt(GBDTTrainConfig.from_dict(spec), tmp_path / "a", progress=False)
    assert "never sees a never-shown one" in caplog.text
    caplog.clear()
    spec["click_split"] = {"mode": "session", "unshown": "zero"}
    with caplog.at_level(logging.WARNING, logger="hybridrank.pipelines._train_gbdt"):
        train_gbdt(GBDTTrainConfig.from_dict(spec), tmp_path / "b", progress=False)
    assert "never sees a never-shown one" not in caplog.text


def _with_stand_in_llm_labels(dataset: Dataset, seed: int = 0) -> Dataset:
    """``dataset`` with LLM labels as ``annotate`` leaves them: noisy expert grades on 80% of
    the candidates (the rest unlabelled, so FAMOL's LLM loss falls back to the click label)."""
    rng = np.random.default_rng(seed)
    table = dataset.table()
    grades = dataset.qrels.set_index([C.QID, C.DOCID])[C.GRADE]
    y = grades.reindex(pd.MultiIndex.from_frame(table[[C.QID, C.DOCID]])).fillna(0).to_numpy()
    noisy = rng.random(len(table)) < 0.3
    y = np.where(noisy, rng.integers(0, 4, len(table)), y).astype(np.float64)
    keep = rng.random(len(table)) < 0.8
    labels = pd.DataFrame({C.QID: table[C.QID], C.DOCID: table[C.DOCID], C.Y_LLM: y})[keep]
    return dataset.with_tables(llm_labels=labels.reset_index(drop=True))


@pytest.fixture(scope="module")
def famol_run(trained, tmp_path_factory):
    """The ``trained`` fixture's world with stand-in LLM labels, written out, and a famol run on it."""
    _, click_config = trained
    world = _with_stand_in_llm_labels(build_world(click_config.world))
    world_dir = tmp_path_factory.mktemp("world-llm")
    write_world(world, world_dir)
    config = replace(
        click_config,
        dataset=str(world_dir),
        label="famol",
        famol=FAMOLConfig.from_dict({"centre": 1.5, "slope": 3.0}),
    )
    run = train_gbdt(config, tmp_path_factory.mktemp("run-famol"), progress=False)
    return run, config


def test_famol_label_trains_a_plain_gbdt_run(trained, famol_run) -> None:
    click_run, _ = trained
    run, config = famol_run
    assert run.name == "gbdt_famol"
    assert type(run.ranker) is LambdaMARTRanker
    # Out-of-fold scores for every row, compared with BM25 in the report.
    scores = run.table["gbdt_famol"]
    assert scores.notna().all()
    assert run.report is not None
    assert set(run.report.summary["system"]) == {"bm25", BEST_FEATURE, "gbdt_famol"}
    # Same world, same features: the LLM loss alone makes the scores differ from a click run's.
    assert run.features == click_run.features
    assert run.table[C.QID].tolist() == click_run.table[C.QID].tolist()
    assert not np.allclose(scores.to_numpy(), click_run.table["gbdt_click"].to_numpy())
    # The run directory is a normal GBDT run: the bundle loads and scores as the model does.
    bundle = GBDTBundle.load(run.path)
    table = pd.read_parquet(run.path / "train_table.parquet")
    np.testing.assert_allclose(
        bundle.predict(table), run.ranker.predict(table[run.features]), rtol=1e-6
    )
    assert bundle.config["label"] == "famol"
    assert bundle.config["famol"] == {
        "centre": 1.5,
        "slope": 3.0,
        "mode": "objective",
        "sigma": 1.0,
    }
    assert GBDTTrainConfig.from_yaml(run.path / "config.yaml") == config


def test_famol_production_model_is_famol_on_every_labelled_row(famol_run) -> None:
    """The saved model is FAMOLRanker's LambdaMART: ``famol:`` with the run's ``gbdt:``, on the
    rows with a click or an LLM label, the click label standing in for a missing LLM label."""
    run, config = famol_run
    rows = run.table.loc[run.table[C.Y_CLICK].notna() | run.table[C.Y_LLM].notna()]
    assert rows[C.Y_LLM].isna().any() and len(rows) < len(run.table)
    famol = FAMOLRanker(replace(config.famol, gbdt=config.gbdt)).fit(
        rows[run.features],
        rows[C.Y_CLICK],
        rows[C.Y_LLM].fillna(rows[C.Y_CLICK]),
        qid=rows[C.QID].to_numpy(),
        freq=rows[C.FREQ],
    )
    X = run.table[run.features]
    np.testing.assert_allclose(run.ranker.predict(X), famol.predict(X), rtol=1e-6)
    assert config.famol_model == replace(config.famol, gbdt=config.gbdt)


def test_cli_label_famol_round_trips_its_config(
    famol_run, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run, config = famol_run
    # The click config of the same dataset, switched to FAMOL on the command line.
    cfg = tmp_path / "train.yaml"
    cfg.write_text(yaml.safe_dump(replace(config, label="click").to_dict()))
    out = tmp_path / "cli-famol"
    assert main(["train", "gbdt", "--config", str(cfg), "--label", "famol", "--out", str(out)]) == 0
    assert "gbdt_famol" in capsys.readouterr().out
    back = GBDTTrainConfig.from_yaml(out / "config.yaml")
    assert back == config and back.famol.centre == 1.5
    # The run's own config.yaml trains the same model again.
    again = tmp_path / "again"
    assert main(["train", "gbdt", "--config", str(out / "config.yaml"), "--out", str(again)]) == 0
    assert GBDTTrainConfig.from_yaml(again / "config.yaml").famol.centre == 1.5
    assert main(["importance", str(again), "--top", "3", "--repeats", "1"]) == 0
    assert "Top 3 features" in capsys.readouterr().out
    table = pd.read_parquet(run.path / "train_table.parquet")
    np.testing.assert_allclose(
        GBDTBundle.load(again).predict(table), GBDTBundle.load(out).predict(table), rtol=1e-6
    )
    # Dask and FAMOL do not mix: one clear line, before anything trains.
    argv = ["train", "gbdt", "--config", str(cfg), "--label", "famol", "--dask-workers", "2"]
    assert main([*argv, "--out", str(tmp_path / "dask")]) == 2
    assert "label famol" in capsys.readouterr().err
    assert not (tmp_path / "dask").exists()


def test_famol_config_options_and_errors() -> None:
    assert GBDTTrainConfig().famol == FAMOLConfig()
    assert GBDTTrainConfig.from_dict({"label": "famol"}).famol == FAMOLConfig()
    config = GBDTTrainConfig.from_dict({"label": "famol", "famol": {"mode": "label_mixing"}})
    assert config.famol.mode == "label_mixing"
    assert GBDTTrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match=r"label famol .* one process"):
        GBDTTrainConfig.from_dict({"label": "famol", "dask": {"n_workers": 2}})
    with pytest.raises(ConfigError, match=r"label famol .* one process"):
        GBDTTrainConfig.from_dict({"label": "famol", "dask": {"scheduler": "tcp://h:8786"}})
    with pytest.raises(ConfigError, match=r"famol: unknown keys \['centr'\]"):
        GBDTTrainConfig.from_dict({"famol": {"centr": 1.0}})
    with pytest.raises(ConfigError, match=r"famol\.gbdt: .*gbdt: block"):
        GBDTTrainConfig.from_dict({"famol": {"gbdt": {"n_estimators": 5}}})
    with pytest.raises(ConfigError, match=r"famol\.gbdt"):
        GBDTTrainConfig(famol=FAMOLConfig(gbdt=LambdaMARTConfig(n_estimators=5)))
    with pytest.raises(ConfigError, match=r"famol\.mode must be one of"):
        GBDTTrainConfig.from_dict({"famol": {"mode": "mixed"}})
    with pytest.raises(ConfigError, match=r"famol\.sigma must be > 0"):
        GBDTTrainConfig.from_dict({"famol": {"sigma": 0}})
    with pytest.raises(ConfigError, match=r"famol\.centre: expected a number"):
        GBDTTrainConfig.from_dict({"famol": {"centre": "high"}})


def test_famol_without_llm_labels_names_annotate(trained, tmp_path: Path) -> None:
    _, click_config = trained
    world = build_world(click_config.world)
    assert world.llm_labels is None
    config = replace(click_config, label="famol")
    with pytest.raises(DataFormatError, match=r"y_llm.*hybridrank annotate --dataset DIR"):
        train_gbdt(config, tmp_path / "run", dataset=world, progress=False)
    assert not (tmp_path / "run").exists()


def test_cli_like_experiment_trains_the_experiments_model(
    famol_run, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    _, config = famol_run
    cfg = tmp_path / "train.yaml"
    cfg.write_text(yaml.safe_dump(replace(config, label="click").to_dict()))
    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "config.yaml").write_text(yaml.safe_dump({"experiment": {
        "features": ["click", "dataset"],
        "famol": {"centre": 0.7, "gbdt": {"n_estimators": 12, "early_stopping_rounds": None}},
    }}))  # fmt: skip
    out = tmp_path / "famol"
    argv = ["train", "gbdt", "--config", str(cfg), "--label", "famol", "--like-experiment",
            str(exp), "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert "trained as the experiment" in capsys.readouterr().out
    saved = GBDTTrainConfig.from_yaml(out / "config.yaml")
    assert saved.label == "famol" and saved.famol.centre == 0.7
    assert saved.gbdt.n_estimators == 12 and saved.features == ("click", "dataset")
    assert GBDTBundle.load(out).ranker.best_iteration_ == 12
    # The run passes the check `bundle --experiment` makes of its members.
    assert training_differences(exp, out, "famol") == []
    assert training_differences(exp, out, "gold_gbdt") == [
        "label: run 'famol', experiment 'expert'"
    ]


def test_report_ranks_exact_ties_by_the_text_order_as_serving_does(famol_run) -> None:
    run, config = famol_run
    assert config.tie_break == "text" and run.report is not None
    assert "exact ties ranked by the text order" in run.report.title
    assert GBDTTrainConfig.from_dict({"tie_break": "none"}).tie_break == "none"
    with pytest.raises(ConfigError, match="tie_break"):
        GBDTTrainConfig.from_dict({"tie_break": "bm25"})


def test_pbm_examination_is_nan_where_the_log_shows_nothing() -> None:
    from hybridrank.pipelines import pbm_examination

    rng = np.random.default_rng(0)
    rows = [(s, 0.0, f"q{s % 7}", f"d{(s + p) % 11}", p, int(rng.random() < 0.5 / p), np.nan)
            for s in range(300) for p in (1, 2, 3)]  # fmt: skip
    log = pd.DataFrame(rows, columns=list(C.IMPRESSION_COLUMNS))
    exam = pbm_examination(log, 5)
    assert exam.index.tolist() == [1, 2, 3, 4, 5]
    assert exam.loc[1] == pytest.approx(1.0) and exam.loc[[2, 3]].notna().all()
    assert exam.loc[[4, 5]].isna().all()  # never shown: no estimate


def test_exponent_without_dot_is_a_number() -> None:
    """PyYAML reads `1e-4` as text (YAML 1.1); a float field takes it as the number."""
    values = yaml.safe_load("gbdt: {learning_rate: 1e-4}\nfamol: {centre: 2E+0}")
    assert values["gbdt"]["learning_rate"] == "1e-4"  # what PyYAML gives
    cfg = GBDTTrainConfig.from_dict(values)
    assert cfg.gbdt.learning_rate == pytest.approx(1e-4)
    assert cfg.famol.centre == pytest.approx(2.0)
    with pytest.raises(ConfigError, match=r"gbdt\.learning_rate: expected a number, got '1e-4x'"):
        GBDTTrainConfig.from_dict({"gbdt": {"learning_rate": "1e-4x"}})
    with pytest.raises(ConfigError, match=r"gbdt\.n_estimators: expected a whole number"):
        GBDTTrainConfig.from_dict({"gbdt": {"n_estimators": "1e3"}})
    with pytest.raises(ConfigError, match=r"gbdt\.learning_rate: '1e400' is out of range"):
        GBDTTrainConfig.from_dict({"gbdt": {"learning_rate": "1e400"}})


def test_config_files_read_exponents_as_numbers(tmp_path: Path) -> None:
    """Config files and KEY=VALUE flags go through a YAML 1.2 number rule: `1e-4`, `1.5e3`
    are floats everywhere (a study's ranges, a backend's params), a quoted one stays text."""
    from hybridrank._config import read_yaml_mapping, yaml_load

    assert yaml_load("a: 1e-4\nb: 1.5e3\nc: -2E+3\nd: 10\ne: x1e3\nf: '1e-4'") == {
        "a": 1e-4, "b": 1500.0, "c": -2000.0, "d": 10, "e": "x1e3", "f": "1e-4"
    }  # fmt: skip
    path = tmp_path / "study.yaml"
    path.write_text("study:\n  space:\n    learning_rate: [1e-4, 3e-1]\n")
    assert read_yaml_mapping(path, section="study")["space"]["learning_rate"] == [1e-4, 0.3]
