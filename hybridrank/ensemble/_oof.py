"""Out-of-fold scores that remember which queries trained each fold's model."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from hybridrank import columns as C
from hybridrank.ensemble._normalize import normalised_mean
from hybridrank.errors import HybridRankError
from hybridrank.gbdt import EngineError


class LeakageError(HybridRankError):
    """A score was produced by a model that saw the row's query in training."""


@dataclass(frozen=True)
class OOFScores:
    """Scores of one model for every row, each from a model not trained on the row's query.

    Attributes:
        name: The system's name (a score column).
        scores: One score per row of the table they were made for.
        qid: Query id per row.
        fold: Fold of each row: its score came from the model of that fold.
        trained_on: For each fold, the queries its model was trained on.
    """

    name: str
    scores: np.ndarray
    qid: np.ndarray
    fold: np.ndarray
    trained_on: Mapping[int, frozenset[str]] = field(default_factory=dict)

    def check(self) -> None:
        """Raise :class:`LeakageError` if any row's query trained the model that scored it."""
        if self.scores.shape != self.qid.shape or self.fold.shape != self.qid.shape:
            raise ValueError(f"{self.name}: scores, qid and fold differ in length")
        if np.isnan(self.scores).any():
            raise ValueError(
                f"{self.name}: {int(np.isnan(self.scores).sum())} rows have no out-of-fold score"
            )
        for f in np.unique(self.fold):
            if int(f) not in self.trained_on:
                raise LeakageError(
                    f"{self.name}: no record of what fold {f}'s model was trained on"
                )
            seen = self.trained_on[int(f)]
            rows = self.fold == f
            leaked = np.isin(self.qid[rows], np.array(sorted(seen), dtype=object))
            if leaked.any():
                bad = self.qid[rows][leaked][0]
                raise LeakageError(
                    f"{self.name}: fold {f} scores query {bad!r} with a model trained on it "
                    f"({int(leaked.sum())} rows); the stacker takes out-of-fold predictions only"
                )


def out_of_fold(
    table: pd.DataFrame,
    name: str,
    fit_predict: Callable[[pd.DataFrame, pd.DataFrame], np.ndarray],
    *,
    train_mask: np.ndarray | None = None,
    fold_column: str = C.FOLD,
    progress: bool = True,
) -> OOFScores:
    """Score every row with a model trained on the other folds.

    Args:
        table: Candidate table with ``qid`` and the fold column.
        name: System name.
        fit_predict: ``(train_rows, test_rows) -> scores of test_rows``.
        train_mask: Rows allowed in training (for example rows with a label);
            every row is scored.
        fold_column: Fold per row.
    """
    folds = table[fold_column].to_numpy()
    allowed = _allowed(table, train_mask)
    scores = np.full(len(table), np.nan)
    for f in tqdm(np.unique(folds), desc=f"{name} folds", leave=False, disable=not progress):
        train = (folds != f) & allowed
        test = folds == f
        try:
            scores[test] = fit_predict(table.loc[train], table.loc[test])
        except EngineError as exc:  # which model, which fold, on how much data
            n_q = table.loc[train, C.QID].nunique()
            raise EngineError(f"{name}, fold {f} ({n_q} training queries): {exc}") from exc
    return oof_from_scores(table, name, scores, train_mask=allowed, fold_column=fold_column)


def _allowed(table: pd.DataFrame, train_mask: np.ndarray | None) -> np.ndarray:
    if train_mask is None:
        return np.ones(len(table), dtype=bool)
    return np.asarray(train_mask, dtype=bool)


def oof_from_scores(
    table: pd.DataFrame,
    name: str,
    scores: np.ndarray,
    *,
    train_mask: np.ndarray | None = None,
    fold_column: str = C.FOLD,
) -> OOFScores:
    """The checked :class:`OOFScores` of scores that :func:`out_of_fold` made on ``table``
    with ``train_mask`` (e.g. read back from a cache): fold ``f``'s model was trained on
    the allowed rows of the other folds."""
    folds = table[fold_column].to_numpy()
    qid = table[C.QID].astype(str).to_numpy()
    allowed = _allowed(table, train_mask)
    trained_on = {
        int(f): frozenset(np.unique(qid[(folds != f) & allowed]).tolist())
        for f in np.unique(folds)
    }
    result = OOFScores(
        name=name,
        scores=np.asarray(scores, dtype=np.float64),
        qid=qid,
        fold=folds.astype(np.int64),
        trained_on=trained_on,
    )
    result.check()
    return result


def mean_of_normalised(
    name: str, parts: Sequence[OOFScores], *, normalisation: str = "zscore"
) -> OOFScores:
    """The per-query mean of ``parts``' normalised scores, as one out-of-fold model.

    The parts must score the same rows with the same folds (two systems of one
    experiment table). Fold ``f``'s combined model was trained on every query any
    part's fold-``f`` model saw, so the result is checked like its parts.
    """
    if not parts:
        raise ValueError(f"{name}: nothing to average")
    first = parts[0]
    for part in parts[1:]:
        if not (np.array_equal(part.qid, first.qid) and np.array_equal(part.fold, first.fold)):
            raise ValueError(f"{name}: {part.name} and {first.name} score different rows or folds")
    scores = normalised_mean([p.scores for p in parts], qid=first.qid, normalisation=normalisation)
    trained_on = {
        f: frozenset().union(*(p.trained_on.get(f, frozenset()) for p in parts))
        for f in first.trained_on
    }
    result = OOFScores(
        name=name, scores=scores, qid=first.qid, fold=first.fold, trained_on=trained_on
    )
    result.check()
    return result
