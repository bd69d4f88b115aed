"""A bundle serving the experiment's stacker: several LLM models, anchor experts, tuned weights."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from hybridrank import columns as C
from hybridrank.cli import main
from hybridrank.ensemble import (
    FrequencyGatedStacker,
    SigmoidGate,
    StackerConfig,
    mean_of_normalised,
    missing_last,
    normalised_mean,
    oof_from_scores,
    prepare,
)
from hybridrank.errors import ConfigError, DataFormatError, MissingInputError
from hybridrank.gbdt import GBDTBundle, write_manifest
from hybridrank.pipelines import anchor_scores, load_experiment_stacker
from hybridrank.serve import (
    Anchor,
    ClickFeatureStore,
    HybridRanker,
    RawFeature,
    build_hybrid_bundle,
)

from .conftest import request_table as _request_table


def _predict(run: Path) -> np.ndarray:
    return GBDTBundle.load(run).predict(pd.read_parquet(run / "train_table.parquet"))


def test_bundle_with_two_llm_models_and_an_anchor_fuses_as_the_stacker(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    gate = SigmoidGate(centre=1.0, slope=3.0)
    # The click run doubles as a second LLM model: the arithmetic is what is checked.
    path = build_hybrid_bundle(
        runs["click"], [runs["llm"], runs["click"]], tmp_path / "stack", gate=gate,
        anchors=[("gold", runs["llm"], 0.3)],
    )  # fmt: skip
    ranker = HybridRanker.load(path)
    assert len(ranker.llm or ()) == 2 and [a.name for a in ranker.anchors] == ["gold"]
    request = _request_table(runs["click"])
    ranked = ranker.rank_table(request)
    click, llm = _predict(runs["click"]), _predict(runs["llm"])
    qid = request[C.QID].to_numpy()
    store = ClickFeatureStore.load(runs["click"] / "click_features")
    freq = store.frequencies(qid)
    # What the experiment's stacker computes from the same scores: llm_ensemble is the
    # normalised mean of the LLM models, and the stacker normalises every expert again.
    ensemble = normalised_mean([llm, click], qid=qid)
    expected = prepare(click, ensemble, qid=qid, freq=freq, anchors=[llm]).fused(gate, [0.3])
    np.testing.assert_allclose(ranked["score"].to_numpy(), expected, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(ranked["llm_score"].to_numpy(), ensemble, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(ranked["gold_score"].to_numpy(), llm, rtol=1e-6)
    # Online agrees with batch, and names the anchor's scores.
    q = qid[0]
    online = ranker.rank(q, request.loc[request[C.QID] == q])
    batch = ranked.loc[ranked[C.QID] == q].sort_values("rank")
    np.testing.assert_allclose(online.scores, batch["score"].to_numpy(), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(online.components["gold"], batch["gold_score"].to_numpy(), rtol=1e-6)
    # The anchor's output column is refused as input, like the other outputs.
    with pytest.raises(DataFormatError, match="outputs") as info:
        ranker.rank_table(request.assign(gold_score=1.0))
    assert info.value.column == "gold_score"
    meta = json.loads((path / "hybrid.json").read_text())
    assert meta["format"] == 2
    assert [m["kind"] for m in meta["llm"]] == ["gbdt", "gbdt"]
    assert meta["anchors"] == [{"name": "gold", "dir": "anchors/gold", "weight": 0.3}]


def test_bundle_with_rank_normalisation_equals_the_experiments_stacker(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    """The experiment's own path: llm_ensemble by mean_of_normalised, then the stacker."""
    gate = SigmoidGate(centre=0.5, slope=1.5)
    path = build_hybrid_bundle(
        runs["click"], [runs["llm"], runs["click"]], tmp_path / "rank", gate=gate,
        anchors=[("gold", runs["llm"], 0.2), ("other", runs["click"], 0.1)],
        normalisation="rank",
    )  # fmt: skip
    request = _request_table(runs["click"])
    ranked = HybridRanker.load(path).rank_table(request)
    table = pd.read_parquet(runs["click"] / "train_table.parquet")
    click, llm = _predict(runs["click"]), _predict(runs["llm"])
    ensemble = mean_of_normalised(
        "llm_ensemble", [oof_from_scores(table, "a", llm), oof_from_scores(table, "b", click)]
    )
    stacker = FrequencyGatedStacker(StackerConfig(normalisation="rank"))
    stacker.gate_, stacker.anchor_weights_ = gate, (0.2, 0.1)
    store = ClickFeatureStore.load(runs["click"] / "click_features")
    qid = table[C.QID].to_numpy()
    expected = stacker.predict(
        click, ensemble.scores, qid=qid, freq=store.frequencies(qid), anchors=[llm, click]
    )
    np.testing.assert_allclose(ranked["score"].to_numpy(), expected, rtol=1e-6, atol=1e-9)


