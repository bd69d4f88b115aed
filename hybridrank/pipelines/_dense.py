"""The ``dense`` feature: the packaged MiniLM's cosine of every candidate pair.

A local transformer's similarity is cheap next to an LLM's judgment: it is
computed for every candidate, whatever share of the pairs an LLM budget
labels, and unlike the judge's score (``semantic_similarity``) it is never
masked by a budget. At the judge's head length (64 tokens: the title and
first sentences) it ranks as well as the longer view at a quarter of the cost.
Scores go through the answer cache under the one-view judge's prompt version
(``cosine-v1-len64``), so a rerun encodes nothing.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from hybridrank.data import Dataset
from hybridrank.errors import DataFormatError
from hybridrank.neural import NeuralConfig
from hybridrank.pipelines._annotate import default_answer_cache
from hybridrank.pipelines._train_neural import attach_texts, minilm_cosine

logger = logging.getLogger(__name__)

#: Tokens per text of the dense feature.
DENSE_MAX_SEQ_LENGTH = 64


def dense_similarity(
    table: pd.DataFrame,
    dataset: Dataset,
    cache: str | Path | None = None,
    *,
    max_seq_length: int = DENSE_MAX_SEQ_LENGTH,
) -> np.ndarray:
    """The untrained MiniLM cosine of each row of ``table``, through the answer cache
    (``cache``; None: the one default cache every command shares)."""
    if dataset.queries is None or dataset.docs is None:
        raise DataFormatError(
            "feature group dense needs the query and document texts; the dataset has none",
            path=dataset.path,
        )
    path = Path(cache) if cache is not None else default_answer_cache()
    path.parent.mkdir(parents=True, exist_ok=True)
    texts = attach_texts(table, dataset.queries, dataset.docs)
    return minilm_cosine(texts, NeuralConfig(), max_seq_length=max_seq_length, cache=path)
