"""The transformer semantic model trained on LLM labels: cross-encoder, bi-encoder and query-tower rankers.

Importing this package is light: torch and sentence-transformers load when a
ranker is built or fitted.
"""

from __future__ import annotations

from hybridrank.neural._config import (
    ARCHITECTURES,
    BACKENDS,
    LISTWISE_LOSSES,
    LOSSES,
    TARGETS,
    NeuralConfig,
    packaged_minilm_path,
)
from hybridrank.neural._device import resolve_torch_device
from hybridrank.neural._query_tower import QueryTowerRanker
from hybridrank.neural._rankers import (
    DOCUMENT,
    QUERY,
    BiEncoderRanker,
    CrossEncoderRanker,
    NeuralRanker,
    as_pairs,
    text_hash,
)
from hybridrank.neural._registry import RANKERS, make_ranker

__all__ = [
    "ARCHITECTURES",
    "BACKENDS",
    "DOCUMENT",
    "LISTWISE_LOSSES",
    "LOSSES",
    "QUERY",
    "RANKERS",
    "TARGETS",
    "BiEncoderRanker",
    "CrossEncoderRanker",
    "NeuralConfig",
    "NeuralRanker",
    "QueryTowerRanker",
    "as_pairs",
    "make_ranker",
    "packaged_minilm_path",
    "resolve_torch_device",
    "text_hash",
]
