"""Relevance annotation by language models (and the embedded semantic judge): protocol, prompt, cache."""

from __future__ import annotations

from hybridrank.labels.llm._agreement import Agreement, agreement_report
from hybridrank.labels.llm._cache import AnswerCache, cache_key
from hybridrank.labels.llm._embedding import EmbeddingJudge, packaged_minilm_path
from hybridrank.labels.llm._grading import (
    GraderConfig,
    SemanticGrader,
    within_query_percentile,
    within_query_zscore,
)
from hybridrank.labels.llm._openai import OpenAIAnnotator, RateLimiter, grade_distribution
from hybridrank.labels.llm._pipeline import (
    CALIBRATION,
    LLM_SCORE,
    LLM_STATUS,
    AnnotateConfig,
    Annotated,
    annotate_candidates,
    choose_calibration_queries,
)
from hybridrank.labels.llm._prompt import (
    PROMPT_VERSION,
    AnswerParseError,
    build_messages,
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
    pairs_from_candidates,
)
from hybridrank.labels.llm._transformers import TransformersAnnotator

__all__ = [
    "ANNOTATORS",
    "CALIBRATION",
    "GRADES",
    "LABEL_TABLE_COLUMNS",
    "LLM_SCORE",
    "LLM_STATUS",
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
    "Judgment",
    "OpenAIAnnotator",
    "Pair",
    "RateLimiter",
    "SemanticGrader",
    "TransformersAnnotator",
    "agreement_report",
    "annotate_candidates",
    "annotate_pairs",
    "build_messages",
    "cache_key",
    "choose_calibration_queries",
    "grade_distribution",
    "make_annotator",
    "packaged_minilm_path",
    "pairs_from_candidates",
    "parse_grade",
    "register_annotator",
    "within_query_percentile",
    "within_query_zscore",
]
