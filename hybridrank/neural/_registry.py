"""The neural rankers by ``neural.architecture``: the one place an architecture is registered."""

from __future__ import annotations

from hybridrank.neural._config import NeuralConfig
from hybridrank.neural._query_tower import QueryTowerRanker
from hybridrank.neural._rankers import BiEncoderRanker, CrossEncoderRanker, NeuralRanker

#: The rankers by ``neural.architecture``.
RANKERS: dict[str, type[NeuralRanker]] = {
    CrossEncoderRanker.architecture: CrossEncoderRanker,
    BiEncoderRanker.architecture: BiEncoderRanker,
    QueryTowerRanker.architecture: QueryTowerRanker,
}


def make_ranker(config: NeuralConfig) -> NeuralRanker:
    """The ranker of ``config.architecture``."""
    return RANKERS[config.architecture](config)
