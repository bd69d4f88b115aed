"""The experiment's held-out click tuning of the head queries' click weight."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hybridrank import columns as C
from hybridrank.data import SimulationConfig
from hybridrank.ensemble import HeadGate, make_gate
from hybridrank.errors import ConfigError
from hybridrank.pipelines import (
    ClickTuningConfig,
    DataConfig,
    ExperimentConfig,
    WorldConfig,
    load_experiment_stacker,
    run_experiment,
)
from tests.conftest import make_collection, write_trec_dir


def test_click_tuning_config_is_validated_and_round_trips() -> None:
    config = ExperimentConfig.from_dict({"click_tuning": {"holdout": 0.3, "grid": 11}})
    assert config.click_tuning == ClickTuningConfig(holdout=0.3, grid=11)
    again = ExperimentConfig.from_dict(config.to_dict())
    assert again.click_tuning == config.click_tuning
    assert ExperimentConfig.from_dict({}).click_tuning is None
    assert ExperimentConfig.from_dict({"click_tuning": None}).click_tuning is None
    for bad, match in (({"holdout": 1.0}, "holdout"), ({"grid": 1}, "grid"),
                       ({"click_model": "cascade"}, "click_model"),
                       ({"min_frequency": 0}, "min_frequency"), ({"max_p": 0}, "max_p"),
                       ({"shares": 2}, "shares")):  # fmt: skip
        with pytest.raises(ConfigError, match=match):
            ExperimentConfig.from_dict({"click_tuning": bad})


@pytest.mark.slow
def test_experiment_chooses_the_head_weight_on_held_out_clicks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hybridrank.pipelines._experiment as experiment

    logs: list[pd.DataFrame] = []
    prepare = experiment._prepare_table

    def spy(dataset, *args, **kwargs):  # type: ignore[no-untyped-def]
        logs.append(dataset.impressions[[C.SESSION_ID, C.TS]].drop_duplicates(C.SESSION_ID))
        return prepare(dataset, *args, **kwargs)

    monkeypatch.setattr(experiment, "_prepare_table", spy)
    root = write_trec_dir(make_collection(n_queries=80, n_docs=500, seed=3), tmp_path / "c")
    world = WorldConfig(
        data=DataConfig(format="trec", path=str(root), stopwords="none"),
        simulation=SimulationConfig(n_sessions=1500, seed=0),
    )
    config = ExperimentConfig(
        world=world, seeds=(0,), sessions=(), tuning_queries=12, neural=None, gold=None,
        metrics=("ndcg@10",),
        click_tuning=ClickTuningConfig(holdout=0.3, grid=6, min_sessions=5, max_p=1.0),
    )  # fmt: skip
    result = run_experiment(config, tmp_path / "exp", progress=False)
    # The main table sees every session; the tuning run only the earliest 70%.
    full, tuning = logs
    assert set(tuning[C.SESSION_ID]) < set(full[C.SESSION_ID])
    assert len(tuning) == round(0.7 * len(full))
    held = full[~full[C.SESSION_ID].isin(tuning[C.SESSION_ID])]
    assert tuning[C.TS].max() <= held[C.TS].min()
    run = result.info["runs"]["seed0_sessions1500"]
    record = run["click_tuning"]
    assert record["held_out_sessions"] >= 5 and record["head_queries"] > 0
    assert record["curve"]["weight"] == pytest.approx(np.linspace(0, 1, 6).tolist())
    gate = make_gate(run["gate_kind"], run["gate"])
    # max_p 1.0: any gain on the held-out clicks sets the head weight (this world has one).
    assert isinstance(gate, HeadGate) and gate.weight == record["weight"]
    assert record["best_value"] > record["base_value"] and 0 < record["p_value"] <= 1
    # Serving reads the run's gate back as it was tuned.
    served = load_experiment_stacker(result.path).gate
    freqs = np.array([0.0, 3.0, 30.0, 500.0])
    np.testing.assert_array_equal(served(freqs), gate(freqs))
    # The head threshold is the smallest frequency of the world's top bucket.
    scores = pd.read_parquet(result.path / "scores.parquet")
    top = scores.loc[scores[C.BUCKET].astype(str) == "high", C.FREQ]
    assert record["min_frequency"] == pytest.approx(float(top.min()))
    report = result.path / "report"
    text = (report / "click_tuning.md").read_text()
    assert "held-out" in text and "head weight" in text
    curve = pd.read_csv(report / "click_tuning.csv")
    assert list(curve.columns) == ["seed", "weight", "ips_dcg@10"] and len(curve) == 6
    assert (report / "click_tuning.png").stat().st_size > 0
    assert "gated_stacker" in result.main.summary["system"].tolist()
