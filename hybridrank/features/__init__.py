"""Features of queries and documents: click features, text features, query frequency and buckets, schema."""

from __future__ import annotations

from hybridrank.features._click_definitions import STORE_ALIASES
from hybridrank.features._click_features import (
    CLICK_FEATURES,
    DOC_FEATURES,
    PAIR_FEATURES,
    QUERY_FEATURES,
    ClickFeatureConfig,
    ClickFeatures,
    compute_click_features,
    compute_click_features_parquet,
    join_click_features,
)
from hybridrank.features._frequency import BucketConfig, FrequencyBuckets, query_frequency
from hybridrank.features._schema import FEATURE_VERSION, FeatureSchema
from hybridrank.features._text_features import TEXT_FEATURES, compute_text_features

__all__ = [
    "CLICK_FEATURES",
    "DOC_FEATURES",
    "FEATURE_VERSION",
    "PAIR_FEATURES",
    "QUERY_FEATURES",
    "STORE_ALIASES",
    "TEXT_FEATURES",
    "BucketConfig",
    "ClickFeatureConfig",
    "ClickFeatures",
    "FeatureSchema",
    "FrequencyBuckets",
    "compute_click_features",
    "compute_click_features_parquet",
    "compute_text_features",
    "join_click_features",
    "query_frequency",
]