def test_a_format_1_bundle_still_loads(runs: dict[str, Path], tmp_path: Path) -> None:
    gate = SigmoidGate(centre=1.0, slope=3.0)
    path = build_hybrid_bundle(runs["click"], runs["llm"], tmp_path / "old", gate=gate)
    meta = json.loads((path / "hybrid.json").read_text())
    old = {"llm": "gbdt", "gate": meta["gate"], "normalisation": "zscore",
           "sources": {"click": "c", "llm": "l"}}  # fmt: skip
    (path / "hybrid.json").write_text(json.dumps(old))
    (path / "manifest.json").unlink()
    write_manifest(path)
    request = _request_table(runs["click"])
    expected = HybridRanker.load(build_hybrid_bundle(
        runs["click"], runs["llm"], tmp_path / "new", gate=gate)).rank_table(request)  # fmt: skip
    got = HybridRanker.load(path).rank_table(request)
    np.testing.assert_allclose(got["score"].to_numpy(), expected["score"].to_numpy())


def test_bad_anchors_are_refused_before_anything_is_written(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    gate = SigmoidGate()
    out = tmp_path / "b"
    bad = [
        ([("a", runs["llm"], 0.7), ("b", runs["llm"], 0.5)], ConfigError, "sum to 1.2"),
        ([("a", runs["llm"], -0.1)], ConfigError, ">= 0"),
        ([("a", runs["llm"], 0.1), ("a", runs["llm"], 0.1)], ConfigError, "repeat"),
        ([("llm", runs["llm"], 0.1)], ConfigError, "taken"),
        ([("x-y", runs["llm"], 0.1)], ConfigError, "letter"),
        ([("docid", runs["llm"], 0.1)], ConfigError, "taken"),
        ([("a", runs["llm"], True)], ConfigError, "a number"),
        ([("a", tmp_path, 0.1)], MissingInputError, "not a `hybridrank train gbdt` run"),
    ]
    for anchors, error, message in bad:
        with pytest.raises(error, match=message):
            build_hybrid_bundle(runs["click"], runs["llm"], out, gate=gate, anchors=anchors)
        assert not out.exists() and not out.with_name("b.partial").exists()
    with pytest.raises(ConfigError, match="at least one LLM model"):
        build_hybrid_bundle(runs["click"], [], out, gate=gate)


def _experiment_dir(root: Path, runs_info: dict) -> Path:
    root.mkdir()
    (root / "info.json").write_text(json.dumps({"runs": runs_info}))
    (root / "config.yaml").write_text(
        yaml.safe_dump({"experiment": {"stacker": {"normalisation": "rank"}}})
    )
    return root


def test_bundle_cli_serves_an_experiments_stacker(
    runs: dict[str, Path], tmp_path: Path, capsys
) -> None:
    run = {"gate": {"centre": 1.2, "slope": 2.5}, "gate_kind": "sigmoid",
           "anchors": {"gold_gbdt": 0.4}, "llm_model": "llm_gbdt"}  # fmt: skip
    ensemble = {**run, "llm_model": "llm_ensemble"}
    exp = _experiment_dir(tmp_path / "exp", {"seed0_sessions5000": run,
                                             "seed1_sessions5000": {"seconds": {}},
                                             "seed2_sessions5000": ensemble})  # fmt: skip
    base = ["bundle", "--click", str(runs["click"]), "--llm", str(runs["llm"]),
            "--experiment", str(exp), "--allow-other-training"]  # fmt: skip
    # Two runs: which one must be said; a run without a stacker is refused.
    assert main([*base, "--out", str(tmp_path / "a")]) == 2
    assert "seed0_sessions5000" in capsys.readouterr().err
    no_stacker = [*base, "--experiment-run", "seed1_sessions5000"]
    assert main([*no_stacker, "--out", str(tmp_path / "a")]) == 2
    assert "no tuned stacker" in capsys.readouterr().err
    # The stacker mixes gold_gbdt: leaving it out would serve another stacker.
    with_run = [*base, "--experiment-run", "seed0_sessions5000"]
    assert main([*with_run, "--out", str(tmp_path / "a")]) == 2
    assert "gold_gbdt (0.400)" in capsys.readouterr().err
    assert main([*with_run, "--anchor", "gold_gbdt", str(runs["llm"]),
                 "--out", str(tmp_path / "a")]) == 0  # fmt: skip
    out, err = capsys.readouterr()
    assert "LLM expert llm_gbdt" in out
    # The fixture's runs are not trained as the experiment trained its models: allowed, said.
    assert "warning: serving the experiment's stacker on models trained differently" in err
    assert f"--anchor gold_gbdt {runs['llm']}: gbdt.n_estimators: run 30" in err
    assert f"--llm {runs['llm']}: label: run 'expert', experiment 'llm'" in err
    meta = json.loads((tmp_path / "a" / "hybrid.json").read_text())
    assert meta["gate"]["params"] == {"centre": 1.2, "slope": 2.5}
    assert meta["anchors"][0]["weight"] == 0.4 and meta["normalisation"] == "rank"
    assert HybridRanker.load(tmp_path / "a").rank_table(_request_table(runs["click"])).shape[0] > 0
    # An explicit weight wins; a gate given twice is refused.
    assert main([*with_run, "--anchor", "gold_gbdt", str(runs["llm"]), "0.1",
                 "--out", str(tmp_path / "b")]) == 0  # fmt: skip
    assert json.loads((tmp_path / "b" / "hybrid.json").read_text())["anchors"][0]["weight"] == 0.1
    assert main([*with_run, "--gate", "sigmoid:centre=1", "--out", str(tmp_path / "c")]) == 2
    assert "give the gate once" in capsys.readouterr().err
    assert main(["bundle", "--click", str(runs["click"]), "--llm", str(runs["llm"]),
                 "--gate", "sigmoid:centre=1,slope=2", "--anchor", "g", str(runs["llm"]),
                 "--out", str(tmp_path / "d")]) == 2  # fmt: skip
    assert "give its weight" in capsys.readouterr().err
    # The LLM side must be the experiment's LLM expert: llm_ensemble is a GBDT and a neural run.
    argv = [*base, "--experiment-run", "seed2_sessions5000", "--anchor", "gold_gbdt",
            str(runs["llm"])]  # fmt: skip
    assert main([*argv, "--out", str(tmp_path / "e")]) == 2
    assert "mixed llm_ensemble" in capsys.readouterr().err
    assert main([*argv, "--llm", str(runs["click"]), "--out", str(tmp_path / "e")]) == 2
    assert "got 2: gbdt, gbdt" in capsys.readouterr().err
    # The normalisation it was tuned with is served; another is refused.
    assert main([*with_run, "--anchor", "gold_gbdt", str(runs["llm"]), "--normalisation",
                 "zscore", "--out", str(tmp_path / "f")]) == 2  # fmt: skip
    assert "tuned with rank" in capsys.readouterr().err
    assert main([*with_run, "--anchor", "gold_gbdt", str(runs["llm"]), "--tie-break", "none",
                 "--out", str(tmp_path / "f")]) == 2  # fmt: skip
    assert "ranked ties by text" in capsys.readouterr().err
    assert not any((tmp_path / d).exists() for d in "cdef")


def test_bundle_cli_refuses_members_trained_otherwise(
    runs: dict[str, Path], tmp_path: Path, capsys
) -> None:
    run = {"gate": {"centre": 1.2, "slope": 2.5}, "gate_kind": "sigmoid",
           "anchors": {"gold_gbdt": 0.4}, "llm_model": "llm_gbdt"}  # fmt: skip
    exp = _experiment_dir(tmp_path / "exp", {"seed0_sessions5000": run})
    argv = ["bundle", "--click", str(runs["click"]), "--llm", str(runs["llm"]),
            "--anchor", "gold_gbdt", str(runs["llm"]), "--experiment", str(exp),
            "--out", str(tmp_path / "a")]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "tuned on models trained otherwise" in err
    # Each member and field is named, with both values, and how to mend it.
    assert f"--click {runs['click']}: gbdt.n_estimators: run 30, experiment 300" in err
    assert f"--llm {runs['llm']}: label: run 'expert', experiment 'llm'" in err
    assert f"--anchor gold_gbdt {runs['llm']}: gbdt.min_child_samples: run 5" in err
    assert f"--like-experiment {exp}" in err and "--allow-other-training" in err
    assert not (tmp_path / "a").exists()
    # A member with nothing to compare (a neural model/ folder copied without its run's
    # config): refused, or with --allow-other-training named in the warning.
    from hybridrank.cli._serve import _check_training

    bare = tmp_path / "copied" / "model"
    bare.mkdir(parents=True)
    with pytest.raises(MissingInputError, match=r"no config\.yaml"):
        _check_training(exp, runs["click"], [bare], [], allow=False)
    _check_training(exp, runs["click"], [bare], [], allow=True)
    assert f"--llm {bare}: not checked: " in capsys.readouterr().err


def _write_config(run: Path, values: dict) -> Path:
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump(values))
    return run


