"""The transformer semantic model trained on LLM labels: cross-encoder and bi-encoder rankers.

Importing this package is light: torch and sentence-transformers load when a
ranker is built or fitted.
"""

from __future__ import annotations

from hybridrank.neural._config import (
    ARCHITECTURES,
    BACKENDS,
    LISTWISE_LOSSES,
    LOSSES,
    NeuralConfig,
    packaged_minilm_path,
)
from hybridrank.neural._device import resolve_torch_device
from hybridrank.neural._rankers import (
    DOCUMENT,
    QUERY,
    RANKERS,
    BiEncoderRanker,
    CrossEncoderRanker,
    NeuralRanker,
    as_pairs,
    make_ranker,
    text_hash,
)

__all__ = [
    "ARCHITECTURES",
    "BACKENDS",
    "DOCUMENT",
    "LISTWISE_LOSSES",
    "LOSSES",
    "QUERY",
    "RANKERS",
    "BiEncoderRanker",
    "CrossEncoderRanker",
    "NeuralConfig",
    "NeuralRanker",
    "as_pairs",
    "make_ranker",
    "packaged_minilm_path",
    "resolve_torch_device",
    "text_hash",
]
