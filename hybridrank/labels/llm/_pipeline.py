"""Annotating a candidate table: pairs, cache, judge, grades, and the ``y_llm`` column."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from hybridrank import columns as C
from hybridrank._config import config_from_dict
from hybridrank.errors import ConfigError
from hybridrank.labels.llm._cache import AnswerCache
from hybridrank.labels.llm._grading import GraderConfig, SemanticGrader
from hybridrank.labels.llm._protocol import Annotator
from hybridrank.labels.llm._runner import AnnotationStats, annotate_pairs, pairs_from_candidates

logger = logging.getLogger(__name__)

#: Candidate-table column marking queries whose expert grades calibrated the
#: judge: they are left out of every evaluation.
CALIBRATION = "calibration"
LLM_SCORE = "llm_score"
LLM_STATUS = "llm_status"


@dataclass(frozen=True)
class AnnotateConfig:
    """An annotation run.

    Attributes:
        backend: ``embedding`` (the embedded semantic judge), ``openai`` or ``transformers``.
        params: Keyword arguments of the backend (base_url, model, model_path, ...).
        budget: At most this many new pairs go to the backend per run.
        batch_size: Pairs per backend call.
        retry_failed: Ask again for pairs whose stored answer is a failure.
        grader: How a score-only judge's scores become grades.
        seed_queries: Queries whose expert grades calibrate the grader (0: use
            quantiles). Those queries are marked in the ``calibration`` column
            and left out of every evaluation.
        seed: Seed of the choice of calibration queries.
    """

    backend: str = "embedding"
    params: Mapping[str, Any] = field(default_factory=dict)
    budget: int | None = None
    batch_size: int = 64
    retry_failed: bool = False
    grader: GraderConfig = field(default_factory=GraderConfig)
    seed_queries: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.budget is not None and self.budget < 0:
            raise ConfigError("annotate.budget must be >= 0")
        if self.batch_size < 1 or self.seed_queries < 0:
            raise ConfigError("annotate: batch_size must be >= 1 and seed_queries >= 0")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> AnnotateConfig:
        values = dict(values or {})
        grader = GraderConfig.from_dict(values.pop("grader", None))
        base = config_from_dict(cls, values, "annotate")
        return cls(**{**base.__dict__, "grader": grader})


@dataclass(frozen=True)
class Annotated:
    """Result of :func:`annotate_candidates`.

    Attributes:
        candidates: The candidate table with ``y_llm`` (NaN where failed or not
            run), ``llm_score``, ``llm_status`` and ``calibration``.
        labels: One row per pair as returned by the runner.
        stats: Counts of the run.
        grader: The fitted grader (score-only judges), else None.
    """

    candidates: pd.DataFrame
    labels: pd.DataFrame
    stats: AnnotationStats
    grader: SemanticGrader | None


def choose_calibration_queries(candidates: pd.DataFrame, n: int, seed: int) -> set[str]:
    """``n`` queries (seeded) among those with a relevant candidate."""
    if n <= 0:
        return set()
    has_rel = candidates.groupby(C.QID, sort=False)[C.Y_EXPERT].max() > 0
    pool = np.asarray(has_rel.index[has_rel.to_numpy()])
    if n > pool.size:
        raise ConfigError(
            f"seed_queries={n} but only {pool.size} queries have a relevant candidate"
        )
    rng = np.random.default_rng(seed)
    return {str(q) for q in rng.choice(pool, size=n, replace=False)}


def annotate_candidates(
    candidates: pd.DataFrame,
    queries: pd.DataFrame,
    docs: pd.DataFrame,
    annotator: Annotator,
    cache: AnswerCache,
    config: AnnotateConfig | None = None,
    *,
    progress: bool = True,
) -> Annotated:
    """Judge every candidate pair and attach ``y_llm``.

    LLM backends answer grades directly. A score-only judge (the embedding
    judge) is graded afterwards by :class:`SemanticGrader`, calibrated on the
    expert grades of ``seed_queries`` queries (then marked ``calibration``) or
    on quantiles.
    """
    config = config or AnnotateConfig()
    pairs = pairs_from_candidates(candidates, queries, docs)
    labels, stats = annotate_pairs(
        annotator,
        pairs,
        cache,
        budget=config.budget,
        batch_size=config.batch_size,
        retry_failed=config.retry_failed,
        progress=progress,
    )
    out = candidates.copy()
    out[LLM_SCORE] = labels["score"].to_numpy()
    out[LLM_STATUS] = labels["status"].to_numpy()
    calib = choose_calibration_queries(candidates, config.seed_queries, config.seed)
    out[CALIBRATION] = out[C.QID].isin(calib).to_numpy()
    grader: SemanticGrader | None = None
    if annotator.is_llm:
        out[C.Y_LLM] = labels["grade"].astype("float64").to_numpy()
    else:
        grader = SemanticGrader(config.grader)
        scored = out.assign(score=out[LLM_SCORE])
        if calib:
            seed_rows = scored[CALIBRATION].to_numpy()
            grader.fit(scored.loc[seed_rows], scored.loc[seed_rows, C.Y_EXPERT].to_numpy())
        else:
            grader.fit(scored)
        out[C.Y_LLM] = grader.transform(scored)
        logger.info("semantic judge graded by %s", grader.describe())
    return Annotated(candidates=out, labels=labels, stats=stats, grader=grader)
