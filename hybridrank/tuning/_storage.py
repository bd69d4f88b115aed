"""Optuna storages from one string (a SQLite path, any RDB URL, a journal file) and worker bookkeeping.

Many ``hybridrank study run`` processes can work on one study when they share
a storage: PostgreSQL or MySQL through Optuna's ``RDBStorage``, or a journal
file (``journal:PATH``) on a file system they all see. A worker that dies
mid-trial leaves a trial in state RUNNING; two mechanisms end such trials:

* RDB storages: Optuna's heartbeat. Each running trial beats every
  ``heartbeat_interval`` seconds; a trial silent for ``grace_period`` seconds
  is failed by the next worker that starts a trial, and
  ``RetryHeartbeatStaleTrialCallback`` enqueues it again with the same parameters.
* Any storage: :func:`fail_orphaned_trials`. Every trial records the worker
  that runs it (host, pid, process start time); a RUNNING trial whose worker
  process on this host no longer exists is failed at once and retried.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

from hybridrank.errors import ConfigError, StorageError

logger = logging.getLogger(__name__)

#: User attributes every trial carries: who ran it.
WORKER_HOST, WORKER_PID, WORKER_STARTED = "worker_host", "worker_pid", "worker_started"
#: User attribute of a retried trial: the number of the trial it repeats.
RETRY_OF = "retry_of"


def make_storage(
    spec: str | None,
    run_dir: Path,
    *,
    heartbeat_interval: int | None = 30,
    grace_period: int | None = 90,
    max_retry: int = 1,
    connect_timeout_s: float = 10.0,
) -> Any:
    """An Optuna storage.

    Args:
        spec: ``None`` (a SQLite file ``RUN_DIR/study.db``), an RDB URL
            (``sqlite:///...``, ``postgresql://user@host/db``, ``mysql://...``)
            or ``journal:PATH`` (a journal file, safe for many workers on a
            shared file system).
        run_dir: The study's run directory.
        heartbeat_interval: Seconds between heartbeats of a running trial
            (RDB storages); None turns the heartbeat off.
        grace_period: Seconds without a heartbeat after which a trial counts as dead.
        max_retry: How often a trial failed by the heartbeat is run again.
        connect_timeout_s: Seconds a database server may take to accept a
            connection (PostgreSQL, MySQL) before a :class:`StorageError`.

    Raises:
        ConfigError: ``spec`` is neither an RDB URL nor ``journal:PATH``.
        StorageError: The database cannot be reached or is not an Optuna storage.
    """
    import optuna

    if spec is None:
        run_dir.mkdir(parents=True, exist_ok=True)
        spec = f"sqlite:///{(run_dir / 'study.db').resolve()}"
    if spec.startswith("journal:"):
        path = Path(spec.removeprefix("journal:"))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            from optuna.storages.journal import JournalFileBackend

            return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
        except OSError as exc:
            raise StorageError(f"journal file {path} cannot be opened: {exc}") from None
    if "://" not in spec:
        raise ConfigError(
            f"storage {spec!r}: expected an RDB URL (sqlite:///path, postgresql://...) or journal:PATH"
        )
    beat: dict[str, Any] = {}
    if heartbeat_interval is not None and not spec.startswith("sqlite"):
        # SQLite is a single-machine file: the orphan check covers it without beats.
        from optuna.storages import RetryHeartbeatStaleTrialCallback

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            retry = RetryHeartbeatStaleTrialCallback(max_retry=max_retry)
        beat = {
            "heartbeat_interval": heartbeat_interval,
            "grace_period": grace_period,
            "heartbeat_stale_trial_callback": retry,
        }
    # SQLAlchemy 2.0 maps postgresql:// to psycopg2, 2.1 to psycopg 3: name the
    # driver hybridrank installs (the `postgres` extra) so both work.
    if spec.startswith(("postgresql://", "postgres://")):
        spec = "postgresql+psycopg://" + spec.split("://", 1)[1]
    engine: dict[str, Any] = {}
    if spec.startswith(("postgresql", "mysql")):
        # A server that accepts the connection but never answers would otherwise hang
        # for minutes in the driver: fail after connect_timeout_s with a message.
        engine["connect_args"] = {"connect_timeout": int(connect_timeout_s)}
        logger.info("connecting to %s (timeout %ss)", spec.split("@")[-1], connect_timeout_s)
    try:
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna's words
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(spec, engine_kwargs=engine or None, **beat)
    except ImportError as exc:
        raise StorageError(
            f"no database driver for {spec.split('://')[0]!r} ({exc}); install one "
            "(PostgreSQL: pip install 'hybridrank[postgres]')"
        ) from None
    except Exception as exc:  # SQLAlchemy raises many types for a bad or unreachable URL
        where = spec.split("@")[-1]  # never print a password
        raise StorageError(
            f"storage {where!r} is unreachable or not a database Optuna can use: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}. "
            "Trials already stored there are untouched; start the server (or fix the URL) and run again."
        ) from None


@functools.cache
def _host_key() -> str:
    """Where a pid means something: host name, boot and pid namespace.

    Containers sharing a host name (host networking, cloned machines) differ
    in boot id or pid namespace, so a pid seen from one is never judged in another.
    """
    parts = [socket.gethostname()]
    for path in ("/proc/sys/kernel/random/boot_id",):
        try:
            parts.append(Path(path).read_text().strip())
        except OSError:
            parts.append("?")
    try:
        parts.append(str(os.stat("/proc/self/ns/pid").st_ino))
    except OSError:
        parts.append("?")
    return "/".join(parts)


def worker_identity() -> dict[str, Any]:
    """This process as a trial's worker: host key (host, boot, pid namespace), pid, start time."""
    import psutil

    return {
        WORKER_HOST: _host_key(),
        WORKER_PID: os.getpid(),
        WORKER_STARTED: psutil.Process().create_time(),
    }


def _alive(pid: int, started: float | None) -> bool:
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        # A reused pid belongs to a process started later.
        return started is None or abs(proc.create_time() - started) < 1.0
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:  # access denied (hidepid) and the like: assume alive
        return True


def fail_orphaned_trials(
    study: Any, *, max_retry: int = 1, unrecorded_grace_s: float | None = None
) -> list[int]:
    """Fail RUNNING trials whose worker process (on this host) is gone, and enqueue retries.

    A trial is retried (same parameters, user attribute ``retry_of``) while
    the chain of retries behind it is shorter than ``max_retry``. Trials run
    by other hosts are left to the heartbeat. A worker records itself on its
    trial first thing; a RUNNING trial with no worker recorded that started
    more than ``unrecorded_grace_s`` seconds ago lost its worker before that
    (a kill in the first instant) and is failed and retried too, whatever
    the host: nothing else would ever end it.

    Returns:
        Numbers of the trials marked failed.
    """
    import optuna

    host = _host_key()
    failed: list[int] = []
    by_number: dict[int, Any] | None = None
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    now = datetime.now()
    for trial in running:
        attrs = trial.user_attrs
        if WORKER_PID not in attrs:
            started = trial.datetime_start
            stale = (
                unrecorded_grace_s is not None
                and started is not None
                and (now - started).total_seconds() > unrecorded_grace_s
            )
            if not stale:
                continue
        elif attrs.get(WORKER_HOST) != host or _alive(
            int(attrs[WORKER_PID]), attrs.get(WORKER_STARTED)
        ):
            continue
        try:
            ok = study._storage.set_trial_state_values(
                trial._trial_id, state=optuna.trial.TrialState.FAIL
            )
        except RuntimeError:  # another worker finished it first
            continue
        if not ok:
            continue
        failed.append(trial.number)
        depth, origin = 0, attrs.get(RETRY_OF)
        if origin is not None and by_number is None:  # read the study once, only when needed
            by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
        while origin is not None and by_number is not None and depth < 100:
            depth += 1
            origin = by_number[origin].user_attrs.get(RETRY_OF) if origin in by_number else None
        if depth < max_retry:
            study.enqueue_trial(trial.params, user_attrs={RETRY_OF: trial.number})
        logger.warning(
            "trial %d: its worker (pid %s) is gone; marked FAIL%s",
            trial.number,
            attrs.get(WORKER_PID, "never recorded"),
            " and enqueued again" if depth < max_retry else "",
        )
    return failed
