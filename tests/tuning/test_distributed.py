"""Several `hybridrank study run` processes on one study: PostgreSQL and a journal file, one worker killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import yaml

from hybridrank import columns as C
from hybridrank.errors import StorageError
from hybridrank.pipelines import run_study_on_data
from hybridrank.tuning import StudySpec
from hybridrank.tuning._storage import RETRY_OF, WORKER_PID, _host_key, fail_orphaned_trials

FEATURES = [f"f{i}" for i in range(6)]
N_TRIALS = 8


def _gbdt_inputs(n_q: int = 150, per: int = 10, seed: int = 0) -> pd.DataFrame:
    """Labels driven by the first features; every query labelled, a third of them for tuning."""
    rng = np.random.default_rng(seed)
    n = n_q * per
    X = rng.normal(size=(n, len(FEATURES)))
    y = np.clip(np.round(1.5 + X[:, 0] + 0.5 * X[:, 1] + rng.normal(0, 0.5, n)), 0, 3)
    frame = pd.DataFrame(X, columns=FEATURES)
    frame[C.QID] = np.repeat([f"q{i:04d}" for i in range(n_q)], per)
    frame[C.Y_CLICK] = y
    frame[C.Y_EXPERT] = y
    frame["tuning"] = np.repeat(np.arange(n_q) % 3 == 0, per)
    return frame


def _spec_file(tmp_path: Path) -> Path:
    out = tmp_path / "study"
    out.mkdir()
    _gbdt_inputs().to_parquet(out / "study_inputs.parquet")
    spec = {
        "study": {
            "kind": "gbdt",
            "n_trials": N_TRIALS,
            "out": str(out),
            "heartbeat_interval": 2,
            # Long enough that a live trial on two busy cores is never judged dead.
            "grace_period": 30,
            "experiment": {"features": FEATURES},
        }
    }
    path = tmp_path / "gbdt_study.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _worker(spec: Path, storage: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "hybridrank", "study", "run", str(spec), "--storage", storage],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _kill_mid_trial(
    workers: list[subprocess.Popen[bytes]], load: object, timeout: float = 90.0
) -> int:
    """SIGKILL a worker while it runs a trial; return that trial's number.

    The worker is frozen first (SIGSTOP), so the storage can be read while
    its trial cannot finish under our feet.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in workers:
            if proc.poll() is not None:
                continue
            os.kill(proc.pid, signal.SIGSTOP)
            try:
                study = load()  # type: ignore[operator]
            except KeyError:  # the study is not created yet
                os.kill(proc.pid, signal.SIGCONT)
                continue
            running = [
                t
                for t in study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
                if t.user_attrs.get(WORKER_PID) == proc.pid
            ]
            if running:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
                return int(running[0].number)
            os.kill(proc.pid, signal.SIGCONT)
        time.sleep(0.05)
    raise AssertionError("no worker was seen running a trial")


