from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hybridrank import columns as C
from hybridrank.errors import ConfigError, DataFormatError
from hybridrank.features import (
    CLICK_FEATURES,
    ClickFeatureConfig,
    FeatureSchema,
    compute_click_features,
    compute_text_features,
    join_click_features,
)


def _log() -> pd.DataFrame:
    # Session 0: q1 shows a,b,c; clicks b (dwell 40). Session 1: q1 shows b,a,c; clicks b (5) and c (60).
    # Session 2: q2 shows a,d; no click.
    rows = [
        (0, 0.0, "q1", "a", 1, 0, np.nan),
        (0, 0.0, "q1", "b", 2, 1, 40.0),
        (0, 0.0, "q1", "c", 3, 0, np.nan),
        (1, 1.0, "q1", "b", 1, 1, 5.0),
        (1, 1.0, "q1", "a", 2, 0, np.nan),
        (1, 1.0, "q1", "c", 3, 1, 60.0),
        (2, 2.0, "q2", "a", 1, 0, np.nan),
        (2, 2.0, "q2", "d", 2, 0, np.nan),
    ]
    return pd.DataFrame(rows, columns=list(C.IMPRESSION_COLUMNS))


def test_hand_computed_pair_doc_query_features() -> None:
    cfg = ClickFeatureConfig(examination=(1.0, 0.5, 0.25), prior_strength=0.0)
    f = compute_click_features(_log(), cfg)
    pairs = f.pairs.set_index([C.QID, C.DOCID])
    b = pairs.loc[("q1", "b")]
    assert b["qd_impressions"] == 2 and b["qd_clicks"] == 2
    assert b["qd_ctr"] == 1.0
    assert b["qd_debiased_ctr"] == pytest.approx(2 / (0.5 + 1.0))
    assert b["qd_mean_position"] == 1.5
    assert b["qd_first_click_rate"] == 1.0  # first click in both sessions
    assert b["qd_last_click_rate"] == 0.5  # last click in session 0 only
    assert b["qd_mean_dwell"] == pytest.approx(22.5)
    assert b["qd_sat_click_rate"] == 0.5  # 40 s >= 30 s; 5 s is not
    a = pairs.loc[("q1", "a")]
    assert a["qd_skip_above_rate"] == 1.0  # skipped above a click in both q1 sessions
    assert np.isnan(a["qd_mean_dwell"])
    c = pairs.loc[("q1", "c")]
    assert c["qd_skip_above_rate"] == 0.0 and c["qd_last_click_rate"] == 0.5

    docs = f.docs.set_index(C.DOCID)
    assert docs.loc["a", "doc_impressions"] == 3 and docs.loc["a", "doc_n_queries"] == 2
    assert docs.loc["b", "doc_sat_share"] == 0.5
    queries = f.queries.set_index(C.QID)
    assert queries.loc["q1", "q_sessions"] == 2
    assert queries.loc["q2", "q_abandonment_rate"] == 1.0
    assert queries.loc["q1", "q_clicks_per_session"] == 1.5
    # q1 clicks: b twice, c once -> entropy of (2/3, 1/3)
    p = np.array([2 / 3, 1 / 3])
    assert queries.loc["q1", "q_click_entropy"] == pytest.approx(-(p * np.log2(p)).sum())


def test_mean_dwell_averages_the_clicks_whose_dwell_is_known() -> None:
    log = _log()
    log.loc[3, C.DWELL_S] = np.nan  # b's 5 s click in session 1: dwell unknown
    pairs = compute_click_features(log).pairs.set_index([C.QID, C.DOCID])
    assert pairs.loc[("q1", "b"), "qd_mean_dwell"] == pytest.approx(40.0)  # not (40 + 0) / 2
    assert pairs.loc[("q1", "b"), "qd_clicks"] == 2
    # A log that records no dwell at all has no mean dwell (not 0 for every clicked pair).
    blind = compute_click_features(log.assign(**{C.DWELL_S: np.nan})).pairs
    assert blind["qd_mean_dwell"].isna().all()
    assert blind["qd_clicks"].sum() == 3


