"""Optuna studies: storages (SQLite, any RDB URL, journal files), samplers, pruning, reports."""

from __future__ import annotations

from hybridrank.tuning._pareto import (
    LGB_TO_LAMBDAMART,
    Pick,
    lambdamart_params,
    pareto_front,
    pareto_report,
    pick_trial,
    trials_table,
)
from hybridrank.tuning._storage import make_storage
from hybridrank.tuning._studies import (
    KINDS,
    OBJECTIVES,
    StudyResult,
    StudySpec,
    run_study,
    serving_costs,
    stacker_study_gate,
    study_report,
)

__all__ = [
    "KINDS",
    "LGB_TO_LAMBDAMART",
    "OBJECTIVES",
    "Pick",
    "StudyResult",
    "StudySpec",
    "lambdamart_params",
    "make_storage",
    "pareto_front",
    "pareto_report",
    "pick_trial",
    "run_study",
    "serving_costs",
    "stacker_study_gate",
    "study_report",
    "trials_table",
]