def test_training_differences_compare_each_role_with_the_experiment(tmp_path: Path) -> None:
    from dataclasses import replace

    from hybridrank.neural import NeuralConfig
    from hybridrank.pipelines import (
        GBDTTrainConfig,
        NeuralTrainConfig,
        train_config_like_experiment,
        training_differences,
    )
    from hybridrank.pipelines._experiment import DEFAULT_NEURAL

    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "config.yaml").write_text(yaml.safe_dump({"experiment": {
        "features": ["click", "text"], "gbdt": {"n_estimators": 50, "num_leaves": 7},
        "famol": {"centre": 1.5}}}))  # fmt: skip
    click = train_config_like_experiment(exp, "click", GBDTTrainConfig())
    # Where and how fast it runs is not how it was trained.
    fast = replace(click, gbdt=replace(click.gbdt, device="cuda", n_jobs=4))
    assert training_differences(exp, _write_config(tmp_path / "c", fast.to_dict()), "click") == []
    other = replace(click, gbdt=replace(click.gbdt, num_leaves=31), features=("click",))
    assert training_differences(exp, _write_config(tmp_path / "o", other.to_dict()), "click") == [
        "features: run ['click'], experiment ['click', 'text']",
        "gbdt.num_leaves: run 31, experiment 7",
    ]
    famol = train_config_like_experiment(exp, "famol", GBDTTrainConfig())
    famol_run = _write_config(tmp_path / "f", famol.to_dict())
    assert training_differences(exp, famol_run, "famol") == []
    # A run in the wrong role is named by its label.
    assert training_differences(exp, famol_run, "gold_gbdt") == [
        "label: run 'famol', experiment 'expert'"
    ]
    assert training_differences(exp, famol_run, "click") == [
        "label: run 'famol', experiment 'click'"
    ]
    assert "no `train gbdt` counterpart" in training_differences(exp, famol_run, "rule")[0]
    # A ctr run trains on raw click-through rates: it is click-GBDT only where the
    # experiment's own click labels are those (labels.source: ctr).
    ctr = train_config_like_experiment(exp, "ctr", GBDTTrainConfig())
    ctr_run = _write_config(tmp_path / "ctr", ctr.to_dict())
    for role in ("click", "click_gbdt"):
        assert training_differences(exp, ctr_run, role) == ["label: run 'ctr', experiment 'click'"]
    raw = yaml.safe_load((exp / "config.yaml").read_text())
    raw["experiment"]["labels"] = {"source": "ctr"}
    (exp / "config.yaml").write_text(yaml.safe_dump(raw))
    assert training_differences(exp, ctr_run, "click") == []
    # A neural run is compared with the experiment's neural block; its model/ works too.
    neural = NeuralTrainConfig(neural=NeuralConfig.from_dict(DEFAULT_NEURAL))
    nrun = _write_config(tmp_path / "n", neural.to_dict())
    (nrun / "model").mkdir()
    assert training_differences(exp, nrun / "model", "llm") == []
    longer = replace(neural, neural=replace(neural.neural, epochs=5, device="cpu"))
    assert training_differences(exp, _write_config(tmp_path / "l", longer.to_dict()), "llm") == [
        f"neural.epochs: run 5, experiment {DEFAULT_NEURAL['epochs']}"
    ]
    assert "only as an LLM model" in training_differences(exp, nrun, "famol")[0]
    # The README's production transformer is the experiment's default one.
    spec = Path(__file__).resolve().parents[2] / "studies" / "neural-experiment.yaml"
    shipped = NeuralTrainConfig.from_yaml(spec)
    assert training_differences(exp, _write_config(tmp_path / "s", shipped.to_dict()), "llm") == []
    with pytest.raises(MissingInputError, match=r"no config\.yaml"):
        training_differences(exp, tmp_path / "nowhere", "click")


