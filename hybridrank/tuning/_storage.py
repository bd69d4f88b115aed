"""Optuna storages from one string: a SQLite path, any RDB URL, or a journal file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hybridrank.errors import ConfigError


def make_storage(spec: str | None, run_dir: Path) -> Any:
    """An Optuna storage.

    Args:
        spec: ``None`` (a SQLite file ``RUN_DIR/study.db``), an RDB URL
            (``sqlite:///...``, ``postgresql://user@host/db``, ``mysql://...``)
            or ``journal:PATH`` (a journal file, safe for many workers on a
            shared file system).
        run_dir: The study's run directory.
    """
    import optuna

    if spec is None:
        run_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(run_dir / 'study.db').resolve()}"
    if spec.startswith("journal:"):
        path = Path(spec.removeprefix("journal:"))
        path.parent.mkdir(parents=True, exist_ok=True)
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    if "://" not in spec:
        raise ConfigError(
            f"storage {spec!r}: expected an RDB URL (sqlite:///path, postgresql://...) or journal:PATH"
        )
    try:
        return optuna.storages.RDBStorage(spec, heartbeat_interval=60, grace_period=120)
    except Exception as exc:  # SQLAlchemy raises many types for a bad or unreachable URL
        raise ConfigError(
            f"storage {spec.split('@')[-1]!r} is unreachable or invalid: {exc}"
        ) from None
