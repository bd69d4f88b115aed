"""Hybrids of the two supervision sources: data scheduling, FAMOL, the frequency-gated stacker."""

from __future__ import annotations

from hybridrank.ensemble._famol import FAMOLConfig, FAMOLRanker
from hybridrank.ensemble._gates import (
    ANCHOR_NAME,
    GATES,
    TUNABLE_GATES,
    BucketGate,
    Gate,
    GateSpace,
    HeadGate,
    SigmoidGate,
    check_anchors,
    format_params,
    fuse,
    gate_from_dict,
    load_gate,
    make_gate,
    parse_gate,
)
from hybridrank.ensemble._head import HeadTuning, tune_head_weight
from hybridrank.ensemble._lambdarank import LambdaRankPairs, lambdarank_gradients
from hybridrank.ensemble._normalize import (
    NORMALISERS,
    TIE_BREAKS,
    break_ties,
    missing_last,
    normalised_mean,
    rank_per_query,
    text_order,
    zscore_per_query,
)
from hybridrank.ensemble._oof import (
    LeakageError,
    OOFScores,
    mean_of_normalised,
    oof_from_scores,
    out_of_fold,
)
from hybridrank.ensemble._scheduling import DataSchedulingRanker, SchedulingConfig
from hybridrank.ensemble._selection import (
    SELECTIONS,
    GateCandidate,
    GateChoice,
    choose_trial,
    gate_rise,
    reference_frequencies,
)
from hybridrank.ensemble._stacker import (
    FrequencyGatedStacker,
    StackerConfig,
    StackerData,
    gate_from_params,
    prepare,
    suggest_gate,
)

__all__ = [
    "ANCHOR_NAME",
    "GATES",
    "NORMALISERS",
    "SELECTIONS",
    "TIE_BREAKS",
    "TUNABLE_GATES",
    "BucketGate",
    "DataSchedulingRanker",
    "FAMOLConfig",
    "FAMOLRanker",
    "FrequencyGatedStacker",
    "Gate",
    "GateCandidate",
    "GateChoice",
    "GateSpace",
    "HeadGate",
    "HeadTuning",
    "LambdaRankPairs",
    "LeakageError",
    "OOFScores",
    "SchedulingConfig",
    "SigmoidGate",
    "StackerConfig",
    "StackerData",
    "break_ties",
    "check_anchors",
    "choose_trial",
    "format_params",
    "fuse",
    "gate_from_dict",
    "gate_from_params",
    "gate_rise",
    "lambdarank_gradients",
    "load_gate",
    "make_gate",
    "mean_of_normalised",
    "missing_last",
    "normalised_mean",
    "oof_from_scores",
    "out_of_fold",
    "parse_gate",
    "prepare",
    "rank_per_query",
    "reference_frequencies",
    "suggest_gate",
    "text_order",
    "tune_head_weight",
    "zscore_per_query",
]
