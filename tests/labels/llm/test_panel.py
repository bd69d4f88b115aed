"""Several judges combined: three scripted judges on loopback chat servers, the combiners, the
agreement between judges, the answer cache, the annotate CLI and the config's validation."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridrank import columns as C
from hybridrank.cli import main
from hybridrank.data import Dataset
from hybridrank.errors import ConfigError
from hybridrank.labels.llm import (
    LLM_SOFT,
    LLM_STATUS,
    PANEL,
    AnnotateConfig,
    AnswerCache,
    JudgePanel,
    OpenAIAnnotator,
    annotate_candidates,
    combine_majority,
    combine_mean,
    judge_agreement,
    judge_columns,
    judge_names,
)
from tests.labels.llm.chat_server import ChatServer
from tests.labels.llm.conftest import make_pairs

from ...conftest import make_collection

NAN = float("nan")

# Three judges on seven pairs (p00..p06), answers shaped like real models': reasoning, then a
# final grade line. None: the judge's server fails (HTTP 500) on that pair. Judge c fails on
# three pairs, every judge on p06.
GRADES = {
    "a": [3, 2, 0, 1, 2, 0, None],
    "b": [3, 1, 0, 2, 3, 1, None],
    "c": [2, 1, None, 3, None, None, None],
}
# Per pair: mean = the rounded mean (halves up); majority = the most common grade, a tie to the
# tied grade nearest the median, then the lower one.
#   p00 [3,3,2] mean 2.67->3  majority 3      p04 [2,3]   mean 2.5->3   majority 2 (tie, median 2.5: lower)
#   p01 [2,1,1] mean 1.33->1  majority 1      p05 [0,1]   mean 0.5->1   majority 0 (tie, median 0.5: lower)
#   p02 [0,0]   mean 0        majority 0      p06 []      no grade (every judge failed)
#   p03 [1,2,3] mean 2        majority 2 (three-way tie: the median, not the lower)
MEAN = [3, 1, 0, 2, 3, 1, NAN]
MAJORITY = [3, 1, 0, 2, 2, 0, NAN]
# Judge a returns logprobs on p00: expected grade 0*.01 + 1*.04 + 2*.15 + 3*.8 = 2.74; the other
# soft grades are the grades. The soft grade is the mean over the judges that graded.
SOFT = [(2.74 + 3 + 2) / 3, (2 + 1 + 1) / 3, 0.0, 2.0, 2.5, 0.5, NAN]


def _answer(judge: str, pair: int, grade: int) -> str:
    reasoning = "The query asks about a treatment.\nThe document discusses it in part."
    if judge == "a" and pair == 0:
        return f"logprobs:{reasoning}\nGrade: {grade}|0.01,0.04,0.15,0.8"
    if judge == "b":
        return f"answer:{reasoning}\n**Final grade:** {grade}"
    return f"answer:{reasoning}\n##final score: {grade}"


@pytest.fixture(scope="module")
def _servers() -> Iterator[dict[str, ChatServer]]:
    servers = {name: ChatServer(default="500").start() for name in GRADES}
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture
def servers(_servers: dict[str, ChatServer]) -> dict[str, ChatServer]:
    """One loopback chat server per judge, scripted with :data:`GRADES` (all else: HTTP 500)."""
    for name, server in _servers.items():
        server.reset(default="500")
        for i, grade in enumerate(GRADES[name]):
            if grade is not None:
                server.on_marker(f"[p{i:02d}]", [_answer(name, i, grade)])
    return _servers


def _judges(servers: dict[str, ChatServer]) -> list[dict[str, object]]:
    return [
        {
            "backend": "openai",
            "name": name,
            "params": {
                "base_url": server.base_url,
                "model": f"model-{name}",
                "api_key_env": "HYBRIDRANK_TEST_KEY",
                "max_retries": 0,
                "max_parse_retries": 0,
                "max_tokens": 512,
                "backoff_s": 0.01,
                "logprobs": name == "a",
            },
        }
        for name, server in servers.items()
    ]


def _tables() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    pairs = make_pairs(7)
    order = sorted(range(7), key=lambda i: pairs[i].qid)  # rows of a query contiguous
    cand = pd.DataFrame(
        {C.QID: [pairs[i].qid for i in order], C.DOCID: [pairs[i].docid for i in order]}
    )
    queries = pd.DataFrame({C.QID: [p.qid for p in pairs[:5]], C.TEXT: [p.query for p in pairs[:5]]})
    docs = pd.DataFrame({C.DOCID: [p.docid for p in pairs], C.TEXT: [p.document for p in pairs]})
    return cand, queries, docs


def _by_pair(candidates: pd.DataFrame, column: str) -> list[float]:
    """``column`` in pair order p00..p06 (the table is sorted by query)."""
    return candidates.set_index(C.DOCID)[column].reindex([f"d{i:02d}" for i in range(7)]).tolist()


def _quadratic_kappa(a: list[int], b: list[int]) -> Fraction:
    """Quadratic-weighted Cohen's kappa, exactly: 1 - sum w O / sum w E, w = (i - j)^2."""
    n = len(a)
    observed = sum(Fraction((x - y) ** 2) for x, y in zip(a, b, strict=True))
    expected = sum(Fraction((x - y) ** 2, n) for x, y in itertools.product(a, b))
    return 1 - observed / expected


