"""LambdaMART (LightGBM, XGBoost): training, device selection, bundles, export, importance."""

from __future__ import annotations

from hybridrank.gbdt._bundle import GBDTBundle, verify_manifest, write_manifest
from hybridrank.gbdt._device import resolve_device
from hybridrank.gbdt._importance import Importance, feature_importance
from hybridrank.gbdt._lambdamart import (
    ENGINES,
    MAX_GROUP_SIZE,
    OBJECTIVES,
    Data,
    Gradients,
    LambdaMARTConfig,
    LambdaMARTRanker,
    Objective,
    OnRound,
    Result,
    Trainer,
    Valid,
    lightgbm_params,
    local_trainer,
    xgboost_params,
)
from hybridrank.gbdt._params import EngineError, check_params, known_parameters
from hybridrank.gbdt._position import LIGHTGBM_SOURCE, XGBOOST_SOURCE, XGBOOST_UNBIASED

__all__ = [
    "ENGINES",
    "LIGHTGBM_SOURCE",
    "MAX_GROUP_SIZE",
    "OBJECTIVES",
    "XGBOOST_SOURCE",
    "XGBOOST_UNBIASED",
    "Data",
    "EngineError",
    "GBDTBundle",
    "Gradients",
    "Importance",
    "LambdaMARTConfig",
    "LambdaMARTRanker",
    "Objective",
    "OnRound",
    "Result",
    "Trainer",
    "Valid",
    "check_params",
    "feature_importance",
    "known_parameters",
    "lightgbm_params",
    "local_trainer",
    "resolve_device",
    "verify_manifest",
    "write_manifest",
    "xgboost_params",
]
