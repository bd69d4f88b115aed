from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest

from hybridrank import columns as C
from hybridrank.errors import ConfigError, StorageError
from hybridrank.tuning import StudySpec, make_storage, run_study, study_report


def _inputs(n_q: int = 80, per: int = 15, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    qid = np.repeat(np.arange(n_q).astype(str), per)
    freq = np.repeat(np.where(np.arange(n_q) % 2 == 0, 100, 0), per)
    y = rng.integers(0, 4, qid.size)
    noise = rng.normal(0, 3, qid.size)
    return pd.DataFrame(
        {
            C.QID: qid,
            C.FREQ: freq,
            C.Y_EXPERT: y,
            "click_gbdt": np.where(freq > 0, y + rng.normal(0, 0.3, qid.size), noise),
            "llm_model": np.where(freq > 0, noise, y + rng.normal(0, 0.3, qid.size)),
            "tuning": np.repeat(np.arange(n_q) < 40, per),
        }
    )


@pytest.fixture
def stacker_spec(tmp_path: Path) -> StudySpec:
    out = tmp_path / "study"
    out.mkdir()
    _inputs().to_parquet(out / "study_inputs.parquet")  # study inputs are built once per run dir
    return StudySpec(kind="stacker", n_trials=12, out=str(out))


def _stored(spec: StudySpec) -> Callable[[], tuple[pd.DataFrame, list[str]]]:
    """The study's inputs as the run directory holds them (a stacker study needs no features)."""
    return lambda: (pd.read_parquet(Path(spec.out) / "study_inputs.parquet"), [])


def test_stacker_study_runs_resumes_and_reports(stacker_spec: StudySpec) -> None:
    first = run_study(stacker_spec, _stored(stacker_spec), n_trials=6, progress=False)
    assert first.n_new == 6
    again = run_study(
        stacker_spec, _stored(stacker_spec), progress=False
    )  # resumes: only the missing trials run
    assert again.n_new == 6 and len(again.study.trials) == 12
    assert run_study(stacker_spec, _stored(stacker_spec), progress=False).n_new == 0
    assert again.study.best_value > 0.6
    text, paths = study_report(again.study, Path(stacker_spec.out) / "report")
    assert "best trial" in text and "parameter importances" in text
    assert paths["history"].read_bytes()[:4] == b"\x89PNG" and paths["importances"].exists()


def test_journal_storage_and_seeded_sampler(stacker_spec: StudySpec, tmp_path: Path) -> None:
    a = run_study(
        stacker_spec,
        _stored(stacker_spec),
        storage=f"journal:{tmp_path / 'j.log'}",
        n_trials=5,
        progress=False,
    )
    spec_b = StudySpec(kind="stacker", n_trials=5, out=stacker_spec.out, name="other")
    b = run_study(spec_b, _stored(spec_b), storage=f"sqlite:///{tmp_path / 'b.db'}", progress=False)
    assert [t.params for t in a.study.trials] == [t.params for t in b.study.trials]


def test_the_first_ctrl_c_stops_the_study_after_the_running_trial(
    stacker_spec: StudySpec, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import signal

    from hybridrank.tuning import _studies

    real = _studies._stacker_objective
    calls: list[int] = []

    def interrupted_in_the_third_trial(spec, table):  # type: ignore[no-untyped-def]
        inner = real(spec, table)

        def objective(trial):  # type: ignore[no-untyped-def]
            calls.append(trial.number)
            if len(calls) == 3:
                signal.raise_signal(signal.SIGINT)  # Ctrl-C while the trial runs
            return inner(trial)

        return objective

    monkeypatch.setattr(_studies, "_stacker_objective", interrupted_in_the_third_trial)
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        run_study(stacker_spec, _stored(stacker_spec), n_trials=10, progress=False)
    assert signal.getsignal(signal.SIGINT) is before  # the handler is put back
    assert "stopping once the running trial is stored" in capsys.readouterr().err
    storage = make_storage(None, Path(stacker_spec.out))
    stored = optuna.load_study(study_name=stacker_spec.study_name, storage=storage).trials
    # The running trial finished and was stored; no trial is left RUNNING or FAILED.
    assert [t.state for t in stored] == [optuna.trial.TrialState.COMPLETE] * 3
    monkeypatch.setattr(_studies, "_stacker_objective", real)
    assert run_study(stacker_spec, _stored(stacker_spec), n_trials=5, progress=False).n_new == 2
    # Where SIGINT is ignored (a background job), it stays ignored.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with _studies.first_interrupt_stops() as hit:
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN and hit == [False]
    finally:
        signal.signal(signal.SIGINT, before)


INTERRUPT = """
import sys
import pandas as pd
from hybridrank.tuning import StudySpec, run_study
spec = StudySpec(kind="stacker", n_trials=10_000, out=sys.argv[1])
run_study(spec, lambda: (pd.read_parquet(sys.argv[1] + "/study_inputs.parquet"), []), progress=False)
"""


@pytest.mark.slow
def test_interrupted_study_resumes(stacker_spec: StudySpec) -> None:
    """Kill a study process mid-run: the finished trials stay stored and the study resumes."""
    proc = subprocess.Popen([sys.executable, "-c", INTERRUPT, stacker_spec.out])
    storage = make_storage(None, Path(stacker_spec.out))
    deadline = 60.0
    import time

    start = time.time()
    while time.time() - start < deadline:
        time.sleep(0.5)
        try:
            n = len(optuna.load_study(study_name=stacker_spec.study_name, storage=storage).trials)
        except KeyError:
            continue
        if n >= 8:
            break
    proc.kill()
    proc.wait(timeout=30)
    stored = optuna.load_study(study_name=stacker_spec.study_name, storage=storage)
    done = sum(t.state.is_finished() for t in stored.trials)
    assert done >= 5
    spec = StudySpec(kind="stacker", n_trials=done + 3, out=stacker_spec.out)
    result = run_study(spec, _stored(spec), progress=False)
    assert result.n_new == 3
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in result.study.trials) >= done + 3


def test_empty_space_and_experiment_keys_are_the_defaults(tmp_path: Path) -> None:
    spec_file = tmp_path / "s.yaml"
    spec_file.write_text("study:\n  kind: famol\n  space:\n  experiment:\n")
    spec = StudySpec.from_yaml(spec_file)
    assert spec.space == {} and spec.experiment == {}
    assert spec.search_space() == {"centre": (0.0, 5.0), "slope": (0.0, 6.0)}
    spec_file.write_text("study: {kind: famol, space: [1, 2]}\n")
    with pytest.raises(ConfigError, match=r"study\.space must be a mapping"):
        StudySpec.from_yaml(spec_file)


def test_a_study_says_what_it_searches_and_when_the_space_changed(
    stacker_spec: StudySpec, caplog: pytest.LogCaptureFixture
) -> None:
    gbdt = StudySpec(kind="gbdt", space={"num_leaves": [2, 8]})
    described = gbdt.describe_space()
    assert "num_leaves [2, 8]," in described and "colsample [0.4, 1] (default)" in described
    assert set(gbdt.search_space()) == {"learning_rate", "num_leaves", "min_child_samples",
                                        "colsample", "reg_lambda"}  # fmt: skip
    # A stacker's ranges may come from its experiment block; a bucket gate draws weights.
    ranged = StudySpec(kind="stacker", experiment={"stacker": {"centre_range": [1.0, 2.0]}})
    assert ranged.describe_space() == "centre [1, 2], slope [0, 8] (default)"
    bucket = StudySpec(kind="stacker", experiment={"stacker": {"gate": "bucket"}})
    assert bucket.describe_space() == "w0 [0, 1], w1 [0, 1], w2 [0, 1]"
    with pytest.raises(ConfigError, match="weights are searched over"):
        StudySpec(kind="stacker", experiment={"stacker": {"gate": "bucket"}},
                  space={"centre": [0.0, 1.0]})  # fmt: skip
    run_study(stacker_spec, _stored(stacker_spec), n_trials=2, progress=False)
    from dataclasses import replace

    narrower = replace(stacker_spec, space={"centre": [1.0, 2.0]})
    with caplog.at_level("WARNING"):
        result = run_study(narrower, _stored(narrower), n_trials=3, progress=False)
    assert "search space changed" in caplog.text and "centre [0.0, 5.0] -> [1.0, 2.0]" in caplog.text
    assert result.study.user_attrs["space"]["centre"] == [1.0, 2.0]
    caplog.clear()
    with caplog.at_level("WARNING"):
        run_study(narrower, _stored(narrower), n_trials=4, progress=False)
    assert "search space changed" not in caplog.text


def test_spec_validation(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="kind"):
        StudySpec(kind="bogus")
    bad = tmp_path / "s.yaml"
    bad.write_text("study: {kind: stacker, n_trial: 3}\n")
    with pytest.raises(ConfigError, match="unknown keys"):
        StudySpec.from_yaml(bad)
    # A typo in the experiment block lists every key it takes, sections included.
    from hybridrank.pipelines import ExperimentConfig

    with pytest.raises(ConfigError, match=r"unknown keys \['seed'\] \(did you mean 'seeds' for 'seed'\?\); known keys are .*'gbdt'"):
        ExperimentConfig.from_dict({"seed": 1})
    with pytest.raises(ConfigError, match="storage"):
        make_storage("not a url", tmp_path)
    with pytest.raises(StorageError, match=r"unreachable"):
        make_storage("postgresql://nobody@127.0.0.1:1/none", tmp_path)


def test_stacker_study_gate_keeps_a_rising_trial_where_the_tuning_queries_cannot_tell(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Both experts give the same scores, so every trial scores the same: ``bundle --study``
    serves the rising one (``selection: rising``, the default) or the top one (``best``)."""
    from hybridrank.ensemble import StackerConfig, gate_from_params, gate_rise
    from hybridrank.tuning import stacker_study_gate

    inputs = _inputs(seed=1)
    inputs["llm_model"] = inputs["click_gbdt"]
    out = tmp_path / "study"
    out.mkdir()
    inputs.to_parquet(out / "study_inputs.parquet")
    spec = StudySpec(kind="stacker", n_trials=15, out=str(out))
    study = run_study(spec, _stored(spec), progress=False).study
    trial = study.trials[0]
    assert len(trial.user_attrs["per_query_ndcg"]) == 40
    assert trial.user_attrs["rise_between"] == [0.0, 100.0]
    gate, choice, line = stacker_study_gate(study, spec)
    assert choice is not None and choice.within == 15 and choice.best_trial == study.best_trial.number
    assert gate_rise(gate, 0.0, 100.0) == pytest.approx(choice.rise) and choice.rise > 0.9
    assert f"trial #{choice.trial}" in line and "15 trials within 1 SE" in line
    # `study report` says which trial `bundle --study` serves.
    from hybridrank.cli import main

    yaml_path = tmp_path / "stacker.yaml"
    yaml_path.write_text(f"study: {{kind: stacker, n_trials: 15, out: {out}}}\n")
    assert main(["study", "report", str(yaml_path)]) == 0
    assert f"gate kept (bundle --study serves it): {line}" in capsys.readouterr().out
    best_spec = StudySpec(kind="stacker", n_trials=15, out=str(out),
                          experiment={"stacker": {"selection": "best"}})  # fmt: skip
    top, top_choice, _ = stacker_study_gate(study, best_spec)
    assert top_choice is not None and top_choice.trial == study.best_trial.number
    assert top.params() == gate_from_params(study.best_params, StackerConfig()).params()
    # A study from before the per-query record: its top trial, no choice, and why.
    old = optuna.create_study(direction="maximize")
    old.optimize(lambda t: t.suggest_float("centre", 0, 5) + t.suggest_float("slope", 0, 8), 3)
    plain, none, why = stacker_study_gate(old, spec)
    assert none is None and plain.params() == old.best_params
    assert "3 of 3 trials were run before" in why
    # Trials that scored tuning sets of different sizes cannot be compared query by query.
    mixed = optuna.create_study(direction="maximize")
    for i, n in enumerate((3, 4)):
        trial = optuna.trial.create_trial(
            params={"centre": 1.0 + i, "slope": 2.0}, value=0.5 + i / 10,
            distributions={"centre": optuna.distributions.FloatDistribution(0, 5),
                           "slope": optuna.distributions.FloatDistribution(0, 8)},
            user_attrs={"per_query_ndcg": [0.5] * n, "rise_between": [0.0, 100.0]},
        )  # fmt: skip
        mixed.add_trial(trial)
    gate, none, why = stacker_study_gate(mixed, spec)
    assert none is None and gate.params()["centre"] == 2.0 and "[3, 4] queries" in why