# -------------------------------------------------------------------------------- combiners


def test_combiners_by_hand() -> None:
    grades = np.array(
        [[3, 3, 2], [2, 1, 1], [0, 0, NAN], [1, 2, 3], [2, 3, NAN], [0, 1, NAN], [NAN] * 3,
         [1, 1, 3], [0, 3, 3]]
    )  # fmt: skip
    np.testing.assert_array_equal(combine_mean(grades), [3, 1, 0, 2, 3, 1, NAN, 2, 2])
    np.testing.assert_array_equal(combine_majority(grades), [3, 1, 0, 2, 2, 0, NAN, 1, 3])
    # Four judges: a two-two tie goes to the grade nearer the median of all four.
    four = np.array([[0, 0, 3, 3], [0, 2, 2, 3], [1, 1, 3, 3], [0, 3, 3, 2]], dtype=float)
    np.testing.assert_array_equal(combine_majority(four), [0, 2, 1, 3])
    assert combine_majority(np.array([[0.0, 3.0, 3.0, 2.0, 2.0]])).tolist() == [2.0]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.integers(0, 3)), min_size=1, max_size=6))
def test_combiners_stay_within_what_the_judges_said(row: list[int | None]) -> None:
    grades = np.array([[NAN if g is None else g for g in row]], dtype=float)
    given_ = [g for g in row if g is not None]
    mean, majority = combine_mean(grades)[0], combine_majority(grades)[0]
    if not given_:
        assert np.isnan(mean) and np.isnan(majority)
        return
    assert min(given_) <= mean <= max(given_) and mean == np.floor(np.mean(given_) + 0.5)
    assert majority in given_
    assert given_.count(int(majority)) == max(given_.count(g) for g in given_)


# ------------------------------------------------------------------------ three judges, served


