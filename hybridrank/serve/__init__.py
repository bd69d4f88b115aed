"""Putting trained models to work: batch ranking of candidate tables and one-query online ranking."""

from __future__ import annotations

from hybridrank.serve._ranker import (
    Anchor,
    HybridRanker,
    Ranking,
    RawFeature,
    build_hybrid_bundle,
    llm_run_kind,
)
from hybridrank.serve._store import ClickFeatureStore

__all__ = [
    "Anchor",
    "ClickFeatureStore",
    "HybridRanker",
    "Ranking",
    "RawFeature",
    "build_hybrid_bundle",
    "llm_run_kind",
]
