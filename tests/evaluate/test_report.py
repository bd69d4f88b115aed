from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hybridrank import columns as C
from hybridrank.evaluate import evaluate_table, ndcg_at_k


def _table(rng: np.random.Generator, n_q: int = 60) -> pd.DataFrame:
    sizes = rng.integers(3, 15, n_q)
    qid = np.repeat([f"q{i:03d}" for i in range(n_q)], sizes)
    y = rng.integers(0, 3, qid.size)
    y[: sizes[0]] = 0  # the first query holds no relevant candidate
    bucket = np.repeat(rng.choice(["low", "mid", "high"], n_q), sizes)
    good = y + rng.normal(0, 0.5, qid.size)
    bad = rng.normal(size=qid.size)
    return pd.DataFrame({C.QID: qid, C.Y_EXPERT: y, C.BUCKET: bucket, "good": good, "bad": bad})


def test_report_numbers_match_metrics(rng: np.random.Generator, tmp_path: Path) -> None:
    table = _table(rng)
    report = evaluate_table(
        table,
        ["good", "bad"],
        metrics=["ndcg@10", "mrr"],
        bucket_order=["low", "mid", "high"],
        baseline="bad",
        title="test",
        n_bootstrap=200,
        n_permutations=500,
    )
    per_q = ndcg_at_k(table["good"], table[C.Y_EXPERT], qid=table[C.QID], k=10)
    row = report.summary.query("system == 'good' and bucket == 'all'").iloc[0]
    assert row["ndcg@10"] == pytest.approx(np.nanmean(per_q))
    assert row["n_no_relevant"] == 1
    assert row["n"] == 59
    assert row["ndcg@10_ci_low"] < row["ndcg@10"] < row["ndcg@10_ci_high"]
    assert row["ndcg@10_p_vs_bad"] < 0.01
    assert report.buckets == ("low", "mid", "high", "all")

    text = report.to_text()
    assert "left out of every mean: 1" in text and "good" in text and "*" in text
    paths = report.write(tmp_path)
    assert paths["png:ndcg@10"].stat().st_size > 1000
    assert paths["png:ndcg@10"].read_bytes()[:4] == b"\x89PNG"
    payload = json.loads(paths["json"].read_text())
    assert payload["systems"] == ["good", "bad"]
    csv = pd.read_csv(paths["csv"])
    assert set(csv[C.BUCKET]) == {"low", "mid", "high", "all"}
    assert "| system" in paths["markdown"].read_text()


def test_report_missing_columns(rng: np.random.Generator) -> None:
    with pytest.raises(KeyError, match="lacks columns"):
        evaluate_table(_table(rng), ["nope"])


def test_report_without_buckets(rng: np.random.Generator) -> None:
    table = _table(rng).drop(columns=[C.BUCKET])
    report = evaluate_table(table, ["good"], bucket=None, n_bootstrap=50)
    assert report.buckets == ("all",)


def test_negative_labels_count_as_not_relevant(rng: np.random.Generator) -> None:
    table = _table(rng)
    junk = table.assign(**{C.Y_EXPERT: np.where(table[C.Y_EXPERT] == 0, -1, table[C.Y_EXPERT])})
    kwargs = {"metrics": ["ndcg@10"], "n_bootstrap": 50, "n_permutations": 50}
    want = evaluate_table(table, ["good"], **kwargs).summary
    got = evaluate_table(junk, ["good"], **kwargs).summary
    pd.testing.assert_series_equal(got["ndcg@10"], want["ndcg@10"])