@pytest.mark.parametrize(("combine", "expected"), [("mean", MEAN), ("majority", MAJORITY)])
def test_three_judges_combined(
    servers: dict[str, ChatServer], tmp_path: Path, combine: str, expected: list[float]
) -> None:
    cand, queries, docs = _tables()
    config = AnnotateConfig.from_dict({"judges": _judges(servers), "combine": combine, "batch_size": 3})
    assert config.backend == PANEL and config.combine == combine
    assert [j.name for j in config.judges] == ["a", "b", "c"]
    with config.make_annotator() as panel, AnswerCache(tmp_path / "answers.sqlite") as cache:
        assert isinstance(panel, JudgePanel) and panel.names == ("a", "b", "c")
        res = annotate_candidates(cand, queries, docs, panel, cache, config, progress=False)
        out = res.candidates
        np.testing.assert_array_equal(_by_pair(out, C.Y_LLM), expected)
        np.testing.assert_allclose(_by_pair(out, LLM_SOFT), SOFT, rtol=0, atol=1e-12)
        assert _by_pair(out, LLM_STATUS) == ["ok"] * 6 + ["failed"]
        # Each judge's own grade, soft grade and status stay beside the combined ones.
        for name, grades in GRADES.items():
            grade, _, status = judge_columns(name)
            np.testing.assert_array_equal(
                _by_pair(out, grade), [NAN if g is None else g for g in grades]
            )
            assert _by_pair(out, status) == ["failed" if g is None else "ok" for g in grades]
        assert _by_pair(out, judge_columns("a")[1])[0] == pytest.approx(2.74)
        assert judge_names(out.columns) == ["a", "b", "c"]

        # Every judge was asked every pair once (failures are recorded, not retried here).
        assert [s.count for s in servers.values()] == [7, 7, 7]
        assert res.judge_stats is not None
        assert {n: (s.new, s.failed) for n, s in res.judge_stats.items()} == {
            "a": (7, 1), "b": (7, 1), "c": (7, 4)
        }  # fmt: skip
        assert (res.stats.pairs, res.stats.new, res.stats.failed) == (7, 21, 6)
        assert set(res.labels["judge"]) == {"a", "b", "c"} and len(res.labels) == 21

        # Agreement between judges, on the pairs both graded (hand-computed kappas).
        agreement = res.judge_agreement
        assert agreement is not None and agreement.combine == combine
        pairwise = agreement.pairwise.set_index(["judge_a", "judge_b"])
        # (pairs both graded, quadratic kappa, exact agreement), kappas as exact fractions.
        expected_pairwise = {
            ("a", "b"): (6, Fraction(17, 23), Fraction(2, 6)),
            ("a", "c"): (3, Fraction(-1, 2), Fraction(0)),
            ("b", "c"): (3, Fraction(1, 2), Fraction(1, 3)),
        }
        for (x, y), (pairs, kappa, exact) in expected_pairwise.items():
            both = [i for i in range(7) if GRADES[x][i] is not None and GRADES[y][i] is not None]
            gx, gy = ([int(GRADES[j][i]) for i in both] for j in (x, y))  # type: ignore[arg-type]
            assert _quadratic_kappa(gx, gy) == kappa, (x, y)  # the hand computation agrees
            row = pairwise.loc[(x, y)]
            assert row["pairs"] == pairs == len(both)
            assert row["kappa_quadratic"] == pytest.approx(float(kappa), abs=1e-12)
            assert row["exact_agreement"] == pytest.approx(float(exact), abs=1e-12)
        assert agreement.per_judge["graded_pairs"].tolist() == [6, 6, 3, 6]
        assert agreement.per_judge.index[-1] == f"combined ({combine})"
        text = agreement.to_text()
        assert f"Agreement between the 3 judges, combined by {combine}" in text and "0.739" in text

        # A rerun asks no judge anything: every answer, failures included, is in the cache.
        again = annotate_candidates(cand, queries, docs, panel, cache, config, progress=False)
        assert [s.count for s in servers.values()] == [7, 7, 7]
        assert again.stats.new == 0 and again.stats.cached == 21
        pd.testing.assert_frame_equal(again.candidates, out)
    # Each judge's answers are stored under its own model: a panel sharing a judge reuses them.
    with AnswerCache(tmp_path / "answers.sqlite") as cache:
        assert cache.stats() == {"ok": 15, "failed": 6}


def test_retry_failed_asks_only_the_failed_judge_again(
    servers: dict[str, ChatServer], tmp_path: Path
) -> None:
    cand, queries, docs = _tables()
    config = AnnotateConfig.from_dict({"judges": _judges(servers), "combine": "majority"})
    with config.make_annotator() as panel, AnswerCache(tmp_path / "a.sqlite") as cache:
        annotate_candidates(cand, queries, docs, panel, cache, config, progress=False)
        # Judge c's server recovers: asked again, it grades p04 as 3 (majority [2, 3, 3] -> 3).
        servers["c"].reset(default="answer:Looks right.\n##final score: 3")
        retry = AnnotateConfig.from_dict(
            {"judges": _judges(servers), "combine": "majority", "retry_failed": True}
        )
        res = annotate_candidates(cand, queries, docs, panel, cache, retry, progress=False)
    assert servers["c"].count == 4  # its four failures; judges a and b only had p06 to retry
    assert servers["a"].count == servers["b"].count == 8
    assert _by_pair(res.candidates, C.Y_LLM)[4] == 3.0
    assert _by_pair(res.candidates, LLM_STATUS)[6] == "ok"  # only c graded p06: its 3


