"""The transformer semantic model trained on LLM labels: cross-encoder and bi-encoder rankers.

Importing this package is light: torch and sentence-transformers load when a
ranker is built or fitted.
"""

from __future__ import annotations

from hybridrank.neural._cli import add_train_neural_parser, cmd_train_neural
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
    RANKERS,
    BiEncoderRanker,
    CrossEncoderRanker,
    as_pairs,
    make_ranker,
    text_hash,
)
from hybridrank.neural._train import (
    COSINE,
    SCORE_COLUMNS,
    NeuralRun,
    NeuralTrainConfig,
    attach_texts,
    cross_validated_scores,
    minilm_cosine,
    plot_loss_curves,
    train_neural,
)

__all__ = [
    "ARCHITECTURES",
    "BACKENDS",
    "COSINE",
    "LISTWISE_LOSSES",
    "LOSSES",
    "RANKERS",
    "SCORE_COLUMNS",
    "BiEncoderRanker",
    "CrossEncoderRanker",
    "NeuralConfig",
    "NeuralRun",
    "NeuralTrainConfig",
    "add_train_neural_parser",
    "as_pairs",
    "attach_texts",
    "cmd_train_neural",
    "cross_validated_scores",
    "make_ranker",
    "minilm_cosine",
    "packaged_minilm_path",
    "plot_loss_curves",
    "resolve_torch_device",
    "text_hash",
    "train_neural",
]
