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
    LambdaMARTConfig,
    LambdaMARTRanker,
    Result,
    Trainer,
    Valid,
    lightgbm_params,
    xgboost_params,
)

__all__ = [
    "ENGINES",
    "MAX_GROUP_SIZE",
    "OBJECTIVES",
    "Data",
    "GBDTBundle",
    "Importance",
    "LambdaMARTConfig",
    "LambdaMARTRanker",
    "Result",
    "Trainer",
    "Valid",
    "feature_importance",
    "lightgbm_params",
    "resolve_device",
    "verify_manifest",
    "write_manifest",
    "xgboost_params",
]