def test_panel_asked_directly_combines_without_the_cache(servers: dict[str, ChatServer]) -> None:
    judges = [OpenAIAnnotator(**j["params"]) for j in _judges(servers)]
    panel = JudgePanel(judges=judges, combine="mean", names=["a", "b", "c"])
    judged = panel.annotate(make_pairs(7))
    assert [j.grade for j in judged] == [3, 1, 0, 2, 3, 1, None]
    assert judged[0].expected_grade == pytest.approx(SOFT[0])
    assert judged[0].raw == '{"a": 3, "b": 3, "c": 2}'
    assert judged[6].error is not None and "no judge graded the pair" in judged[6].error
    assert panel.model.startswith("mean(a=openai:model-a; b=openai:model-b")
    # Default names come from the models, made unique.
    twins = JudgePanel(judges=[judges[0], judges[0], judges[1]])
    assert twins.names == ("model-a", "model-a-2", "model-b")


def test_judge_agreement_report_with_experts() -> None:
    rep = judge_agreement(
        {"x": [0, 1, 2, 3, NAN], "y": [0, 1, 2, 2, 1]},
        combined=[0, 1, 2, 3, 1],
        combine="mean",
        expert=[0, 1, 2, 3, 0],
    )
    per = rep.per_judge
    assert per.loc["x", "exact_agreement_vs_expert"] == 1.0 and per.loc["x", "expert_pairs"] == 4
    assert per.loc["y", "kappa_quadratic_vs_expert"] == pytest.approx(
        float(_quadratic_kappa([0, 1, 2, 2, 1], [0, 1, 2, 3, 0])), abs=1e-12
    )
    assert per.loc["combined (mean)", "graded_pairs"] == 5
    # Judges that agree on one grade only: kappa is undefined, exact agreement is not.
    flat = judge_agreement({"x": [2, 2], "y": [2, 2]}).pairwise.iloc[0]
    assert np.isnan(flat["kappa_quadratic"]) and flat["exact_agreement"] == 1.0


# ------------------------------------------------------------------------------ the CLI


TOPICS = """<top>
<num> Number: {qid}
<title> {title}
<desc> Description:
What is known about {title}?
<narr> Narrative:
A relevant document discusses {title} </narrative> directly.
</top>
"""


