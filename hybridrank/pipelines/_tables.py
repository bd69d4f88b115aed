"""The one candidate-table builder: a dataset's candidates with click features, labels and splits."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from hybridrank import columns as C
from hybridrank.data import TUNING, Dataset
from hybridrank.ensemble import missing_last, text_order
from hybridrank.features import (
    ClickFeatureConfig,
    ClickFeatures,
    compute_click_features,
    join_click_features,
)
from hybridrank.labels import ClickLabelConfig, click_labels
from hybridrank.labels.llm import LLM_SCORE, LLM_SOFT
from hybridrank.pipelines._click_split import (
    TRAIN_PREFIX,
    ClickSplitConfig,
    label_unshown,
    split_windows,
)

logger = logging.getLogger(__name__)

#: The semantic judge's raw similarity, usable as a text-only feature (group ``semantic``).
SEMANTIC = C.SEMANTIC
#: The local transformer's cosine of every candidate, never masked by an LLM budget
#: (group ``dense``; see :mod:`hybridrank.pipelines._dense`).
DENSE = "dense_cosine"
#: The click-model estimate behind the graded click label.
CLICK_ESTIMATE = "click_estimate"


@dataclass(frozen=True)
class TableOptions:
    """How the training table is built from a dataset.

    Attributes:
        click_features: Click feature options.
        labels: How click labels are derived from the log.
        click_split: Which sessions give the click features of training rows
            and which the click labels (see :mod:`hybridrank.pipelines._click_split`).
    """

    click_features: ClickFeatureConfig = field(default_factory=ClickFeatureConfig)
    labels: ClickLabelConfig = field(default_factory=ClickLabelConfig)
    click_split: ClickSplitConfig = field(default_factory=ClickSplitConfig)


def build_table(
    dataset: Dataset, options: TableOptions | None = None
) -> tuple[pd.DataFrame, ClickFeatures | None]:
    """The candidate table every workflow trains and evaluates on.

    Columns: the dataset's candidates; ``freq, bucket, fold, tuning`` from its
    splits; with impressions, the click features (from the log) and
    ``y_click`` (from a click model; never-shown pairs have no label, NaN);
    with LLM labels, ``y_llm`` and the judge's raw similarity ``semantic_similarity``;
    with qrels, ``y_expert`` (0 where unjudged).

    With ``options.click_split`` on, the click features come from the whole
    log (what scoring and serving see), ``y_click`` from the label window only,
    and each click feature also as ``train:<name>`` from the feature window:
    :func:`~hybridrank.pipelines._click_split.training_view` gives the rows a
    model trains on.

    Returns:
        The table and the click features of the whole log (None without
        impressions), which a bundle stores for serving.
    """
    options = options or TableOptions()
    table = dataset.table()
    feats: ClickFeatures | None = None
    log = dataset.impressions
    if log is not None:
        feats = compute_click_features(log, options.click_features)
        table = join_click_features(table, feats)
        split = options.click_split
        if split.enabled:
            feature_log, label_log, how = split_windows(
                log, split.label_share, by_time=split.mode == "time", seed=split.seed
            )
            window = join_click_features(
                table[[C.QID, C.DOCID]], compute_click_features(feature_log, options.click_features)
            )
            added = [c for c in window.columns if c not in (C.QID, C.DOCID)]
            table = pd.concat(
                [table, window[added].add_prefix(TRAIN_PREFIX).set_axis(table.index)], axis=1
            )
            labels = click_labels(table, label_log, options.labels)
            grade = label_unshown(labels.grade, table, label_log, split)
            logger.info(
                "click split (%s): features of training rows from %d sessions, labels from %d",
                how, feature_log[C.SESSION_ID].nunique(), label_log[C.SESSION_ID].nunique(),
            )  # fmt: skip
        else:
            labels = click_labels(table, log, options.labels)
            grade = labels.grade
        table[C.Y_CLICK] = grade
        table[CLICK_ESTIMATE] = labels.estimate
    if dataset.qrels is not None and C.Y_EXPERT not in table.columns:
        grades = dataset.qrels.set_index([C.QID, C.DOCID])[C.GRADE]
        index = pd.MultiIndex.from_frame(table[[C.QID, C.DOCID]])
        table[C.Y_EXPERT] = grades.reindex(index).fillna(0).to_numpy(dtype=np.float64)
    if dataset.llm_labels is not None:
        table = attach_llm_labels(table, dataset.llm_labels)
    return table, feats


def attach_llm_labels(table: pd.DataFrame, llm_labels: pd.DataFrame) -> pd.DataFrame:
    """Join ``y_llm``, ``y_llm_soft`` and the judge's raw score (as ``semantic_similarity``) by (qid, docid)."""
    out = table.copy()
    keyed = llm_labels.set_index([C.QID, C.DOCID])
    index = pd.MultiIndex.from_frame(out[[C.QID, C.DOCID]])
    out[C.Y_LLM] = keyed[C.Y_LLM].reindex(index).to_numpy()
    # The judge's continuous grade (labels written before it existed: the grade itself).
    # Rows written before it existed (old tables concatenated with new ones) read the grade too.
    soft = keyed[LLM_SOFT].fillna(keyed[C.Y_LLM]) if LLM_SOFT in keyed.columns else keyed[C.Y_LLM]
    out[LLM_SOFT] = soft.reindex(index).to_numpy()
    if LLM_SCORE in keyed.columns:
        out[SEMANTIC] = keyed[LLM_SCORE].reindex(index).to_numpy()
    return out


