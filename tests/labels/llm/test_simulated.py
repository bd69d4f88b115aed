"""The simulated judge: the expert grade plus seeded noise, a judge whose quality is a parameter."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from hybridrank import columns as C
from hybridrank.cli import main
from hybridrank.data import Dataset
from hybridrank.errors import ConfigError, DataFormatError, MissingInputError
from hybridrank.labels.llm import ANNOTATORS, LLM_SCORE, Pair, SimulatedJudge, make_annotator

from ...conftest import world_build_args


@pytest.fixture
def qrels(tmp_path: Path) -> Path:
    path = tmp_path / "qrels"
    path.write_text("q1 0 d1 2\nq1 0 d2 1\nq1 0 d3 0\nq2 0 d1 1\n")
    return path


def _pair(qid: str, docid: str, text: str = "") -> Pair:
    return Pair(qid, docid, f"query {qid}", text or f"document {docid} of {qid}")


def test_without_noise_the_score_is_the_grade_on_the_judge_scale(qrels: Path) -> None:
    judge = SimulatedJudge(qrels=qrels, noise=0.0)
    out = judge.annotate(
        [_pair("q1", "d1"), _pair("q1", "d2"), _pair("q1", "d3"), _pair("q1", "d9")]
    )
    # Top grade 2 maps onto 3; a pair the qrels do not list is grade 0.
    assert [j.score for j in out] == [3.0, 1.5, 0.0, 0.0]
    assert all(j.ok and j.grade is None for j in out)  # grades come from the calibration
    assert judge.backend == "simulated" and not judge.is_llm
    assert SimulatedJudge(qrels=qrels, noise=0.0, top_grade=3).annotate([_pair("q1", "d1")])[
        0
    ].score == pytest.approx(2.0)


def test_the_error_is_fixed_per_texts_and_has_the_given_spread(qrels: Path) -> None:
    judge = SimulatedJudge(qrels=qrels, noise=1.5, seed=3)
    pairs = [_pair("q1", "d3", f"text {i}") for i in range(4000)]
    scores = np.array([j.score for j in judge.annotate(pairs)])
    assert scores.std() == pytest.approx(1.5, rel=0.06) and abs(scores.mean()) < 0.1
    again = np.array(
        [j.score for j in SimulatedJudge(qrels=qrels, noise=1.5, seed=3).annotate(pairs)]
    )
    assert np.array_equal(scores, again)  # a rerun, or the answer cache, agrees
    other = np.array(
        [j.score for j in SimulatedJudge(qrels=qrels, noise=1.5, seed=4).annotate(pairs)]
    )
    assert not np.array_equal(scores, other)
    # The same texts under another id get the same error (the cache keys answers by text).
    a, b = judge.annotate(
        [Pair("q1", "d3", "same query", "same"), Pair("q2", "d7", "same query", "same")]
    )
    assert a.score == pytest.approx(b.score)


def test_cache_identity_names_the_qrels_noise_and_seed(qrels: Path, tmp_path: Path) -> None:
    judge = SimulatedJudge(qrels=qrels, noise=1.0)
    other = tmp_path / "other"
    other.write_text("q3 0 d1 1\n")
    assert SimulatedJudge(qrels=other, noise=1.0).model != judge.model
    assert SimulatedJudge(qrels=qrels, noise=2.0).prompt_version != judge.prompt_version
    assert SimulatedJudge(qrels=qrels, noise=1.0, seed=1).prompt_version != judge.prompt_version
    # Several files: one judge over all their grades.
    both = SimulatedJudge(qrels=[str(qrels), str(other)], noise=0.0)
    assert both.annotate([_pair("q1", "d2")])[0].score == pytest.approx(1.5)
    assert both.annotate([_pair("q3", "d1")])[0].score == pytest.approx(1.5)
    conflict = tmp_path / "conflict"
    conflict.write_text("q3 0 d1 1\nq1 0 d1 1\n")
    with pytest.raises(
        DataFormatError, match=r"conflict.*line 2.*\(q1, d1\) is grade 1 here and grade 2 in"
    ):
        SimulatedJudge(qrels=[qrels, conflict])
    assert SimulatedJudge(qrels=qrels, noise=1.0, top_grade=3).model != judge.model


def test_text_twins_graded_apart_get_their_own_answers(qrels: Path, tmp_path: Path) -> None:
    """The cache keys answers by texts; the grade is part of the question's version, so a
    document listed twice (same text, other grade) is not answered by its twin."""
    from hybridrank.labels.llm import AnswerCache, annotate_pairs

    judge = SimulatedJudge(qrels=qrels, noise=0.0)
    twins = [
        Pair("q1", "d1", "same query", "same text"),
        Pair("q1", "d3", "same query", "same text"),
    ]
    with AnswerCache(tmp_path / "cache.sqlite") as cache:
        labels, first = annotate_pairs(judge, twins, cache, progress=False)
        again, second = annotate_pairs(judge, twins, cache, progress=False)
    assert (first.distinct, first.new, second.cached, second.new) == (2, 2, 2, 0)
    assert list(labels["score"]) == [3.0, 0.0] == list(again["score"])


def test_registered_and_its_inputs_checked(qrels: Path, tmp_path: Path) -> None:
    assert ANNOTATORS["simulated"] is SimulatedJudge
    assert isinstance(make_annotator("simulated", qrels=str(qrels)), SimulatedJudge)
    with pytest.raises(ConfigError, match="did you mean 'noise'"):
        make_annotator("simulated", qrels=str(qrels), noize=1.0)
    with pytest.raises(MissingInputError, match="nope: qrels file of the simulated judge"):
        SimulatedJudge(qrels=tmp_path / "nope")
    with pytest.raises(ConfigError, match="noise must be a finite number >= 0"):
        SimulatedJudge(qrels=qrels, noise=-1.0)
    with pytest.raises(ConfigError, match="qrels names no file"):
        SimulatedJudge(qrels=[])
    zeros = tmp_path / "zeros"
    zeros.write_text("q1 0 d1 0\n")
    with pytest.raises(ConfigError, match="top_grade must be >= 1"):
        SimulatedJudge(qrels=zeros)
    with pytest.raises(ConfigError, match="top_grade must be >= 1 and >= the largest grade"):
        SimulatedJudge(qrels=qrels, top_grade=1)
    for bad_params, field in (
        ({"noise": True}, "noise"), ({"noise": float("inf")}, "noise"), ({"noise": "x"}, "noise"),
        ({"seed": 1.5}, "seed"), ({"top_grade": "3"}, "top_grade"), ({"qrels": [1]}, "qrels"),
    ):  # fmt: skip
        params = {"qrels": str(qrels), **bad_params}
        with pytest.raises(ConfigError, match=rf"'simulated' backend: {field} must be"):
            make_annotator("simulated", **params)
    bad = tmp_path / "bad"
    bad.write_text("q1 0 d1 2\nq1 0 d2\n")
    with pytest.raises(DataFormatError, match="line 2"):
        SimulatedJudge(qrels=bad)


def test_annotate_cli_measures_the_judge_it_was_given(
    tmp_path: Path, tiny_collection, capsys: pytest.CaptureFixture, monkeypatch
) -> None:
    """Through `annotate` and `annotate report`: less noise, more agreement with the experts."""
    monkeypatch.setenv("HYBRIDRANK_CACHE", str(tmp_path / "cache"))
    build = world_build_args(tiny_collection, tmp_path, tuning_queries=8)
    qrels = tmp_path / "trec" / "qrels"
    kappas = {}
    for noise in (0.0, 3.0):
        world = tmp_path / f"world{noise:g}"
        assert main([*build, "--out", str(world)]) == 0
        judge = tmp_path / f"judge{noise:g}.yaml"
        judge.write_text(yaml.safe_dump({"annotate": {
            "backend": "simulated", "params": {"qrels": str(qrels), "noise": noise}}}))  # fmt: skip
        capsys.readouterr()
        assert main(["annotate", "--dataset", str(world), "--config", str(judge)]) == 0
        assert "simulated" in capsys.readouterr().out
        labels = pd.read_parquet(world / "llm_labels.parquet")
        assert labels[C.Y_LLM].notna().all()
        if noise == 0.0:  # the score is the expert grade, on the judge's 0-3 scale
            expert = Dataset.read(world).candidates.set_index([C.QID, C.DOCID])[C.Y_EXPERT]
            got = labels.set_index([C.QID, C.DOCID])[LLM_SCORE]
            top = tiny_collection.qrels[C.GRADE].max()
            assert np.allclose(got, expert.reindex(got.index).fillna(0) * 3 / top)
        assert main(["annotate", "report", "--dataset", str(world), "--draws", "0"]) == 0
        report = json.loads((world / "agreement" / "agreement.json").read_text())
        kappas[noise] = float(report["overall"]["kappa_quadratic"])
    # BM25 and the term overlap, which the calibration fuses, grade the tiny collection
    # well on their own, so noise costs less here than on a real one (NFCorpus: 0.78 at 1.0).
    assert kappas[0.0] > 0.95 and kappas[0.0] > kappas[3.0]