def test_load_experiment_stacker_names_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(MissingInputError, match=r"info\.json"):
        load_experiment_stacker(tmp_path)
    exp = _experiment_dir(
        tmp_path / "e", {"r": {"gate": {"centre": 1.0, "slope": 2.0}, "anchors": {"f": -1}}}
    )
    with pytest.raises(DataFormatError, match="anchors") as info:
        load_experiment_stacker(exp)
    assert info.value.column == "runs.r.anchors"
    with pytest.raises(ConfigError, match="no run 'x'"):
        load_experiment_stacker(exp, "x")
    partial = _experiment_dir(tmp_path / "p", {"r": {"gate": {"centre": 1.0}}})
    with pytest.raises(DataFormatError, match=r"\['slope'\] are missing") as info:
        load_experiment_stacker(partial)
    assert info.value.column == "runs.r.gate"
    odd = _experiment_dir(tmp_path / "o", {"r": {"gate": {"centre": 1.0, "slope": 2.0},
                                                 "llm_model": "gpt"}})  # fmt: skip
    with pytest.raises(DataFormatError, match="llm_model"):
        load_experiment_stacker(odd)
    # A run written before several anchors: one anchor and its weight.
    record = {"gate": {"centre": 1.0, "slope": 2.0}, "anchor": "famol", "anchor_weight": 0.3}
    old = _experiment_dir(tmp_path / "old", {"r": record})
    assert load_experiment_stacker(old).anchors == {"famol": 0.3}
    good = _experiment_dir(tmp_path / "g", {"r": {"gate": {"centre": 1.0, "slope": 2.0}}})
    stacker = load_experiment_stacker(good)
    assert stacker.run == "r" and stacker.anchors == {} and stacker.normalisation == "rank"
    assert stacker.tie_break == "text"
    assert stacker.gate.params() == {"centre": 1.0, "slope": 2.0}


