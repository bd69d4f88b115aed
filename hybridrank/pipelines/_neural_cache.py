"""The LLM-neural model's out-of-fold scores, kept on disk so a rerun does not retrain it.

Training the transformer is the experiment's longest step after the judge
(about 1 min 45 s for the NFCorpus world on 2 cores). Its scores depend only
on the texts, the labels it learns from, the folds, its config and its start
weights, so they are stored under a key made of exactly those: a rerun of
the demo or an experiment with the same inputs reads them back, and any
change (another judge, budget, fold split, config field or model) misses and
trains. A file that cannot be read, or does not fit the table, is a miss too
(logged): the cache never stops a run, and files are written whole or not at
all.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hybridrank import __version__
from hybridrank._atomic import write_parquet
from hybridrank.labels.llm import weights_fingerprint
from hybridrank.neural import NeuralConfig

logger = logging.getLogger(__name__)

#: Bumped when what a cached file holds, or how its key is made, changes.
CACHE_FORMAT = 1
#: The cache's folder beside the answer cache (``$HYBRIDRANK_CACHE/neural-scores``).
NEURAL_CACHE_DIR = "neural-scores"
#: The columns a cached file holds, one row per table row.
SCORE, UNTRAINED = "score", "untrained"


@dataclass(frozen=True)
class NeuralScoreCache:
    """Out-of-fold scores of the neural model, one parquet file per key under ``directory``."""

    directory: Path

    def key(
        self,
        table: pd.DataFrame,
        columns: Sequence[str],
        config: NeuralConfig,
        train_mask: np.ndarray,
    ) -> str:
        """The digest of everything the scores depend on: ``table[columns]`` (texts, labels,
        folds, row order), the rows allowed in training, the config and the start weights."""
        import torch

        path = Path(config.resolved_model_path)
        head = {
            "format": CACHE_FORMAT,
            "hybridrank": __version__,
            "torch": torch.__version__,
            "config": config.to_dict(),
            "weights": weights_fingerprint(path) if path.is_dir() else str(path),
            "columns": list(columns),
        }
        digest = hashlib.sha256(json.dumps(head, sort_keys=True, default=str).encode())
        digest.update(pd.util.hash_pandas_object(table[list(columns)], index=False).to_numpy().tobytes())
        digest.update(np.packbits(np.asarray(train_mask, dtype=bool)).tobytes())
        return digest.hexdigest()[:24]

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.parquet"

    def load(self, key: str, n_rows: int) -> pd.DataFrame | None:
        """The cached scores (columns ``score`` and ``untrained``), or None on a miss."""
        path = self.path(key)
        if not path.exists():
            return None
        try:
            frame = pd.read_parquet(path)
        except (OSError, ValueError) as exc:
            logger.warning("%s: unreadable (%s); training the neural model again", path, exc)
            return None
        if list(frame.columns) != [SCORE, UNTRAINED] or len(frame) != n_rows:
            logger.warning(
                "%s: holds %d rows and columns %s, expected %d rows of %s; training again",
                path, len(frame), list(frame.columns), n_rows, [SCORE, UNTRAINED],
            )  # fmt: skip
            return None
        if frame[SCORE].isna().any():
            logger.warning("%s: missing scores; training the neural model again", path)
            return None
        return frame

    def save(self, key: str, scores: np.ndarray, untrained: np.ndarray | None) -> Path:
        path = self.path(key)
        frame = pd.DataFrame(
            {
                SCORE: np.asarray(scores, dtype=np.float64),
                UNTRAINED: np.full(len(scores), np.nan)
                if untrained is None
                else np.asarray(untrained, dtype=np.float64),
            }
        )
        write_parquet(frame, path)
        return path