def test_annotate_cli_with_three_judges_and_the_described_prompt(
    servers: dict[str, ChatServer],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HYBRIDRANK_CACHE", str(tmp_path / "cache"))
    collection = make_collection(n_queries=6, n_docs=40, seed=4, vocab_size=60)
    root = tmp_path / "col"
    root.mkdir()
    (root / "docs.tsv").write_text("".join(f"{d}\t{t}\n" for d, t in collection.docs.itertuples(index=False)))
    (root / "topics.txt").write_text(
        "".join(TOPICS.format(qid=q, title=t) for q, t in collection.queries.itertuples(index=False))
    )
    (root / "qrels").write_text(
        "".join(f"{q} 0 {d} {g}\n" for q, d, g in collection.qrels.itertuples(index=False))
    )
    ds = tmp_path / "ds"
    argv = ["dataset", "import", "--collection", str(root), "--bm25-top-k", "3", "--out", str(ds),
            "--tuning-queries", "0"]  # fmt: skip
    assert main(argv) == 0
    assert "queries (6 with a description, 6 with a narrative)" in capsys.readouterr().out
    queries = Dataset.read(ds).queries
    assert queries is not None and queries[C.NARRATIVE].str.endswith("</narrative> directly.").all()
    n = len(Dataset.read(ds).candidates)
    assert 12 <= n <= 18

    # Judges a, b always grade 2 and 3 (with reasoning); c always fails.
    servers["a"].reset(default="answer:Partly relevant.\nGrade: 2")
    servers["b"].reset(default="answer:M: 3, T: 3, O: 3\n##final score: 3")
    servers["c"].reset(default="500")
    judges = []
    for name, server in servers.items():
        judges += ["--judge", "openai", f"base_url={server.base_url}", f"model=m-{name}", f"name={name}",
                   "max_retries=0"]  # fmt: skip
    run = ["annotate", "--dataset", str(ds), *judges, "--prompt", "described", "--max-tokens", "256",
           "--timeout", "5", "--api-key-env", "HYBRIDRANK_TEST_KEY"]  # fmt: skip
    assert main([*run, "--combine", "majority"]) == 0
    out = capsys.readouterr().out
    assert "3 LLM judges combined by majority:" in out
    assert "judge a: openai model m-a, prompt hr-rel-0to3-described-v1" in out
    assert "Agreement between the 3 judges, combined by majority" in out
    labels = Dataset.read(ds).llm_labels
    assert labels is not None and len(labels) == n
    assert labels[C.Y_LLM].eq(2.0).all()  # majority of [2, 3]: a tie, median 2.5: the lower
    assert labels[LLM_SOFT].eq(2.5).all() and labels[judge_columns("c")[2]].eq("failed").all()
    # The described prompt reached every judge, with each query's description and narrative.
    for server in servers.values():
        assert server.count == n
        assert all("<description>\nWhat is known about" in r.user for r in server.received)
        assert all("</ narrative> directly.\n</narrative>" in r.user for r in server.received)

    # The same run again asks nothing; mean combines the same stored answers differently.
    assert main([*run, "--combine", "mean"]) == 0
    assert f"all judges: {n} pairs ({3 * n} distinct texts): {3 * n} cached, 0 new" in capsys.readouterr().out
    assert [s.count for s in servers.values()] == [n, n, n]
    labels = Dataset.read(ds).llm_labels
    assert labels is not None and labels[C.Y_LLM].eq(3.0).all()  # 2.5 rounds up

    assert main(["annotate", "report", "--dataset", str(ds)]) == 0
    report = capsys.readouterr().out
    assert "Agreement between the 3 judges" in report and "kappa_quadratic_vs_expert" in report
    assert (ds / "agreement" / "judges.json").exists() and (ds / "agreement" / "judges.md").exists()


# ------------------------------------------------------------------------- validation


def _judge(**params: object) -> dict[str, object]:
    return {"backend": "openai", "params": {"base_url": "http://127.0.0.1:9/v1", "model": "m", **params}}


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"judges": [_judge()]}, r"annotate\.judges: give two or more judges"),
        ({"judges": _judge()}, r"annotate\.judges: expected a list of judges"),
        ({"judges": [_judge(), "openai"]}, r"annotate\.judges\[1\]: expected a judge"),
        ({"judges": [_judge(), {"backend": "embedding"}]}, r"annotate\.judges\[1\]: backend 'embedding' is a score-only judge"),
        ({"judges": [_judge(), {"backend": "gpt"}]}, r"annotate\.judges\[1\]: unknown annotator backend 'gpt'"),
        ({"judges": [_judge(), {"backend": "panel"}]}, r"annotate\.judges\[1\]: a panel cannot sit on a panel"),
        ({"judges": [_judge(), {"params": {}}]}, r"annotate\.judges\[1\]: .*backend"),
        ({"judges": [_judge(), {"backend": "openai", "temperature": 0}]}, r"annotate\.judges\[1\]: unknown keys \['temperature'\]"),
        ({"judges": [_judge(), {"backend": "openai", "params": "fast"}]}, r"annotate\.judges\[1\]: params must be a mapping"),
        ({"judges": [{**_judge(), "name": "x y"}, _judge()]}, r"judges\[0\]: judge name 'x y'"),
        ({"judges": [{**_judge(), "name": "x"}, {**_judge(), "name": "x"}]}, r"annotate\.judges: judge names must differ; \['x'\]"),
        ({"judges": [_judge(), _judge()], "combine": "median"}, r"annotate\.combine: 'median' is not one of \['majority', 'mean'\]"),
        ({"judges": [_judge(), _judge()], "backend": "openai"}, r"give `judges` .* or \['backend'\] \(one judge\), not both"),
        ({"combine": "mean"}, r"annotate\.combine combines several judges"),
        ({"prompt": "verbose"}, r"annotate\.prompt: 'verbose' is not one of \['described', 'title'\]"),
        ({"backend": "panel", "params": {"judges": [_judge(), _judge()], "vote": 1}}, r"unknown keys \['vote'\]"),
        ({"backend": "panel", "params": {}}, r"annotate\.judges: expected a list"),
    ],
)  # fmt: skip
def test_config_errors(values: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        AnnotateConfig.from_dict(values)


def test_config_forms_and_the_prompt_default(caplog: pytest.LogCaptureFixture) -> None:
    config = AnnotateConfig.from_dict(
        {"judges": [_judge(), {**_judge(prompt="title"), "name": "plain"}], "prompt": "described"}
    )
    # The top-level prompt is every LLM judge's default; a judge's own prompt wins.
    assert [j.params["prompt"] for j in config.judges] == ["described", "title"]
    assert [j.name for j in config.judges] == ["m", "plain"] and config.combine == "mean"
    # backend + params is the same judge, and survives replace() and a round trip.
    again = AnnotateConfig.from_dict(
        {"backend": config.backend, "params": dict(config.params), "prompt": "described"}
    )
    assert again == config
    from dataclasses import asdict, replace

    assert replace(config, budget=5).params == config.params
    assert AnnotateConfig.from_dict({k: v for k, v in asdict(config).items()}) == config
    one = AnnotateConfig.from_dict({"backend": "openai", "params": _judge()["params"], "prompt": "described"})
    assert one.params["prompt"] == "described" and one.judges == () and one.combine is None
    # The embedded semantic judge reads no prompt: nothing is passed to it, and it is said.
    with caplog.at_level("WARNING", logger="hybridrank.labels.llm._pipeline"):
        assert AnnotateConfig(prompt="described").params == {}
    assert "annotate.prompt 'described' has no effect: the embedding judge" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="hybridrank.labels.llm._pipeline"):
        AnnotateConfig(prompt="title")
        AnnotateConfig.from_dict({"backend": "openai", "params": _judge()["params"],
                                  "prompt": "described"})  # fmt: skip
    assert "no effect" not in caplog.text


