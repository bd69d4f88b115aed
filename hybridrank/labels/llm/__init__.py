"""Relevance annotation by language models (and the embedded semantic judge): protocol, prompt, cache."""

from __future__ import annotations

from hybridrank.labels.llm._agreement import (
    Agreement,
    JudgeAgreement,
    agreement_report,
    judge_agreement,
)
from hybridrank.labels.llm._cache import AnswerCache, cache_key
from hybridrank.labels.llm._embedding import EmbeddingJudge, packaged_minilm_path
from hybridrank.labels.llm._grading import (
    GraderConfig,
    SemanticGrader,
    kappa_thresholds,
    quadratic_kappa,
    within_query_percentile,
    within_query_zscore,
)
from hybridrank.labels.llm._openai import OpenAIAnnotator, RateLimiter, grade_distribution
from hybridrank.labels.llm._panel import (
    COMBINERS,
    PANEL,
    JudgeConfig,
    JudgePanel,
    PanelRun,
    annotate_panel,
    combine_majority,
    combine_mean,
    judge_columns,
    judge_names,
)
from hybridrank.labels.llm._pipeline import (
    CALIBRATION,
    LLM_SCORE,
    LLM_SOFT,
    LLM_STATUS,
    AnnotateConfig,
    Annotated,
    annotate_candidates,
    choose_calibration_queries,
)
from hybridrank.labels.llm._prompt import (
    DESCRIBED_PROMPT_VERSION,
    PROMPT_VERSION,
    PROMPTS,
    AnswerParseError,
    PromptVariant,
    build_described_messages,
    build_messages,
    get_prompt,
    parse_grade,
)
from hybridrank.labels.llm._protocol import (
    ANNOTATORS,
    GRADES,
    Annotator,
    Judgment,
    Pair,
    make_annotator,
    register_annotator,
)
from hybridrank.labels.llm._runner import (
    LABEL_TABLE_COLUMNS,
    AnnotationStats,
    annotate_pairs,
    count_answered,
    pairs_from_candidates,
)
from hybridrank.labels.llm._stability import (
    DRAW_COLUMNS,
    calibration_draws,
    summarise_draws,
)
from hybridrank.labels.llm._transformers import TransformersAnnotator

__all__ = [
    "ANNOTATORS",
    "CALIBRATION",
    "COMBINERS",
    "DESCRIBED_PROMPT_VERSION",
    "DRAW_COLUMNS",
    "GRADES",
    "LABEL_TABLE_COLUMNS",
    "LLM_SCORE",
    "LLM_SOFT",
    "LLM_STATUS",
    "PANEL",
    "PROMPTS",
    "PROMPT_VERSION",
    "Agreement",
    "AnnotateConfig",
    "Annotated",
    "AnnotationStats",
    "Annotator",
    "AnswerCache",
    "AnswerParseError",
    "EmbeddingJudge",
    "GraderConfig",
    "JudgeAgreement",
    "JudgeConfig",
    "JudgePanel",
    "Judgment",
    "OpenAIAnnotator",
    "Pair",
    "PanelRun",
    "PromptVariant",
    "RateLimiter",
    "SemanticGrader",
    "TransformersAnnotator",
    "agreement_report",
    "annotate_candidates",
    "annotate_pairs",
    "annotate_panel",
    "build_described_messages",
    "build_messages",
    "cache_key",
    "calibration_draws",
    "choose_calibration_queries",
    "combine_majority",
    "combine_mean",
    "count_answered",
    "get_prompt",
    "grade_distribution",
    "judge_agreement",
    "judge_columns",
    "judge_names",
    "kappa_thresholds",
    "make_annotator",
    "packaged_minilm_path",
    "pairs_from_candidates",
    "parse_grade",
    "quadratic_kappa",
    "register_annotator",
    "summarise_draws",
    "within_query_percentile",
    "within_query_zscore",
]
