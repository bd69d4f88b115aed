"""Optuna studies: storages (SQLite, any RDB URL, journal files), samplers, pruning, reports."""

from __future__ import annotations

from hybridrank.tuning._storage import make_storage
from hybridrank.tuning._studies import (
    KINDS,
    StudyResult,
    StudySpec,
    run_study,
    study_report,
)

__all__ = [
    "KINDS",
    "StudyResult",
    "StudySpec",
    "make_storage",
    "run_study",
    "study_report",
]
