"""LambdaMART (LightGBM, XGBoost): training, device selection, bundles, export, importance."""

from __future__ import annotations

from hybridrank.gbdt._bundle import GBDTBundle, verify_manifest, write_manifest
from hybridrank.gbdt._device import resolve_device
from hybridrank.gbdt._importance import Importance, feature_importance
from hybridrank.gbdt._lambdamart import (
    ENGINES,
    MAX_GROUP_SIZE,
    OBJECTIVES,
    LambdaMARTConfig,
    LambdaMARTRanker,
)
from hybridrank.gbdt._train import (
    FEATURE_GROUPS,
    GBDTRun,
    GBDTTrainConfig,
    build_training_table,
    cross_validated_scores,
    resolve_features,
    train_gbdt,
)

__all__ = [
    "ENGINES",
    "FEATURE_GROUPS",
    "MAX_GROUP_SIZE",
    "OBJECTIVES",
    "GBDTBundle",
    "GBDTRun",
    "GBDTTrainConfig",
    "Importance",
    "LambdaMARTConfig",
    "LambdaMARTRanker",
    "build_training_table",
    "cross_validated_scores",
    "feature_importance",
    "resolve_device",
    "resolve_features",
    "train_gbdt",
    "verify_manifest",
    "write_manifest",
]
