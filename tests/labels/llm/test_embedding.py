"""The embedded semantic judge with the packaged MiniLM (offline), and the annotate CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hybridrank import columns as C
from hybridrank.cli import main
from hybridrank.data import Dataset
from hybridrank.labels.llm import AnswerCache, EmbeddingJudge, Pair, annotate_pairs

from ...conftest import world_build_args


@pytest.fixture(scope="module")
def judge() -> EmbeddingJudge:
    return EmbeddingJudge(batch_size=16)


def test_scores_are_cosines_and_semantic(judge: EmbeddingJudge) -> None:
    pairs = [
        Pair(
            "q",
            "d1",
            "green tea and heart disease",
            "drinking green tea lowers cardiovascular risk",
        ),
        Pair("q", "d2", "green tea and heart disease", "the stock market fell sharply on monday"),
    ]
    out = judge.annotate(pairs)
    assert all(j.ok and j.grade is None for j in out)
    assert -1 <= out[1].score < out[0].score <= 1
    assert judge.backend == "embedding" and not judge.is_llm
    assert judge.model.startswith("model@") and len(judge.model) > 10


def test_each_text_encoded_once(judge: EmbeddingJudge, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    encoder = judge.encoder()
    original = encoder.encode

    def counting(texts, **kw):
        seen.append(len(texts))
        return original(texts, **kw)

    monkeypatch.setattr(encoder, "encode", counting)
    judge.close()  # clear the memo
    pairs = [Pair("q", f"d{i}", "same query", f"doc {i % 3}") for i in range(9)]
    judge.annotate(pairs)
    judge.annotate(pairs)
    assert sum(seen) == 4 * len(judge.views)  # 1 query + 3 documents, once per view


def test_two_views_score_the_larger_cosine_and_one_view_is_the_plain_cosine(
    judge: EmbeddingJudge,
) -> None:
    # A matching title followed by a long unrelated body: the head view sees the match.
    body = " ".join(["the stock market fell sharply on monday as traders sold shares"] * 20)
    pair = Pair("q", "d", "green tea and heart disease", "Green tea and heart disease. " + body)
    assert judge.views == (64, 256)
    two = judge.annotate([pair])[0]
    head = float(judge.embed([pair.query], 64)[0] @ judge.embed([pair.document], 64)[0])
    whole = float(judge.embed([pair.query], 256)[0] @ judge.embed([pair.document], 256)[0])
    assert head > whole
    assert two.score == pytest.approx(max(head, whole), abs=1e-6)
    assert "cosine_len64=" in two.raw and "cosine_len256=" in two.raw
    single = EmbeddingJudge(batch_size=16, head_tokens=None)
    assert single.views == (256,) and single.prompt_version == "cosine-v1-len256"
    assert single.annotate([pair])[0].score == pytest.approx(whole, abs=1e-6)
    assert judge.prompt_version != single.prompt_version  # separate cache entries


def test_head_view_must_be_shorter_than_the_body() -> None:
    from hybridrank.errors import ConfigError

    with pytest.raises(ConfigError, match="head_tokens"):
        EmbeddingJudge(head_tokens=256)


def test_annotate_cli_and_report(
    tmp_path: Path, tiny_collection, capsys: pytest.CaptureFixture, monkeypatch
) -> None:
    # The default answer cache is the one shared cache under $HYBRIDRANK_CACHE.
    monkeypatch.setenv("HYBRIDRANK_CACHE", str(tmp_path / "cache"))
    world = tmp_path / "world"
    build = world_build_args(tiny_collection, tmp_path, tuning_queries=5)
    assert main([*build, "--out", str(world)]) == 0
    capsys.readouterr()
    assert main(["annotate", "--dataset", str(world)]) == 0
    out = capsys.readouterr().out
    assert "semantic judge (not an LLM)" in out and "0 cached" in out
    assert (tmp_path / "cache" / "annotations.sqlite").exists()
    labels = pd.read_parquet(world / "llm_labels.parquet")
    assert labels[C.Y_LLM].notna().all() and set(labels[C.Y_LLM].unique()) <= {0.0, 1.0, 2.0, 3.0}
    # The calibration queries are the dataset's tuning set (about 5, at least a few per bucket).
    tuning = Dataset.read(world).tuning_qids
    assert 5 <= len(tuning) <= 8
    assert set(labels.loc[labels["calibration"], C.QID]) == tuning
    # A rerun asks the judge for nothing.
    assert main(["annotate", "--dataset", str(world)]) == 0
    assert "0 new" in capsys.readouterr().out
    assert main(["annotate", "report", "--dataset", str(world)]) == 0
    report = capsys.readouterr().out
    assert "weighted kappa (quadratic)" in report
    assert f"{len(tuning)} tuning/calibration queries left out" in report
    assert (world / "agreement" / "confusion.png").exists()
    # The spread over other calibration sets of the same size.
    assert f"random sets of {len(tuning)} queries" in report
    draws = pd.read_csv(world / "agreement" / "calibration_draws.csv")
    assert len(draws) == 10 and (draws["calibration_queries"] == len(tuning)).all()
    assert draws["kappa_quadratic"].between(-1, 1).all()
    assert main(["annotate", "report", "--dataset", str(world), "--draws", "0"]) == 0
    assert "random sets of" not in capsys.readouterr().out
    # A --candidates file naming a pair the dataset lacks: its line, before any work.
    subset = tmp_path / "subset.csv"
    first = labels.iloc[0]
    subset.write_text(f"qid,docid\n{first[C.QID]},{first[C.DOCID]}\n{first[C.QID]},no-such-doc\n")
    assert main(["annotate", "--dataset", str(world), "--candidates", str(subset)]) == 2
    assert "subset.csv, line 3, column 'docid': pair" in capsys.readouterr().err


def test_budget_via_runner(judge: EmbeddingJudge, tmp_path: Path) -> None:
    pairs = [Pair("q", f"d{i}", "tea", f"text {i}") for i in range(10)]
    with AnswerCache(tmp_path / "c.sqlite") as cache:
        table, stats = annotate_pairs(judge, pairs, cache, budget=3, progress=False)
    assert stats.new == 3 and np.isnan(table["score"]).sum() == 7


def test_head_tokens_flag_reaches_the_judge() -> None:
    import argparse

    from hybridrank.cli import _annotate

    parser = argparse.ArgumentParser()
    _annotate.register(parser.add_subparsers())
    default = _annotate._backend_params(parser.parse_args(["annotate"]))
    assert "head_tokens" not in default  # the judge's own default (64)
    off = _annotate._backend_params(parser.parse_args(["annotate", "--head-tokens", "0"]))
    assert off["head_tokens"] is None
    wide = _annotate._backend_params(parser.parse_args(["annotate", "--head-tokens", "96"]))
    assert wide["head_tokens"] == 96
    with pytest.raises(SystemExit):
        parser.parse_args(["annotate", "--head-tokens", "-1"])


def test_budgeted_annotate_cli_extends_and_says_when_the_budget_is_met(
    tmp_path: Path, tiny_collection, capsys: pytest.CaptureFixture, monkeypatch
) -> None:
    monkeypatch.setenv("HYBRIDRANK_CACHE", str(tmp_path / "cache"))
    world = tmp_path / "world"
    assert main([*world_build_args(tiny_collection, tmp_path, tuning_queries=5),
                 "--out", str(world)]) == 0  # fmt: skip
    capsys.readouterr()
    budgeted = ["annotate", "--dataset", str(world), "--strategy", "tail-first", "--budget"]
    assert main([*budgeted, "40%"]) == 0
    first = capsys.readouterr().out
    assert "round 1: 580 new pairs chosen" in first and "already met" not in first
    assert main([*budgeted, "20%"]) == 0  # below what round 1 chose: nothing new
    second = capsys.readouterr().out
    assert "the budget 20% is already met: 580 pairs" in second
    assert "round 1: 0 new pairs" in second  # no new round is recorded
