"""Checks on the real data in ../shared/datasets (marked; CI runs them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hybridrank import columns as C
from hybridrank.data import (
    DEFAULT_EXAMINATION,
    ctr_by_rank,
    examination_from_ctr,
    load_nfcorpus,
    read_clara2,
    read_yandex_sample,
)
from hybridrank.evaluate import ndcg_at_k
from hybridrank.pipelines import DataConfig, WorldConfig, build_world

pytestmark = pytest.mark.shared_data


def test_nfcorpus_release_counts(shared_datasets: Path) -> None:
    col = load_nfcorpus(shared_datasets / "nfcorpus")
    assert col.n_queries == 650
    assert col.n_docs == 3395
    assert len(col.qrels) > 30_000
    assert set(col.qrels[C.GRADE]) == {1, 2, 3}
    vid = load_nfcorpus(shared_datasets / "nfcorpus", query_type="vid-titles")
    assert vid.n_queries < 650


def test_default_examination_comes_from_the_real_logs(shared_datasets: Path) -> None:
    logs = shared_datasets / "clicklogs"
    yandex = read_yandex_sample(logs / "yandex-wscd-sample" / "trainSample")
    clara = read_clara2(logs / "clara2" / "CLARA2SearchLog_beta")
    assert yandex[C.SESSION_ID].nunique() == 35_064
    assert clara[C.SESSION_ID].nunique() == 31_564
    # Real CTR by rank of the Yandex sample (README of the datasets: .26/.25/.17/.15/.11/.07).
    np.testing.assert_allclose(
        ctr_by_rank(yandex)[:6], [0.26, 0.25, 0.17, 0.15, 0.11, 0.07], atol=0.01
    )
    curves = [examination_from_ctr(ctr_by_rank(log)) for log in (yandex, clara)]
    mean = np.minimum.accumulate(np.mean(curves, axis=0))
    np.testing.assert_allclose(mean, DEFAULT_EXAMINATION, atol=5e-4)


def test_default_world_bm25_baseline(shared_datasets: Path) -> None:
    world = build_world(WorldConfig(data=DataConfig(path=str(shared_datasets / "nfcorpus"))))
    q = world.splits
    share_low = np.mean(q[C.BUCKET] == "low")
    assert 0.4 < share_low < 0.65  # about half of the queries are rare
    assert (q[C.BUCKET] == "high").sum() >= 20
    cand = world.table()
    v = ndcg_at_k(cand[C.BM25], cand[C.Y_EXPERT], qid=cand[C.QID], k=10)
    assert 0.55 < np.nanmean(v) < 0.65
    # Queries with candidates but no relevant one among them are NaN (left out of the means).
    has_relevant = cand.groupby(C.QID, sort=False)[C.Y_EXPERT].max() > 0
    assert int(np.isnan(v).sum()) == int((~has_relevant).sum())


def test_click_models_on_real_logs(
    shared_datasets: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from hybridrank.cli import main

    assert main(["clickmodel", "fit", "--clicklogs", str(shared_datasets / "clicklogs")]) == 0
    out = capsys.readouterr().out
    assert "pbm on clara2" in out and "| yandex | dbn" in out
    curve = out.split("default curve")[1]
    assert "|      1 |" in curve and "|    1.0 |" not in curve
    # A folder with one of the two logs: fitted on it, the other named as absent.
    only = tmp_path / "only"
    only.mkdir()
    (only / "yandex-wscd-sample").symlink_to(shared_datasets / "clicklogs" / "yandex-wscd-sample")
    assert main(["clickmodel", "fit", "--clicklogs", str(only), "--models", "pbm"]) == 0
    out = capsys.readouterr().out
    assert "no clara2 log" in out and "| yandex | pbm" in out and "clara2 | pbm" not in out
