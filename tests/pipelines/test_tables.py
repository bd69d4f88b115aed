"""The raw-input baselines and the untuned ``rule`` baseline of every report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hybridrank import columns as C
from hybridrank.errors import ConfigError
from hybridrank.pipelines import (
    RAW_BASELINES,
    RULE,
    ExperimentConfig,
    add_raw_baselines,
    raw_baseline_scores,
    rule_scores,
)
from hybridrank.pipelines._experiment import ANCHOR_SYSTEMS
from hybridrank.pipelines._tables import SEMANTIC, text_scores


def _table() -> pd.DataFrame:
    # q1: a frequent query (5 sessions); q2: a rare one (1 session).
    return pd.DataFrame(
        {
            C.QID: ["q1"] * 4 + ["q2"] * 3,
            C.DOCID: ["a", "b", "c", "d", "a", "b", "c"],
            C.FREQ: [5] * 4 + [1] * 3,
            "qd_debiased_ctr_smooth": [0.1, 0.5, np.nan, 0.3, 0.9, 0.1, np.nan],
            C.BM25: [3.0, 1.0, 9.0, 2.0, 1.0, 2.0, 3.0],
            SEMANTIC: [0.2, 0.1, 0.9, 0.3, 0.1, 0.2, 0.3],
        }
    )


def _order(table: pd.DataFrame, scores: np.ndarray, qid: str) -> list[str]:
    rows = table[C.QID] == qid
    part = table.loc[rows].assign(s=scores[rows.to_numpy()])
    return part.sort_values("s", ascending=False)[C.DOCID].tolist()


def test_rule_ranks_frequent_queries_by_click_rate_and_rare_ones_by_text() -> None:
    table = _table()
    scores = rule_scores(table)
    assert scores is not None
    # Frequent: shown pairs by debiased CTR; the never-shown pair last, despite top BM25.
    assert _order(table, scores, "q1") == ["b", "d", "a", "c"]
    # Rare: clicks ignored (a has the top CTR), mean of BM25 and semantic percentiles.
    assert _order(table, scores, "q2") == ["c", "b", "a"]


def test_rule_without_the_judge_uses_bm25_alone_and_without_clicks_text_only() -> None:
    table = _table().drop(columns=[SEMANTIC])
    scores = rule_scores(table)
    assert scores is not None
    assert _order(table, scores, "q2") == ["c", "b", "a"]
    text_only = rule_scores(table.drop(columns=["qd_debiased_ctr_smooth"]))
    assert text_only is not None
    assert _order(table, text_only, "q1") == ["c", "a", "d", "b"]
    assert rule_scores(table[[C.QID, C.DOCID, C.FREQ]]) is None


def test_add_raw_baselines_names_rule_and_puts_unshown_pairs_last() -> None:
    table = _table()
    added = add_raw_baselines(table)
    assert added == ["raw_debiased_ctr", "raw_semantic", RULE]
    q1 = table[C.QID] == "q1"
    unshown = q1 & table["qd_debiased_ctr_smooth"].isna()
    assert (table.loc[unshown, "raw_debiased_ctr"] < table.loc[q1 & ~unshown, "raw_debiased_ctr"].min()).all()
    # An LLM judge leaves the raw score empty: no raw_semantic (it would rank as BM25 does).
    judged_by_llm = _table().assign(**{SEMANTIC: np.nan})
    assert add_raw_baselines(judged_by_llm) == ["raw_debiased_ctr", RULE]


def test_raw_dwell_ranks_clicked_pairs_by_dwell_and_the_floor_is_per_query() -> None:
    table = _table()
    dwell = np.where(table["qd_debiased_ctr_smooth"].notna(), np.arange(len(table)) + 10.0, np.nan)
    table["qd_mean_dwell"] = dwell
    assert "raw_dwell" in add_raw_baselines(table)
    for _, rows in table.groupby(C.QID):
        clicked = rows["qd_mean_dwell"].notna()
        if clicked.all() or not clicked.any():
            continue
        # Clicked pairs in dwell order, every never-clicked one just below the query's lowest.
        assert rows.loc[clicked, "raw_dwell"].tolist() == rows.loc[clicked, "qd_mean_dwell"].tolist()
        lowest = rows.loc[clicked, "qd_mean_dwell"].min()
        assert (rows.loc[~clicked, "raw_dwell"] == lowest - 1.0).all()
    np.testing.assert_array_equal(raw_baseline_scores(table, "raw_dwell"), table["raw_dwell"])
    assert raw_baseline_scores(table.drop(columns=["qd_mean_dwell"]), "raw_dwell") is None


def test_raw_baselines_are_stacker_anchors_of_the_experiment() -> None:
    config = ExperimentConfig.from_dict({"stacker": {"anchors": ["famol", "raw_dwell"]}})
    assert config.stacker.anchors == ("famol", "raw_dwell")
    assert set(RAW_BASELINES) <= set(ANCHOR_SYSTEMS)
    with pytest.raises(ConfigError, match="raw_dwel"):
        ExperimentConfig.from_dict({"stacker": {"anchors": ["raw_dwel"]}})


def test_text_scores_average_the_percentiles_and_fall_back_to_one_column() -> None:
    table = _table()
    text = text_scores(table)
    assert text is not None
    # q2: BM25 percentiles (1/3, 2/3, 1) and semantic the same order: the mean keeps it.
    np.testing.assert_allclose(text[4:], [1 / 3, 2 / 3, 1.0])
    bm25_only = text_scores(table.drop(columns=[SEMANTIC]))
    assert bm25_only is not None
    np.testing.assert_allclose(bm25_only[:4], [0.75, 0.25, 1.0, 0.5])
    assert text_scores(table[[C.QID, C.DOCID]]) is None


def test_experiment_tie_break_is_validated() -> None:
    from hybridrank.errors import ConfigError
    from hybridrank.pipelines import ExperimentConfig

    assert ExperimentConfig().tie_break == "text"
    assert ExperimentConfig.from_dict({"tie_break": "none"}).tie_break == "none"
    with pytest.raises(ConfigError, match="tie_break"):
        ExperimentConfig.from_dict({"tie_break": "bm25"})


def test_experiment_names_are_checked_when_the_config_is_read() -> None:
    from hybridrank.errors import ConfigError
    from hybridrank.pipelines import ExperimentConfig

    with pytest.raises(ConfigError, match=r"stacker.anchors: \['nosuch'\] are not systems"):
        ExperimentConfig.from_dict({"stacker": {"anchors": ["famol", "nosuch"]}})
    with pytest.raises(ConfigError, match=r"experiment\.metrics: metric 'ndcg@0'"):
        ExperimentConfig.from_dict({"metrics": ["ndcg@0"]})
    assert ExperimentConfig.from_dict({"stacker": {"anchors": ["llm_gbdt"]}}).stacker.anchors == (
        "llm_gbdt",
    )


def test_feature_names_suggest_the_group_meant_and_a_skipped_group_is_said(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from hybridrank.errors import DataFormatError
    from hybridrank.pipelines import resolve_features

    table = pd.DataFrame({C.QID: ["a"], "bm25": [1.0], "term_overlap": [0.5], "doc_len": [3.0],
                          "query_len": [2.0], "tfidf_cosine": [0.1]})  # fmt: skip
    with pytest.raises(DataFormatError, match=r"'txt' -> 'text'"):
        resolve_features(["click", "txt"], table)
    with caplog.at_level("WARNING"):
        names = resolve_features(["text", "semantic"], table)
    assert "term_overlap" in names
    assert "feature group 'semantic'" in caplog.text and "annotate" in caplog.text


def test_the_click_group_splits_into_pair_document_and_query_features() -> None:
    from hybridrank.features import CLICK_FEATURES, DOC_FEATURES, PAIR_FEATURES, QUERY_FEATURES
    from hybridrank.pipelines import resolve_features

    table = pd.DataFrame({name: [1.0] for name in CLICK_FEATURES})
    whole = resolve_features(["click"], table)
    parts = resolve_features(["click_pair", "click_doc", "click_query"], table)
    assert sorted(whole) == sorted(parts) and len(parts) == len(CLICK_FEATURES)
    # Without the document's clicks over other queries: what never-searched queries extrapolate from.
    no_doc = resolve_features(["click_pair", "click_query"], table)
    assert not set(no_doc) & set(DOC_FEATURES)
    assert set(no_doc) == set(PAIR_FEATURES) | set(QUERY_FEATURES)
