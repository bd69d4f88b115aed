"""Annotating a candidate table: pairs, cache, judge, grades, and the ``y_llm`` column."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from hybridrank import columns as C
from hybridrank._config import config_from_dict, unknown_keys_error
from hybridrank.errors import ConfigError
from hybridrank.labels.llm._agreement import JudgeAgreement, on_judge_scale
from hybridrank.labels.llm._cache import AnswerCache
from hybridrank.labels.llm._grading import GraderConfig, SemanticGrader
from hybridrank.labels.llm._panel import (
    PANEL,
    JudgeConfig,
    JudgePanel,
    annotate_panel,
    panel_params,
    with_prompt,
)
from hybridrank.labels.llm._prompt import PROMPTS
from hybridrank.labels.llm._protocol import (
    ANNOTATORS,
    Annotator,
    check_annotator_params,
    make_annotator,
)
from hybridrank.labels.llm._runner import AnnotationStats, annotate_pairs, pairs_from_candidates

logger = logging.getLogger(__name__)

#: Candidate-table column marking queries whose expert grades calibrated the
#: judge: they are left out of every evaluation.
CALIBRATION = "calibration"
LLM_SCORE = "llm_score"
#: The judge's continuous grade (0-3): an LLM's expected grade from its grade
#: tokens' probabilities where the server returns them (else its grade), a
#: calibrated judge's expected grade. What a student model distils from.
LLM_SOFT = "y_llm_soft"
LLM_STATUS = "llm_status"


@dataclass(frozen=True)
class AnnotateConfig:
    """An annotation run (YAML section ``annotate:``).

    One judge is ``backend`` + ``params``. Several judges, combined per pair,
    are written as ``judges:`` (a list of ``{backend, params[, name]}``, LLM
    backends only; see :class:`JudgeConfig`) and ``combine:`` (``mean``, the
    default: the rounded mean grade, halves up; ``majority``: the most common
    grade, a tie going to the tied grade nearest the median of all the
    judges' grades, then to the lower one). :meth:`from_dict` turns them into
    the ``panel`` backend (:class:`JudgePanel`) and its parameters, so
    ``backend`` + ``params`` always name the whole judge.

    Attributes:
        backend: ``embedding`` (the embedded semantic judge), ``openai``,
            ``transformers``, ``simulated`` (the collection's grades plus noise:
            a measuring instrument) or ``panel`` (several judges; from ``judges:``).
        params: Keyword arguments of the backend (base_url, model, model_path,
            prompt, ...; for ``panel``: ``judges`` and ``combine``).
        prompt: The prompt variant of every LLM judge that does not name its
            own in its params: ``title`` (the query text alone; the default)
            or ``described`` (adds the query's description and narrative
            where the dataset has them). The embedded semantic judge reads no
            prompt and ignores it. None: each judge's own (default ``title``).
        budget: At most this many new pairs go to the backend per run (per
            judge, with several judges).
        batch_size: Pairs per backend call.
        retry_failed: Ask again for pairs whose stored answer is a failure.
        grader: How a score-only judge's scores become grades.
        seed_queries: Queries whose expert grades calibrate the grader (0: use
            quantiles). Those queries are marked in the ``calibration`` column
            and left out of every evaluation.
        seed: Seed of the choice of calibration queries.

    Example:
        >>> config = AnnotateConfig.from_dict({"combine": "majority", "judges": [
        ...     {"backend": "openai", "params": {"base_url": "http://127.0.0.1:8000/v1", "model": "qwen"}},
        ...     {"backend": "openai", "params": {"base_url": "http://127.0.0.1:8001/v1", "model": "llama"}},
        ... ]})
        >>> config.backend, [j.name for j in config.judges], config.combine
        ('panel', ['qwen', 'llama'], 'majority')
    """

    backend: str = "embedding"
    params: Mapping[str, Any] = field(default_factory=dict)
    prompt: str | None = None
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
        if not isinstance(self.params, Mapping):
            raise ConfigError(f"annotate.params must be a mapping, got {self.params!r}")
        if self.prompt is not None and self.prompt not in PROMPTS:
            raise ConfigError(
                f"annotate.prompt: {self.prompt!r} is not one of {sorted(PROMPTS)}"
            )
        params = dict(self.params)
        judge = ANNOTATORS.get(self.backend)
        if self.prompt not in (None, "title") and judge is not None and not judge.is_llm:
            logger.warning(
                "annotate.prompt %r has no effect: the %s judge reads no prompt (only the "
                "query text and the document)",
                self.prompt,
                self.backend,
            )
        if self.backend == PANEL:
            unknown = sorted(set(params) - {"judges", "combine"})
            if unknown:
                raise unknown_keys_error(
                    "annotate.params of the panel", unknown, ["combine", "judges"]
                )
            params = panel_params(params.get("judges"), params.get("combine", "mean"))
        else:
            check_annotator_params(self.backend, params)  # a typo fails when the config is read
        # The prompt goes into the judges' own parameters, so backend + params build the judge.
        object.__setattr__(self, "params", with_prompt(self.backend, params, self.prompt))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> AnnotateConfig:
        """Build from the ``annotate:`` mapping of a YAML file.

        ``judges`` (with an optional ``combine``) stands for ``backend: panel``
        and its parameters; giving it with ``backend`` or ``params`` is an error.
        """
        if values is not None and not isinstance(values, Mapping):
            raise ConfigError(f"annotate: expected a mapping of keys, got {type(values).__name__}")
        values = dict(values or {})
        if "judges" in values or "combine" in values:
            clash = sorted({"backend", "params"} & set(values))
            if clash:
                raise ConfigError(
                    f"annotate: give `judges` (several judges, combined) or {clash} (one judge), "
                    "not both"
                )
            if "judges" not in values:
                raise ConfigError(
                    "annotate.combine combines several judges: list them under annotate.judges"
                )
            values["backend"] = PANEL
            values["params"] = panel_params(values.pop("judges"), values.pop("combine", "mean"))
        grader = GraderConfig.from_dict(values.pop("grader", None))
        base = config_from_dict(cls, values, "annotate")
        return cls(**{**base.__dict__, "grader": grader})

    @property
    def judges(self) -> tuple[JudgeConfig, ...]:
        """The judges of a ``panel`` (with their names); one judge: an empty tuple."""
        if self.backend != PANEL:
            return ()
        return tuple(
            JudgeConfig(backend=j["backend"], params=j["params"], name=j["name"])
            for j in self.params["judges"]
        )

    @property
    def combine(self) -> str | None:
        """How a panel's grades are combined; None for one judge."""
        return str(self.params["combine"]) if self.backend == PANEL else None

    def make_annotator(self) -> Annotator:
        """The judge this config names (a :class:`JudgePanel` for several)."""
        return make_annotator(self.backend, **self.params)


@dataclass(frozen=True)
class Annotated:
    """Result of :func:`annotate_candidates`.

    Attributes:
        candidates: The candidate table with ``y_llm`` (NaN where failed or not
            run), ``y_llm_soft``, ``llm_score``, ``llm_status`` and
            ``calibration``; with several judges also each judge's
            ``y_llm@NAME``, ``y_llm_soft@NAME`` and ``llm_status@NAME``.
        labels: One row per pair as returned by the runner (several judges:
            one row per pair and judge, with a ``judge`` column).
        stats: Counts of the run (several judges: all together).
        grader: The fitted grader (score-only judges), else None.
        judge_stats: Each judge's counts, by name (several judges), else None.
        judge_agreement: The judges' agreement with each other (several
            judges), else None.
    """

    candidates: pd.DataFrame
    labels: pd.DataFrame
    stats: AnnotationStats
    grader: SemanticGrader | None
    judge_stats: Mapping[str, AnnotationStats] | None = None
    judge_agreement: JudgeAgreement | None = None


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
    on quantiles. A :class:`JudgePanel` is run judge by judge through the
    cache (:func:`annotate_panel`) and its grades combined.
    """
    config = config or AnnotateConfig()
    pairs = pairs_from_candidates(candidates, queries, docs)
    if isinstance(annotator, JudgePanel):
        run = annotate_panel(
            annotator,
            pairs,
            cache,
            budget=config.budget,
            batch_size=config.batch_size,
            retry_failed=config.retry_failed,
            progress=progress,
        )
        out = candidates.copy()
        out[LLM_SCORE] = np.nan
        out[LLM_STATUS] = run.status
        calib = choose_calibration_queries(candidates, config.seed_queries, config.seed)
        out[CALIBRATION] = out[C.QID].isin(calib).to_numpy()
        out[C.Y_LLM] = run.grade
        out[LLM_SOFT] = run.soft
        for column in run.judges.columns:
            out[column] = run.judges[column].to_numpy()
        return Annotated(
            candidates=out,
            labels=run.labels,
            stats=run.total,
            grader=None,
            judge_stats=run.stats,
            judge_agreement=run.agreement,
        )
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
        out[LLM_SOFT] = (
            labels["expected_grade"].astype("float64").fillna(labels["grade"].astype("float64"))
        ).to_numpy()
    else:
        grader = SemanticGrader(config.grader)
        scored = out.assign(score=out[LLM_SCORE])
        if calib:
            seed_rows = scored[CALIBRATION].to_numpy()
            # Expert grades above the judge's 0-3 scale are read on it (0-4: 0,1,2,2,3).
            expert = on_judge_scale(scored[C.Y_EXPERT].to_numpy(dtype=np.float64))
            grader.fit(scored.loc[seed_rows], expert[seed_rows])
        else:
            grader.fit(scored)
        out[C.Y_LLM] = grader.transform(scored)
        out[LLM_SOFT] = grader.soft_grade(scored)
        logger.info("semantic judge graded by %s", grader.describe())
    return Annotated(candidates=out, labels=labels, stats=stats, grader=grader)
