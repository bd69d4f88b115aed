"""Click labels: click models (PBM, cascade, DBN) fitted on impression logs."""

from __future__ import annotations

from hybridrank.labels._click_labels import ClickLabelConfig, ClickLabels, click_labels
from hybridrank.labels._click_models import (
    CLICK_MODELS,
    LOG_COLUMNS,
    CascadeModel,
    ClickModel,
    DynamicBayesianNetworkModel,
    PositionBasedModel,
    evaluate_click_model,
    make_click_model,
    split_sessions,
    validate_log,
)
from hybridrank.labels._harvest import HarvestedExamination, harvest_examination

__all__ = [
    "CLICK_MODELS",
    "LOG_COLUMNS",
    "CascadeModel",
    "ClickLabelConfig",
    "ClickLabels",
    "ClickModel",
    "DynamicBayesianNetworkModel",
    "HarvestedExamination",
    "PositionBasedModel",
    "click_labels",
    "evaluate_click_model",
    "harvest_examination",
    "make_click_model",
    "split_sessions",
    "validate_log",
]
