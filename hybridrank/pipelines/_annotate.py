"""Annotating a dataset: the judge over its candidates, calibrated on its labelled tuning set."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from hybridrank import columns as C
from hybridrank.data import Dataset, default_cache_dir
from hybridrank.errors import DataFormatError
from hybridrank.labels.llm import (
    CALIBRATION,
    LLM_SCORE,
    LLM_SOFT,
    LLM_STATUS,
    AnnotateConfig,
    AnnotationStats,
    Annotator,
    AnswerCache,
    JudgeAgreement,
    SemanticGrader,
    annotate_candidates,
    expert_top,
    judge_columns,
    judge_names,
    on_judge_scale,
)

logger = logging.getLogger(__name__)

#: Fewest tuning-query pairs that calibrate a score-only judge on expert grades.
MIN_CALIBRATION_PAIRS = 20
#: Columns of a dataset's ``llm_labels`` table (several judges add their own:
#: ``y_llm@NAME``, ``y_llm_soft@NAME``, ``llm_status@NAME`` per judge).
LLM_LABEL_COLUMNS = (C.QID, C.DOCID, C.Y_LLM, LLM_SOFT, LLM_SCORE, LLM_STATUS, CALIBRATION)


#: Column of the labels: the judge that made each one (``backend:model``).
LLM_JUDGE = "llm_judge"


def judge_id(annotator: Any) -> str:
    """The judge as recorded beside its labels: ``backend:model``."""
    return f"{annotator.backend}:{annotator.model}"


def default_answer_cache() -> Path:
    """The one answer cache every command uses unless told otherwise.

    ``$HYBRIDRANK_CACHE/annotations.sqlite`` (else ``$XDG_CACHE_HOME/hybridrank``
    or ``~/.cache/hybridrank``). Entries are keyed by backend, model, prompt
    version and the pair's text hash, so one cache serves every dataset.
    """
    return default_cache_dir() / "annotations.sqlite"


@dataclass(frozen=True)
class DatasetLabels:
    """The result of :func:`annotate_dataset`.

    Attributes:
        llm_labels: One row per annotated pair: ``qid, docid, y_llm,
            y_llm_soft, llm_score, llm_status, calibration`` (``y_llm`` NaN
            where the judge failed or the budget stopped it); with several
            judges, each judge's ``y_llm@NAME, y_llm_soft@NAME, llm_status@NAME``.
        answers: One row per pair as returned by the runner (several judges:
            per pair and judge, with a ``judge`` column).
        stats: Counts of the run (several judges: all together).
        grader: The fitted grader of a score-only judge, else None.
        judge_stats: Each judge's counts by name (several judges), else None.
        judge_agreement: The judges' agreement with each other (several
            judges), else None.
    """

    llm_labels: pd.DataFrame
    answers: pd.DataFrame
    stats: AnnotationStats
    grader: SemanticGrader | None
    judge_stats: Mapping[str, AnnotationStats] | None = None
    judge_agreement: JudgeAgreement | None = None


#: Why a dataset without texts has no LLM labels, and what would give it some.
NO_TEXTS = (
    "the dataset holds no query and document texts, so nothing can judge its pairs (a click "
    "log or LETOR file alone); import it with its texts (--queries/--docs or --collection) "
    "to annotate it"
)


def require_texts(dataset: Dataset) -> None:
    """Refuse a dataset the judges cannot read (no query or document texts)."""
    if not dataset.has_texts:
        raise DataFormatError(NO_TEXTS, path=dataset.path)


def llm_label_hint(dataset: Dataset) -> str:
    """What to do about a dataset without LLM labels: annotate it, or, without texts, why not."""
    if not dataset.has_texts:
        return NO_TEXTS
    return f"label the dataset first: `hybridrank annotate --dataset {dataset.path or 'DIR'}`"


def annotate_dataset(
    dataset: Dataset,
    annotator: Annotator,
    cache: AnswerCache,
    config: AnnotateConfig | None = None,
    *,
    candidates: pd.DataFrame | None = None,
    progress: bool = True,
) -> DatasetLabels:
    """Judge a dataset's candidate pairs; grade a score-only judge on the tuning set.

    A score-only judge (the embedded semantic judge) maps scores to grades by
    thresholds calibrated on the expert grades of the dataset's labelled
    tuning/calibration queries (the same queries that tune the stacker, and
    that every evaluation leaves out); without a tuning set, by quantiles.

    Args:
        dataset: The dataset; it must hold query and document texts.
        annotator: The judge (a :class:`~hybridrank.labels.llm.JudgePanel` for
            several LLM judges, combined).
        cache: The answer cache.
        config: Budget, batch size, retries, grader.
        candidates: A subset of the dataset's candidates to label (default all).

    Raises:
        DataFormatError: The dataset has no texts, or ``candidates`` names
            pairs it does not hold.
    """
    require_texts(dataset)
    assert dataset.queries is not None and dataset.docs is not None  # for the type checker
    config = replace(config or AnnotateConfig(), seed_queries=0)
    table = dataset.table()
    if candidates is not None:
        wanted = known_pairs(candidates, table)
        table = table.set_index([C.QID, C.DOCID]).loc[wanted].reset_index()
    annotated = annotate_candidates(
        table, dataset.queries, dataset.docs, annotator, cache, config, progress=progress
    )
    out = annotated.candidates
    tuning = dataset.tuning_qids
    grader = annotated.grader
    out[CALIBRATION] = out[C.QID].isin(tuning).to_numpy()
    rows = out[CALIBRATION].to_numpy()
    if not annotator.is_llm and grader is not None and tuning and C.Y_EXPERT in out.columns:
        if rows.sum() >= MIN_CALIBRATION_PAIRS:
            # The tuning set is the calibration set: the judge's thresholds come from its grades.
            scored = out.assign(score=out[LLM_SCORE])
            # Expert grades above the judge's 0-3 scale are read on it (0-4: 0,1,2,2,3).
            # The scale's top from the whole dataset's grades, so a subset maps the same.
            top = (
                expert_top(dataset.qrels[C.GRADE])
                if dataset.qrels is not None and len(dataset.qrels)
                else None
            )
            expert = on_judge_scale(scored[C.Y_EXPERT].to_numpy(dtype="float64"), top)
            grader.fit(scored.loc[rows], expert[rows])
            out[C.Y_LLM] = grader.transform(scored)
            out[LLM_SOFT] = grader.soft_grade(scored)
        else:
            logger.warning(
                "only %d of the labelled pairs belong to the tuning queries (at least %d are "
                "needed to calibrate the judge on their grades): grades by quantiles instead",
                int(rows.sum()), MIN_CALIBRATION_PAIRS,
            )
    per_judge = [c for name in judge_names(out.columns) for c in judge_columns(name)]
    labels = out[[*LLM_LABEL_COLUMNS, *per_judge]].reset_index(drop=True)
    labels[LLM_JUDGE] = judge_id(annotator)  # which judge made each label (kept when merged)
    return DatasetLabels(
        llm_labels=labels,
        answers=annotated.labels,
        stats=annotated.stats,
        grader=grader,
        judge_stats=annotated.judge_stats,
        judge_agreement=annotated.judge_agreement,
    )


def known_pairs(pairs: pd.DataFrame, candidates: pd.DataFrame) -> pd.MultiIndex:
    """``pairs``' (qid, docid) keys, each a candidate of the dataset.

    Raises:
        DataFormatError: The first pair that is none, by its row in ``pairs``.
    """
    keys = pd.MultiIndex.from_frame(candidates[[C.QID, C.DOCID]].astype(str))
    wanted = pd.MultiIndex.from_frame(pairs[[C.QID, C.DOCID]].astype(str))
    unknown = ~wanted.isin(keys)
    if unknown.any():
        q, d = wanted[int(unknown.argmax())]
        raise DataFormatError(
            f"pair ({q!r}, {d!r}) is not a candidate of the dataset; "
            f"{int(unknown.sum())} such pairs",
            row=int(unknown.argmax()),
            column=C.DOCID,
        )
    return wanted


__all__ = [
    "LLM_LABEL_COLUMNS", "NO_TEXTS", "DatasetLabels", "annotate_dataset", "default_answer_cache",
    "known_pairs", "llm_label_hint", "require_texts",
]  # fmt: skip