def test_smoothing_pulls_rare_pairs_to_the_prior() -> None:
    f = compute_click_features(_log(), ClickFeatureConfig(prior_strength=100.0))
    pairs = f.pairs.set_index([C.QID, C.DOCID])
    global_ctr = 3 / 8
    assert pairs.loc[("q1", "b"), "qd_ctr_smooth"] == pytest.approx((2 + 100 * global_ctr) / 102)


def test_join_keeps_rows_and_marks_unseen() -> None:
    cand = pd.DataFrame({C.QID: ["q1", "q1", "q2", "q3"], C.DOCID: ["b", "z", "d", "a"]})
    out = join_click_features(cand, compute_click_features(_log()))
    assert list(out[C.DOCID]) == ["b", "z", "d", "a"]
    assert set(CLICK_FEATURES) <= set(out.columns)
    z = out.iloc[1]
    assert z["qd_impressions"] == 0 and np.isnan(z["qd_ctr"])
    assert out.iloc[3]["doc_impressions"] == 3  # document evidence from another query
    assert out.iloc[3]["q_sessions"] == 0


def test_same_result_with_dask_if_available() -> None:
    dd = pytest.importorskip("dask.dataframe")
    log = _log()
    f_pd = compute_click_features(log)
    f_dd = compute_click_features(dd.from_pandas(log, npartitions=2))
    for a, b in ((f_pd.pairs, f_dd.pairs), (f_pd.docs, f_dd.docs), (f_pd.queries, f_dd.queries)):
        key = [c for c in (C.QID, C.DOCID) if c in a.columns]
        left = a.sort_values(key).reset_index(drop=True)
        right = b.compute().sort_values(key).reset_index(drop=True)
        pd.testing.assert_frame_equal(left, right, check_dtype=False)


def test_config_validation() -> None:
    with pytest.raises(ConfigError):
        ClickFeatureConfig(prior_strength=-1)
    with pytest.raises(ConfigError):
        ClickFeatureConfig.from_dict({"examination": [1.0, 0.0]})
    with pytest.raises(KeyError, match="lacks columns"):
        compute_click_features(_log().drop(columns=[C.DWELL_S]))


def test_text_features() -> None:
    queries = pd.DataFrame({C.QID: ["q"], C.TEXT: ["green tea"]})
    docs = pd.DataFrame({C.DOCID: ["d1", "d2"], C.TEXT: ["green tea and heart", "coffee"]})
    cand = pd.DataFrame({C.QID: ["q", "q"], C.DOCID: ["d1", "d2"]})
    out = compute_text_features(cand, queries, docs, stopwords=frozenset({"and"}))
    assert out["term_overlap"].tolist() == [1.0, 0.0]
    assert out["query_len"].tolist() == [2.0, 2.0]
    assert out["doc_len"].tolist() == [3.0, 1.0]
    assert out["tfidf_cosine"].iloc[0] > 0.5 and out["tfidf_cosine"].iloc[1] == 0.0
    with pytest.raises(KeyError, match="unknown"):
        compute_text_features(cand.assign(docid=["d1", "zz"]), queries, docs)


def test_schema_hash_and_checks(tmp_path) -> None:
    frame = pd.DataFrame({"a": [1.0], "b": [2], "s": ["x"]})
    schema = FeatureSchema.from_frame(frame, ["a", "b"])
    assert schema.hash == FeatureSchema.from_frame(frame, ["a", "b"]).hash
    assert schema.hash != FeatureSchema.from_frame(frame, ["b", "a"]).hash
    schema.save(tmp_path / "schema.json")
    assert FeatureSchema.load(tmp_path / "schema.json") == schema
    with pytest.raises(DataFormatError, match="missing"):
        schema.check(frame.drop(columns=["b"]))
    with pytest.raises(DataFormatError, match="numeric"):
        FeatureSchema.from_frame(frame, ["s"]).check(frame)
    text = (tmp_path / "schema.json").read_text().replace('"b"', '"c"')
    (tmp_path / "schema.json").write_text(text)
    with pytest.raises(DataFormatError, match="edited"):
        FeatureSchema.load(tmp_path / "schema.json")