def test_a_second_llm_model_may_be_neural_with_its_own_stored_embeddings(
    runs: dict[str, Path], tmp_path: Path, tiny_bert: str
) -> None:
    from hybridrank.neural import BiEncoderRanker

    BiEncoderRanker.pretrained(model_path=tiny_bert, device="cpu").save(tmp_path / "nn" / "model")
    request = _request_table(runs["click"])
    collection = pd.DataFrame({C.DOCID: request[C.DOCID].unique()})
    collection[C.TEXT] = "document " + collection[C.DOCID].astype(str)
    gate = SigmoidGate(1.0, 2.0)
    path = build_hybrid_bundle(
        runs["click"], [runs["llm"], tmp_path / "nn"], tmp_path / "b", gate=gate,
        docs=collection, device="cpu",
    )  # fmt: skip
    assert (path / "doc_embeddings_llm_2.npy").exists()
    assert not (path / "doc_embeddings.npy").exists()
    ranker = HybridRanker.load(path, device="cpu")
    queries = pd.DataFrame({C.QID: request[C.QID].unique(), C.TEXT: "a query"})
    batch = ranker.rank_table(request, queries=queries)
    qid = request[C.QID].to_numpy()
    own = BiEncoderRanker.load(path / "llm_2", device="cpu")
    texts = request[[C.DOCID]].merge(collection, on=C.DOCID, how="left")[C.TEXT].tolist()
    neural = np.einsum(
        "ij,ij->i",
        np.asarray(own.encode_queries(["a query"]))[np.zeros(len(texts), dtype=int)],
        np.asarray(own.encode_documents(texts)),
    )
    expected = normalised_mean([_predict(runs["llm"]), neural], qid=qid)
    np.testing.assert_allclose(batch["llm_score"].to_numpy(), expected, rtol=1e-4, atol=1e-5)
    # Online, the stored embeddings serve the documents (no texts sent).
    q = qid[0]
    online = ranker.rank(q, request.loc[request[C.QID] == q], {"text": "a query"})
    one = batch.loc[batch[C.QID] == q].sort_values("rank")
    np.testing.assert_allclose(online.scores, one["score"].to_numpy(), rtol=1e-4, atol=1e-5)


