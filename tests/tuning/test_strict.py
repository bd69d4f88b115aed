"""Study specs are checked before any work; stale trials and silent servers end with a message."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import optuna
import pytest

from hybridrank.errors import ConfigError, StorageError
from hybridrank.tuning import StudySpec, make_storage
from hybridrank.tuning._storage import fail_orphaned_trials


def test_an_integer_range_may_be_written_with_floats() -> None:
    assert StudySpec(kind="gbdt", space={"num_leaves": [4.0, 64.0]}).space["num_leaves"] == [4.0, 64.0]


@pytest.mark.parametrize(
    "kind, space, message",
    [
        ("stacker", {"center": [0, 1]}, "did you mean 'centre'"),
        ("stacker", {"centre": [5, 0]}, r"low <= high"),
        ("gbdt", {"num_leafs": [4, 8]}, "did you mean 'num_leaves'"),
        ("gbdt", {"learning_rate": [0, 0.3]}, "log scale"),
        ("famol", {"slope": ["a", 1]}, r"\[low, high\]"),
        # Both ends must be values the parameter may take: no trial fails on its draw.
        ("gbdt", {"colsample": [1.2, 1.5]}, r"colsample: 1.2 is out of range .*\(0, 1\]"),
        ("gbdt", {"min_child_samples": [-5, 0]}, "min_child_samples: -5 is out of range"),
        ("gbdt", {"num_leaves": [1, 8]}, "num_leaves: 1 is out of range"),
        ("famol", {"slope": [-3.0, -1.0]}, "slope: -3.0 is out of range"),
        ("stacker", {"slope": [0, float("inf")]}, "slope: inf is out of range"),
    ],
)
def test_search_space_is_checked_when_the_spec_is_read(
    kind: str, space: dict, message: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=message):
        StudySpec(kind=kind, space=space)
    path = tmp_path / "s.yaml"
    path.write_text(f"study: {{kind: {kind}, space: {space!r}}}\n".replace("'", ""))
    with pytest.raises(ConfigError, match=str(path)):
        StudySpec.from_yaml(path)


def test_a_trial_whose_worker_died_before_recording_itself_is_failed_and_retried(
    tmp_path: Path,
) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 's.db'}")
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})  # never told, no worker
    assert fail_orphaned_trials(study, unrecorded_grace_s=3600) == []  # still young
    time.sleep(0.05)
    assert fail_orphaned_trials(study, unrecorded_grace_s=0.01) == [trial.number]
    states = [t.state for t in study.get_trials(deepcopy=False)]
    assert states == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.WAITING]
    assert study.get_trials(deepcopy=False)[1].system_attrs["fixed_params"] == trial.params


def test_a_server_that_accepts_but_never_answers_times_out(tmp_path: Path) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    port = server.getsockname()[1]
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                held.append(conn)  # accepted, never answered
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    start = time.perf_counter()
    try:
        with pytest.raises(StorageError, match="unreachable"):
            make_storage(
                f"postgresql://user@127.0.0.1:{port}/db", tmp_path, connect_timeout_s=2
            )
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()
    assert time.perf_counter() - start < 30


def test_a_bad_experiment_block_names_the_spec_file_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from hybridrank.cli import main

    spec = tmp_path / "s.yaml"
    spec.write_text(
        f"study: {{kind: stacker, out: {tmp_path / 'run'}, experiment: {{seeds: [0], sesions: []}}}}\n"
    )
    for argv in (["study", "run", str(spec)], ["study", "best", str(spec)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert f"{spec}: study.experiment: unknown keys ['sesions']" in err, err
    assert not (tmp_path / "run").exists()


def test_reading_a_study_that_was_never_run_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from hybridrank.cli import main

    spec = tmp_path / "s.yaml"
    spec.write_text(f"study: {{kind: gbdt, out: {tmp_path / 'run'}}}\n")
    for command in ("best", "report"):
        assert main(["study", command, str(spec)]) == 2
        assert "no such study storage" in capsys.readouterr().err
    assert not (tmp_path / "run" / "study.db").exists()
