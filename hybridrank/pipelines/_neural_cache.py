"""The LLM-neural model's out-of-fold scores, kept on disk so a rerun does not retrain it.

Training the transformer is the experiment's longest step after the judge
(about 1 min 45 s for the NFCorpus world on 2 cores). Its scores depend on
the table it is given (texts, the label it learns from, folds, row order),
the rows it may train on, its config, the device it runs on, its start model
and the code and libraries that train it, so they are stored under a key made
of all of those: a rerun with the same inputs reads them back, and any change
(another judge, budget, fold split, config field, model file, hybridrank's
neural code, a library version) misses and trains. A file that cannot be
read or does not fit the table is a miss too, and a cache that cannot be
written is logged: the cache never stops a run. Files are written whole or
not at all. The folder keeps the ``max_files`` most recently used files (a
file holds two numbers a candidate: about 350 KB for the NFCorpus world);
delete it to drop them all, or turn the cache off (``neural_cache: false``,
``--no-neural-cache``).

While the model trains, each finished fold's scores are kept under
``folds/`` in the same folder (:class:`FoldCheckpoints`, same key): a run
killed in fold 4 resumes at fold 4 and does not retrain folds 1-3. They are
removed once the whole run is stored.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hybridrank import __version__
from hybridrank._atomic import write_parquet
from hybridrank._digest import files_sha256
from hybridrank.neural import NeuralConfig, resolve_torch_device

logger = logging.getLogger(__name__)

#: Bumped when what a cached file holds, or how its key is made, changes.
CACHE_FORMAT = 1
#: The cache's folder beside the answer cache (``$HYBRIDRANK_CACHE/neural-scores``).
NEURAL_CACHE_DIR = "neural-scores"
#: The columns a cached file holds, one row per table row.
SCORE, UNTRAINED = "score", "untrained"
#: Files kept by default; the least recently used go first.
MAX_FILES = 64
#: The folder of unfinished runs' fold checkpoints, inside the cache's folder.
FOLDS_DIR = "folds"
#: Fold files kept by default (of runs that were stopped and never resumed).
MAX_FOLD_FILES = 64


def _library_versions() -> dict[str, str]:
    versions = {}
    for name in ("torch", "transformers", "sentence-transformers", "numpy"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def model_fingerprint(path: str | Path) -> str:
    """A digest of every file under a model directory (a path that is no directory: its name)."""
    root = Path(path)
    if not root.is_dir():
        return str(path)
    return files_sha256(sorted(p for p in root.rglob("*") if p.is_file()), root)


def neural_code_fingerprint() -> str:
    """A digest of hybridrank's neural package, which trains and scores the model."""
    root = Path(__file__).resolve().parent.parent / "neural"
    return files_sha256(sorted(root.glob("*.py")), root)


@dataclass(frozen=True)
class NeuralScoreCache:
    """Out-of-fold scores of the neural model, one parquet file per key under ``directory``.

    Attributes:
        directory: Where the files are.
        max_files: Files kept; a save removes the least recently used beyond it
            (a hit counts as a use).
    """

    directory: Path
    max_files: int = MAX_FILES

    def __post_init__(self) -> None:
        if self.max_files < 1:
            raise ValueError(f"max_files must be >= 1, got {self.max_files}")

    def key(self, table: pd.DataFrame, config: NeuralConfig, train_mask: np.ndarray) -> str:
        """The digest of everything the scores depend on: ``table`` (every column the model
        reads, in row order), the rows allowed in training, the config, the device, the start
        model's files, the neural code and the library versions."""
        head = {
            "format": CACHE_FORMAT,
            "hybridrank": __version__,
            "code": neural_code_fingerprint(),
            "libraries": _library_versions(),
            "config": config.to_dict(),
            "device": resolve_torch_device(config.device),
            "model": model_fingerprint(config.resolved_model_path),
            "columns": list(table.columns),
        }
        digest = hashlib.sha256(json.dumps(head, sort_keys=True, default=str).encode())
        digest.update(pd.util.hash_pandas_object(table, index=False).to_numpy().tobytes())
        digest.update(np.packbits(np.asarray(train_mask, dtype=bool)).tobytes())
        return digest.hexdigest()[:24]

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.parquet"

    def folds(self, key: str, producer: str) -> FoldCheckpoints:
        """Where the run of ``key`` keeps its finished folds until it is stored whole.

        ``producer`` (``experiment``, ``train``) keeps apart runs that train on the same
        inputs in different ways (the experiment shares the judge's document vectors
        across folds; ``train neural`` records each fold's curves).
        """
        return FoldCheckpoints(self.directory / FOLDS_DIR, f"{key}-{producer}")

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
        score, untrained = frame[SCORE], frame[UNTRAINED]
        whole = untrained.isna().all() or bool(np.isfinite(untrained.to_numpy()).all())
        if (
            not (pd.api.types.is_float_dtype(score) and pd.api.types.is_float_dtype(untrained))
            or not np.isfinite(score.to_numpy()).all()
            or not whole
        ):
            logger.warning("%s: scores missing or not numbers; training again", path)
            return None
        with contextlib.suppress(OSError):  # a hit is a use: the last file to go when pruning
            os.utime(path)
        return frame

    def save(self, key: str, scores: np.ndarray, untrained: np.ndarray | None) -> Path | None:
        """Store the scores; None (logged) when the cache cannot be written."""
        path = self.path(key)
        frame = pd.DataFrame(
            {
                SCORE: np.asarray(scores, dtype=np.float64),
                UNTRAINED: np.full(len(scores), np.nan)
                if untrained is None
                else np.asarray(untrained, dtype=np.float64),
            }
        )
        try:
            write_parquet(frame, path)
        except OSError as exc:
            logger.warning("%s: the neural scores could not be cached (%s)", path, exc)
            return None
        self.folds(key, "experiment").clear()
        self._prune(keep=path)
        return path

    def _prune(self, *, keep: Path) -> None:
        """Remove the least recently used files beyond ``max_files`` (never ``keep``)."""
        _remove_oldest(self.directory.glob("*.parquet"), self.max_files, lambda p: p == keep)