def test_cli_judge_options_are_checked(tmp_path: Path) -> None:
    import argparse

    import yaml

    from hybridrank.cli import _annotate

    parser = argparse.ArgumentParser()
    _annotate.register(parser.add_subparsers())

    def config(*argv: str) -> AnnotateConfig:
        return _annotate.annotate_config(parser.parse_args(["annotate", *argv]))

    cfg = config("--judge", "openai", "model=a", "temperature=0.5", "name=first",
                 "--judge", "openai", "model=b", "logprobs=true",
                 "--base-url", "http://127.0.0.1:9/v1", "--max-tokens", "64", "--combine", "majority")  # fmt: skip
    first, second = cfg.judges
    assert (first.name, second.name, cfg.combine) == ("first", "b", "majority")
    assert first.params == {"base_url": "http://127.0.0.1:9/v1", "max_tokens": 64, "model": "a", "temperature": 0.5}
    assert second.params["logprobs"] is True and cfg.batch_size == 256
    yml = tmp_path / "annotate.yaml"
    yml.write_text(
        "annotate:\n  combine: majority\n  batch_size: 8\n  judges:\n"
        "    - {backend: openai, params: {base_url: 'http://127.0.0.1:9/v1', model: x}}\n"
        "    - {backend: openai, params: {base_url: 'http://127.0.0.1:9/v1', model: y}}\n"
    )
    from_file = config("--config", str(yml), "--prompt", "described")
    assert [j.name for j in from_file.judges] == ["x", "y"] and from_file.batch_size == 8
    assert all(j.params["prompt"] == "described" for j in from_file.judges)
    # The written form (backend: panel, as a run records its config) reads the same.
    written = tmp_path / "written.yaml"
    written.write_text(
        yaml.safe_dump({"annotate": {"backend": "panel", "params": dict(from_file.params)}})
    )
    again = config("--config", str(written), "--max-tokens", "32")
    assert [j.name for j in again.judges] == ["x", "y"] and again.combine == "majority"
    assert all(j.params["max_tokens"] == 32 for j in again.judges)
    # --backend replaces the file's judges with one judge.
    assert config("--config", str(yml), "--backend", "embedding").backend == "embedding"
    with pytest.raises(ConfigError, match="--backend names one judge and --judge several"):
        config("--backend", "openai", "--judge", "openai", "model=a", "--judge", "openai", "model=b")
    with pytest.raises(ConfigError, match="--combine combines several judges"):
        config("--combine", "mean")
    with pytest.raises(ConfigError, match=r"--judge openai: expected KEY=VALUE .* got 'fast'"):
        config("--judge", "openai", "fast", "--judge", "openai", "model=b")
    with pytest.raises(ConfigError, match=r"annotate\.yaml \(with the command-line flags\): .*judges\[0\]"):
        config("--config", str(yml), "--judge", "embedding", "--judge", "openai", "model=b")


def test_the_example_study_file_is_a_valid_panel() -> None:
    from hybridrank._config import read_yaml_mapping

    path = Path(__file__).resolve().parents[3] / "studies" / "annotate-judges.yaml"
    config = AnnotateConfig.from_dict(read_yaml_mapping(path, section="annotate"))
    assert config.combine == "majority" and [j.name for j in config.judges] == ["qwen", "llama", "smollm"]
    assert all(j.params["prompt"] == "described" for j in config.judges)