@pytest.mark.slow
@pytest.mark.parametrize(
    "backend", [pytest.param("postgres", marks=pytest.mark.postgres), "journal"]
)
def test_three_workers_one_killed(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    spec_path = _spec_file(tmp_path)
    if backend == "postgres":
        url = request.getfixturevalue("postgres_url")
        # A fresh study name per run: the server may be shared by other tests.
        spec = yaml.safe_load(spec_path.read_text())
        spec["study"]["name"] = f"kill-test-{os.getpid()}-{time.time_ns()}"
        spec_path.write_text(yaml.safe_dump(spec))
        storage = url
    else:
        storage = f"journal:{tmp_path / 'journal.log'}"
    spec = StudySpec.from_yaml(spec_path)

    def load() -> optuna.Study:
        return optuna.load_study(study_name=spec.study_name, storage=spec.open_storage(storage))

    workers = [_worker(spec_path, storage) for _ in range(3)]
    try:
        killed = _kill_mid_trial(workers, load)
        for proc in workers:
            if proc.pid and proc.returncode is None:
                _, err = proc.communicate(timeout=240)
                assert proc.returncode == 0, err.decode()[-2000:]
    finally:
        for proc in workers:
            if proc.poll() is None:
                proc.kill()

    study = load()
    trials = study.get_trials()
    states = {t.number: t.state for t in trials}
    assert states[killed] == optuna.trial.TrialState.FAIL
    finished = [
        t
        for t in trials
        if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    ]
    assert len(finished) >= N_TRIALS
    # Every trial is stored once (unique numbers and ids) and none is left running.
    assert len({t.number for t in trials}) == len(trials)
    assert len({t._trial_id for t in trials}) == len(trials)
    assert not [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]
    # The killed trial was run again with the parameters it had drawn (a trial
    # killed while drawing them has only some; the retry draws the rest).
    # hybridrank's orphan check or Optuna's heartbeat, whichever saw it first.
    retries = [
        t
        for t in trials
        if t.user_attrs.get(RETRY_OF) == killed or t.system_attrs.get("failed_trial") == killed
    ]
    assert len(retries) == 1
    assert study.trials[killed].params.items() <= retries[0].params.items()
    assert retries[0].state != optuna.trial.TrialState.RUNNING


def test_orphan_of_a_live_worker_is_left_alone(tmp_path: Path) -> None:
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "j.log"))
    )
    study = optuna.create_study(storage=storage)
    live = study.ask()
    live.set_user_attr("worker_host", _host_key())
    live.set_user_attr(WORKER_PID, os.getpid())
    dead = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    dead.set_user_attr("worker_host", _host_key())
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    dead.set_user_attr(WORKER_PID, proc.pid)
    elsewhere = study.ask()  # a dead pid, but in another container or machine: not ours to judge
    elsewhere.set_user_attr("worker_host", "another-host/boot/ns")
    elsewhere.set_user_attr(WORKER_PID, proc.pid)
    assert fail_orphaned_trials(study, max_retry=1) == [dead.number]
    assert study.trials[elsewhere.number].state == optuna.trial.TrialState.RUNNING
    assert study.trials[live.number].state == optuna.trial.TrialState.RUNNING
    assert study.trials[dead.number].state == optuna.trial.TrialState.FAIL
    # The retry is enqueued (WAITING) with the same parameters.
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert [t.system_attrs["fixed_params"] for t in waiting] == [study.trials[dead.number].params]
    assert waiting[0].user_attrs[RETRY_OF] == dead.number


def test_unreachable_storage_is_a_clear_error_and_keeps_the_run_dir(tmp_path: Path) -> None:
    out = tmp_path / "study"
    out.mkdir()
    _gbdt_inputs().to_parquet(out / "study_inputs.parquet")
    spec = StudySpec(kind="gbdt", n_trials=2, out=str(out), experiment={"features": FEATURES})
    with pytest.raises(StorageError, match=r"127\.0\.0\.1:1/none.*unreachable"):
        run_study_on_data(spec, storage="postgresql://nobody@127.0.0.1:1/none", progress=False)
    assert (out / "study_inputs.parquet").exists()


def test_workers_draw_distinct_trials_and_one_worker_is_reproducible(tmp_path: Path) -> None:
    """Two workers' samplers with one seed: plain TPE repeats the first draw, ours does not."""
    from hybridrank.tuning._sampler import make_sampler

    def first_draws(make: object, storage: object) -> list[float]:
        study_a = optuna.create_study(study_name="s", storage=storage, load_if_exists=True,
                                      sampler=make())  # type: ignore[operator]  # fmt: skip
        study_b = optuna.load_study(study_name="s", storage=storage, sampler=make())  # type: ignore[operator]
        a, b = study_a.ask(), study_b.ask()  # two workers, each its first trial
        return [a.suggest_float("x", 0, 1), b.suggest_float("x", 0, 1)]

    plain = first_draws(
        lambda: optuna.samplers.TPESampler(seed=0), f"sqlite:///{tmp_path / 'a.db'}"
    )
    assert plain[0] == plain[1]  # the duplication this sampler exists to avoid
    ours = first_draws(lambda: make_sampler(0), f"sqlite:///{tmp_path / 'b.db'}")
    assert ours[0] != ours[1]
    again = first_draws(lambda: make_sampler(0), f"sqlite:///{tmp_path / 'c.db'}")
    assert again == ours