@dataclass(frozen=True)
class FoldCheckpoints:
    """The finished folds of one neural cross-validation (``key``: what its scores
    depend on, as :meth:`NeuralScoreCache.key` makes it), so that a run stopped
    midway resumes at its first unfinished fold.

    A fold file holds the fold's rows' scores and, in its metadata, the fold's
    record (timings, loss curves). Files are written whole or not at all; one
    that cannot be read or does not fit is retrained, and one that cannot be
    written is logged: checkpoints never stop a run.

    Attributes:
        directory: Where the fold files are (``<neural cache>/folds``).
        key: The run's key.
        max_files: Fold files kept across runs; the oldest go first.
    """

    directory: Path
    key: str
    max_files: int = MAX_FOLD_FILES

    def path(self, fold: int | str) -> Path:
        return self.directory / f"{self.key}-fold{fold}.parquet"

    def load(
        self, fold: int | str, n_rows: int, *, needs: tuple[str, ...] = ()
    ) -> tuple[np.ndarray, dict[str, Any]] | None:
        """The fold's scores and record, or None when it has not finished (or its record
        lacks a key in ``needs``)."""
        path = self.path(fold)
        if not path.exists():
            return None
        try:
            frame = pd.read_parquet(path)
        except (OSError, ValueError) as exc:
            logger.warning("%s: unreadable (%s); training fold %s again", path, exc, fold)
            return None
        record = frame.attrs.get("record")
        scores = frame[SCORE].to_numpy(dtype=np.float64) if SCORE in frame.columns else None
        if (
            scores is None
            or len(frame) != n_rows
            or not np.isfinite(scores).all()
            or not isinstance(record, dict)
            or any(key not in record for key in needs)
        ):
            logger.warning("%s: does not fit this fold; training fold %s again", path, fold)
            return None
        return scores, record

    def save(self, fold: int | str, scores: np.ndarray, record: Mapping[str, Any]) -> None:
        frame = pd.DataFrame({SCORE: np.asarray(scores, dtype=np.float64)})
        # Through JSON once: numpy numbers become plain ones the metadata can hold.
        frame.attrs["record"] = json.loads(json.dumps(dict(record), default=_plain))
        path = self.path(fold)
        try:
            write_parquet(frame, path)
        except OSError as exc:
            logger.warning("%s: fold %s could not be kept for a resume (%s)", path, fold, exc)
            return
        _remove_oldest(
            self.directory.glob("*-fold*.parquet"), self.max_files,
            lambda p: p.name.startswith(f"{self.key}-"),
        )  # fmt: skip

    def clear(self) -> None:
        """Remove this run's fold files (its whole result is stored)."""
        for path in self.directory.glob(f"{self.key}-fold*.parquet"):
            with contextlib.suppress(OSError):
                path.unlink()


def _remove_oldest(paths: Iterable[Path], max_files: int, keep: Callable[[Path], bool]) -> None:
    """Remove the files beyond the ``max_files`` most recently modified, except those
    ``keep`` names; a file removed meanwhile by another run is skipped."""
    files = []
    for p in paths:
        with contextlib.suppress(OSError):
            files.append((p.stat().st_mtime, p))
    files.sort(key=lambda item: item[0], reverse=True)
    for _, p in files[max_files:]:
        if keep(p):
            continue
        try:
            p.unlink()
        except OSError as exc:
            logger.warning("%s: could not remove an old cached file (%s)", p, exc)


def _plain(value: Any) -> Any:
    """A numpy number as the plain Python one (for JSON)."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