def test_a_damaged_or_foreign_hybrid_json_is_refused_by_field(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    path = build_hybrid_bundle(runs["click"], runs["llm"], tmp_path / "h", gate=SigmoidGate())
    meta = json.loads((path / "hybrid.json").read_text())
    cases = [
        ({**meta, "format": 4}, "format", "upgrade hybridrank"),
        ({**meta, "normalisation": "minmax"}, "normalisation", "must be one of"),
        ({**meta, "llm": [{"kind": "gbdt", "dir": "../elsewhere"}]}, "llm[0].dir", "inside"),
        ({**meta, "gate": {"kind": "sigmoid", "params": {"centre": 1.0}}}, "gate", "missing"),
    ]
    for edited, column, message in cases:
        (path / "hybrid.json").write_text(json.dumps(edited))
        with pytest.raises(DataFormatError, match=message) as info:
            HybridRanker.load(path, verify=False)
        assert info.value.column == column
    (path / "hybrid.json").write_text("{not json")
    with pytest.raises(DataFormatError, match="not JSON") as info:
        HybridRanker.load(path, verify=False)
    assert "hybrid.json" in str(info.value)


def test_models_from_another_click_log_are_refused(runs: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    foreign = tmp_path / "foreign"
    shutil.copytree(runs["llm"], foreign)
    store_file = next(p for p in sorted((foreign / "click_features").iterdir()) if p.is_file())
    store_file.write_bytes(store_file.read_bytes() + b"\0")  # another log's aggregates
    (foreign / "manifest.json").unlink()
    write_manifest(foreign)
    with pytest.raises(ConfigError, match="another click log"):
        build_hybrid_bundle(runs["click"], runs["llm"], tmp_path / "b", gate=SigmoidGate(),
                            anchors=[("f", foreign, 0.2)])  # fmt: skip
    with pytest.raises(ConfigError, match="another click log"):
        build_hybrid_bundle(runs["click"], foreign, tmp_path / "b", gate=SigmoidGate())
    assert not (tmp_path / "b").exists()
    # A model that reads no click feature does not care whose store it is served with.
    from dataclasses import replace

    from hybridrank.data import SimulationConfig
    from hybridrank.pipelines import GBDTTrainConfig, train_gbdt

    base = GBDTTrainConfig.from_yaml(runs["llm"] / "config.yaml")
    world = replace(base.world, simulation=SimulationConfig(n_sessions=500, seed=9))
    textual = train_gbdt(replace(base, world=world, features=("text",)), tmp_path / "text").path
    def stores(run: Path) -> dict[str, str]:
        entries = json.loads((run / "manifest.json").read_text())
        return {k: v for k, v in entries.items() if k.startswith("click_features/")}

    assert stores(textual) and stores(textual) != stores(runs["click"])  # another log
    built = build_hybrid_bundle(runs["click"], textual, tmp_path / "b", gate=SigmoidGate())
    assert HybridRanker.load(built).fused


def test_train_config_like_experiment_copies_each_models_settings(tmp_path: Path) -> None:
    from hybridrank.ensemble import FAMOLConfig
    from hybridrank.pipelines import GBDTTrainConfig, train_config_like_experiment

    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "config.yaml").write_text(yaml.safe_dump({"experiment": {
        "features": ["click", "semantic"],
        "gbdt": {"n_estimators": 123, "learning_rate": 0.1},
        "famol": {"centre": 1.1, "slope": 3.3, "gbdt": {"n_estimators": 77}},
        "gold": {"n_estimators": 55, "num_leaves": 5},
        "click_split": {"mode": "session"},
        "tie_break": "none",
    }}))  # fmt: skip
    base = GBDTTrainConfig(metrics=("ndcg@10",), judge_fill="none")
    click = train_config_like_experiment(exp, "click", base)
    assert click.features == ("click", "semantic") and click.gbdt.n_estimators == 123
    assert click.click_split.mode == "session" and click.metrics == ("ndcg@10",)
    assert click.judge_fill == "none"  # what the experiment has no say in stays the user's
    assert click.tie_break == "none"  # the experiment's tie order
    famol = train_config_like_experiment(exp, "famol", base)
    assert famol.gbdt.n_estimators == 77 and famol.famol_model.gbdt.n_estimators == 77
    assert (famol.famol.centre, famol.famol.slope) == (1.1, 3.3)
    assert famol.famol.gbdt == FAMOLConfig().gbdt  # its model is the run's gbdt: block
    gold = train_config_like_experiment(exp, "expert", base)
    assert (gold.gbdt.n_estimators, gold.gbdt.num_leaves) == (55, 5)
    # It round-trips through a run's config.yaml like any train config.
    assert GBDTTrainConfig.from_dict(famol.to_dict()) == famol
    with pytest.raises(ConfigError, match="no counterpart"):
        train_config_like_experiment(exp, "clicks", base)
    (exp / "config.yaml").write_text(yaml.safe_dump({"experiment": {"gold": None}}))
    with pytest.raises(ConfigError, match="no gold expert"):
        train_config_like_experiment(exp, "expert", base)
    (exp / "config.yaml").write_text(yaml.safe_dump({"experiment": {"gbdt": {"num_leafs": 3}}}))
    with pytest.raises(ConfigError, match=r"config\.yaml"):
        train_config_like_experiment(exp, "click", base)
    with pytest.raises(MissingInputError):
        train_config_like_experiment(tmp_path / "nowhere", "click", base)


def test_exact_ties_are_ranked_by_the_text_order_as_the_experiment_ranks_them(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    from hybridrank.ensemble import text_order

    ranker = HybridRanker.load(runs["click"])
    assert ranker.tie_break == "text"  # train gbdt's default, saved in the run's config
    request = _request_table(runs["click"])
    # Candidates arrive in BM25 order; shuffle each query's rows so request order differs.
    shuffle = np.random.default_rng(0).random(len(request))
    request = request.assign(_r=shuffle).sort_values([C.QID, "_r"], kind="stable")
    request = request.drop(columns="_r").reset_index(drop=True)
    ranked = ranker.rank_table(request)
    text = text_order([request[C.BM25]], qid=request[C.QID].to_numpy())
    ranked = ranked.assign(_text=text)
    tied = ranked[ranked.duplicated([C.QID, "score"], keep=False)]
    assert len(tied) > 0  # a click GBDT gives many pairs exactly the same score
    for _, group in tied.groupby([C.QID, "score"]):
        by_rank = group.sort_values("rank")["_text"].to_numpy()
        assert (np.diff(by_rank) <= 1e-12).all()  # better text order first
    # Online: the same order as batch.
    q = tied[C.QID].iloc[0]
    online = ranker.rank(q, request.loc[request[C.QID] == q])
    batch = ranked.loc[ranked[C.QID] == q].sort_values("rank")
    assert list(online.docids) == batch[C.DOCID].astype(str).tolist()
    # A judge score the model does not use still orders ties, online as in batch.
    judged = request.assign(**{C.SEMANTIC: np.random.default_rng(1).random(len(request))})
    batch = ranker.rank_table(judged)
    one = batch.loc[batch[C.QID] == q].sort_values("rank")
    online = ranker.rank(q, judged.loc[judged[C.QID] == q])
    assert list(online.docids) == one[C.DOCID].astype(str).tolist()
    assert not np.array_equal(batch["rank"].to_numpy(), ranked["rank"].to_numpy())
    # none: ties keep the request order, scores unchanged.
    plain = HybridRanker(ranker.click, store=ranker.store, tie_break="none").rank_table(request)
    np.testing.assert_array_equal(plain["score"].to_numpy(), ranked["score"].to_numpy())
    assert not np.array_equal(plain["rank"].to_numpy(), ranked["rank"].to_numpy())
    # A fused bundle records its tie order; one from before tie_break keeps request order.
    path = build_hybrid_bundle(runs["click"], runs["llm"], tmp_path / "h", gate=SigmoidGate(),
                               tie_break="none")  # fmt: skip
    assert HybridRanker.load(path).tie_break == "none"
    meta = json.loads((path / "hybrid.json").read_text())
    (path / "hybrid.json").write_text(json.dumps({**meta, "tie_break": "alphabetical"}))
    with pytest.raises(DataFormatError, match="tie_break") as info:
        HybridRanker.load(path, verify=False)
    assert info.value.column == "tie_break"
    with pytest.raises(ConfigError, match="tie_break"):
        HybridRanker(ranker.click, tie_break="random")


def test_a_raw_feature_anchor_is_served_as_the_experiment_scores_it(
    runs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = SigmoidGate(centre=1.0, slope=3.0)
    dwell = RawFeature("qd_mean_dwell")
    path = build_hybrid_bundle(
        runs["click"], runs["llm"], tmp_path / "raw", gate=gate,
        anchors=[("gold", runs["llm"], 0.2), ("raw_dwell", dwell, 0.3)],
    )  # fmt: skip
    meta = json.loads((path / "hybrid.json").read_text())
    assert meta["anchors"][1] == {"name": "raw_dwell", "feature": "qd_mean_dwell", "sign": 1.0,
                                  "weight": 0.3}  # fmt: skip
    assert meta["format"] == 3  # a raw-feature anchor: earlier versions refuse it by number
    assert not (path / "anchors" / "raw_dwell").exists()  # nothing to copy
    ranker = HybridRanker.load(path)
    assert [a.feature for a in ranker.anchors] == [None, dwell]
    request = _request_table(runs["click"])
    ranked = ranker.rank_table(request)
    qid = request[C.QID].to_numpy()
    store = ClickFeatureStore.load(runs["click"] / "click_features")
    stored = store.join(request)["qd_mean_dwell"].to_numpy()
    assert np.isnan(stored).any() and np.isfinite(stored).any()
    # The experiment's anchor scores (what its stacker is fitted on): a never-clicked pair
    # below every clicked one of its query.
    raw = anchor_scores(request.assign(qd_mean_dwell=stored), "raw_dwell")
    np.testing.assert_array_equal(raw, missing_last(stored, qid=qid))
    click, llm = _predict(runs["click"]), _predict(runs["llm"])
    expected = prepare(click, llm, qid=qid, freq=store.frequencies(qid),
                       anchors=[llm, raw]).fused(gate, [0.2, 0.3])  # fmt: skip
    np.testing.assert_allclose(ranked["score"].to_numpy(), expected, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(ranked["raw_dwell_score"].to_numpy(), raw)
    # Online, one query at a time: the same scores, from one store lookup per request that
    # the click model and the raw anchor share.
    lookups: list[str] = []
    real_lookup = ClickFeatureStore.lookup

    def counted(self: ClickFeatureStore, q: str, docids: np.ndarray) -> dict[str, np.ndarray]:
        lookups.append(q)
        return real_lookup(self, q, docids)

    monkeypatch.setattr(ClickFeatureStore, "lookup", counted)
    for q in pd.unique(qid)[:5]:
        online = ranker.rank(q, request.loc[request[C.QID] == q])
        assert lookups == [q]
        lookups.clear()
        batch = ranked.loc[ranked[C.QID] == q].sort_values("rank")
        np.testing.assert_allclose(online.scores, batch["score"].to_numpy(), rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(online.components["raw_dwell"], batch["raw_dwell_score"])
    # A request may bring the feature itself (a fresher log); a value that is no number is named.
    q = qid[0]
    rows = request.loc[request[C.QID] == q].assign(qd_mean_dwell=5.0)
    assert set(ranker.rank(q, rows).components["raw_dwell"]) == {5.0}
    with pytest.raises(DataFormatError, match="not a number") as info:
        ranker.rank(q, rows.assign(qd_mean_dwell="long"))
    assert info.value.column == "qd_mean_dwell"
    # In batch, a click-feature column of the input is refused unless asked for, as for the
    # models' click features; asked for, it wins over the store.
    with pytest.raises(DataFormatError, match="click features the bundle's store provides"):
        ranker.rank_table(request.assign(qd_mean_dwell=5.0))
    fresher = ranker.rank_table(request.assign(qd_mean_dwell=5.0), click_features_from="input")
    assert set(fresher["raw_dwell_score"]) == {5.0}


def test_raw_feature_anchors_are_checked(runs: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="sign must be 1 or -1"):
        RawFeature("qd_mean_dwell", 2.0)
    with pytest.raises(ConfigError, match="one of them"):
        Anchor("x", None, 0.1)
    # A click feature needs the click run's store to be served from.
    bare = tmp_path / "bare"
    shutil.copytree(runs["click"], bare, ignore=shutil.ignore_patterns("click_features"))
    (bare / "manifest.json").unlink()
    write_manifest(bare)
    with pytest.raises(MissingInputError, match="no click-feature store"):
        build_hybrid_bundle(bare, runs["llm"], tmp_path / "x", gate=SigmoidGate(),
                            anchors=[("raw_dwell", RawFeature("qd_mean_dwell"), 0.2)])  # fmt: skip
    assert not (tmp_path / "x").exists()
    # A bundle file with a bad raw-feature entry is named on load.
    path = build_hybrid_bundle(runs["click"], runs["llm"], tmp_path / "ok", gate=SigmoidGate(),
                               anchors=[("raw_dwell", RawFeature("qd_mean_dwell"), 0.2)])  # fmt: skip
    meta = json.loads((path / "hybrid.json").read_text())
    meta["anchors"][0]["sign"] = 0
    (path / "hybrid.json").write_text(json.dumps(meta))
    with pytest.raises(DataFormatError, match="sign must be 1 or -1") as info:
        HybridRanker.load(path, verify=False)
    assert info.value.column == "anchors[0]"


def test_bundle_cli_serves_an_experiments_raw_feature_anchor(
    runs: dict[str, Path], tmp_path: Path, capsys
) -> None:
    run = {"gate": {"centre": 1.2, "slope": 2.5}, "gate_kind": "sigmoid",
           "anchors": {"gold_gbdt": 0.3, "raw_dwell": 0.2}, "llm_model": "llm_gbdt"}  # fmt: skip
    exp = _experiment_dir(tmp_path / "exp", {"seed0_sessions5000": run})
    argv = ["bundle", "--click", str(runs["click"]), "--llm", str(runs["llm"]),
            "--experiment", str(exp), "--allow-other-training"]  # fmt: skip
    # The run anchor must be given; the raw one is built from the experiment's record.
    assert main([*argv, "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "gold_gbdt (0.300)" in err and "raw_dwell" not in err
    assert main([*argv, "--anchor", "raw_dwell", str(runs["llm"]), "--out", str(tmp_path / "a")]) == 2
    assert "is not a number" in capsys.readouterr().err
    assert main([*argv, "--anchor", "raw_dwell", str(runs["llm"]), "0.1",
                 "--out", str(tmp_path / "a")]) == 2  # fmt: skip
    assert "a raw feature, not a run" in capsys.readouterr().err
    # Without an experiment, a raw anchor is given by name and weight.
    assert main(["bundle", "--click", str(runs["click"]), "--llm", str(runs["llm"]),
                 "--gate", "sigmoid:centre=1,slope=2", "--anchor", "raw_dwell", "0.25",
                 "--out", str(tmp_path / "g")]) == 0  # fmt: skip
    served = json.loads((tmp_path / "g" / "hybrid.json").read_text())["anchors"]
    assert served == [{"name": "raw_dwell", "feature": "qd_mean_dwell", "sign": 1.0, "weight": 0.25}]
    assert main(["bundle", "--click", str(runs["click"]), "--llm", str(runs["llm"]),
                 "--gate", "sigmoid:centre=1,slope=2", "--anchor", "raw_dwell",
                 "--out", str(tmp_path / "h")]) == 2  # fmt: skip
    assert "give its weight" in capsys.readouterr().err
    assert main([*argv, "--anchor", "gold_gbdt", str(runs["llm"]), "--out", str(tmp_path / "a")]) == 0
    meta = json.loads((tmp_path / "a" / "hybrid.json").read_text())
    assert {a["name"]: a.get("feature") for a in meta["anchors"]} == {
        "gold_gbdt": None, "raw_dwell": "qd_mean_dwell"
    }
    ranked = HybridRanker.load(tmp_path / "a").rank_table(_request_table(runs["click"]))
    assert {"gold_gbdt_score", "raw_dwell_score"} <= set(ranked.columns)