#: The raw inputs shown as systems next to the learned models: a learned model should not
#: score below the best raw feature it is given (name -> (column, sign: higher is better)).
RAW_BASELINES: dict[str, tuple[str, float]] = {
    "raw_ctr": ("qd_ctr_smooth", 1.0),
    "raw_debiased_ctr": ("qd_debiased_ctr_smooth", 1.0),
    "logged_order": ("qd_mean_position", -1.0),
    # The mean dwell of a pair's clicks: where a log records dwell, often the strongest
    # click input (never-clicked pairs rank below every clicked one, as never-shown ones do).
    "raw_dwell": ("qd_mean_dwell", 1.0),
    "raw_semantic": (SEMANTIC, 1.0),
}


#: The ``rule`` baseline: the click percentile for queries with at least this many sessions.
RULE_MIN_SESSIONS = 3
#: Name of the untuned two-branch baseline (see :func:`rule_scores`).
RULE = "rule"


def raw_baseline_scores(table: pd.DataFrame, name: str) -> np.ndarray | None:
    """The scores of raw baseline ``name`` (of :data:`RAW_BASELINES`) for the table's rows:
    its column times its sign, a pair without the value below every pair of its query with
    one (:func:`~hybridrank.ensemble.missing_last`). None when the table has no value of it
    (an LLM judge leaves no raw score)."""
    column, sign = RAW_BASELINES[name]
    if column not in table.columns:
        return None
    values = table[column].to_numpy(dtype=np.float64)
    if not np.isfinite(values).any():
        return None
    return missing_last(values, sign=sign, qid=table[C.QID].to_numpy())


def anchor_scores(table: pd.DataFrame, name: str) -> np.ndarray:
    """A stacker anchor's scores as the experiment's stacker is fitted on them.

    A raw baseline's come from its feature (:func:`raw_baseline_scores`), not from
    its report column: that one is in the text tie order, which would turn a query
    whose pairs all lack the feature (every value on the floor, z-score 0) into a
    text ranking. A system's are its column.
    """
    if name in RAW_BASELINES:
        scores = raw_baseline_scores(table, name)
        if scores is not None:
            return scores
    return table[name].to_numpy(dtype=np.float64)


def add_raw_baselines(table: pd.DataFrame) -> list[str]:
    """Add a score column per raw baseline whose input the table holds (with at least one
    value), and ``rule``; returns their names.

    A pair without the signal (never shown, so no click rate) ranks below every
    pair with it.
    """
    added = []
    for name in RAW_BASELINES:
        values = raw_baseline_scores(table, name)
        if values is not None:
            table[name] = values
            added.append(name)
    rule = rule_scores(table)
    if rule is not None:
        table[RULE] = rule
        added.append(RULE)
    return added


def _percentile(table: pd.DataFrame, column: str) -> np.ndarray:
    """Within-query percentile rank of ``column`` in (0, 1]; NaN stays NaN."""
    return table.groupby(C.QID, sort=False)[column].rank(pct=True).to_numpy(dtype=np.float64)


def text_scores(table: pd.DataFrame) -> np.ndarray | None:
    """The text order of ``rule`` and of tie-breaking: the mean of the semantic-similarity
    and BM25 within-query percentiles (either alone where the table lacks the other;
    a pair without either scores 0). None when the table has neither column."""
    text_columns = [c for c in (SEMANTIC, C.BM25) if c in table.columns]
    if not text_columns:
        return None
    return text_order([table[c] for c in text_columns], qid=table[C.QID].to_numpy())


def rule_scores(table: pd.DataFrame) -> np.ndarray | None:
    """The untuned baseline every learned fusion must beat (None without text or click signal).

    Queries with at least :data:`RULE_MIN_SESSIONS` sessions rank by the debiased
    CTR's within-query percentile (pairs never shown below every shown pair, in
    text order); other queries, and never-shown pairs, by the mean of the
    semantic-similarity and BM25 percentiles (BM25 alone without the judge).
    """
    click = "qd_debiased_ctr_smooth"
    text = text_scores(table)
    if text is None and click not in table.columns:
        return None
    if text is None:
        text = np.zeros(len(table))
    if click not in table.columns or C.FREQ not in table.columns:
        return text
    ctr = _percentile(table, click)
    frequent = table[C.FREQ].to_numpy(dtype=np.float64) >= RULE_MIN_SESSIONS
    # Shown pairs of frequent queries score 1 + percentile (above every text score in [0, 1]).
    return np.where(frequent & np.isfinite(ctr), 1.0 + np.nan_to_num(ctr), text)


def evaluation_rows(table: pd.DataFrame) -> np.ndarray:
    """Rows that count in an evaluation: every query but the labelled tuning set."""
    if TUNING not in table.columns:
        return np.ones(len(table), dtype=bool)
    return ~table[TUNING].to_numpy(dtype=bool)


__all__ = [
    "CLICK_ESTIMATE",
    "RAW_BASELINES",
    "RULE",
    "RULE_MIN_SESSIONS",
    "SEMANTIC",
    "TableOptions",
    "add_raw_baselines",
    "anchor_scores",
    "attach_llm_labels",
    "build_table",
    "evaluation_rows",
    "raw_baseline_scores",
    "rule_scores",
    "text_scores",
]
