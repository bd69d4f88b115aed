from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from hybridrank.cli import main
from hybridrank.data import Dataset

from .conftest import write_trec_dir


@pytest.fixture
def trec_config(tmp_path: Path, tiny_collection) -> Path:
    root = write_trec_dir(tiny_collection, tmp_path / "trec")
    cfg = tmp_path / "world.yaml"
    cfg.write_text(yaml.safe_dump({"world": {"data": {"format": "trec", "path": str(root)}}}))
    return cfg


def test_world_build_and_evaluate(
    tmp_path: Path, trec_config: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "world"
    assert (
        main(
            ["world", "build", "--config", str(trec_config), "--sessions", "600", "--out", str(out)]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "600 sessions" in printed and "CTR by rank" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sessions"] == 600
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["world"]["simulation"]["n_sessions"] == 600

    assert (out / "dataset.yaml").exists()
    # The candidate table with the dataset's frequency buckets and folds joined.
    cand = Dataset.read(out).table()
    cand["noise"] = range(len(cand))
    cand.to_parquet(out / "scored.parquet")
    rep = tmp_path / "report"
    code = main(
        [
            "evaluate",
            "--candidates",
            str(out / "scored.parquet"),
            "--systems",
            "bm25",
            "noise",
            "--baseline",
            "noise",
            "--out",
            str(rep),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "ndcg@10" in printed and "low" in printed
    assert (rep / "report_ndcg_at_10.png").exists()
    assert (rep / "report.csv").exists()


def test_a_world_built_with_data_records_its_collection(
    tmp_path: Path, tiny_collection, capsys: pytest.CaptureFixture
) -> None:
    """`world build --data DIR` writes a config.yaml that rebuilds the same world."""
    root = write_trec_dir(tiny_collection, tmp_path / "trec")
    first, again = tmp_path / "w1", tmp_path / "w2"
    argv = ["world", "build", "--data", str(root), "--sessions", "300", "--out", str(first)]
    assert main(argv) == 0
    saved = yaml.safe_load((first / "config.yaml").read_text())
    assert saved["world"]["data"]["path"] == str(root.resolve())
    assert (
        main(["world", "build", "--config", str(first / "config.yaml"), "--out", str(again)]) == 0
    )
    capsys.readouterr()
    a, b = Dataset.read(first), Dataset.read(again)
    pd.testing.assert_frame_equal(a.candidates, b.candidates)
    pd.testing.assert_frame_equal(a.impressions, b.impressions)


def test_a_taken_out_or_a_bad_option_fails_before_any_work(
    tmp_path: Path, trec_config: Path, capsys: pytest.CaptureFixture
) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "report.md").write_text("my notes")
    scored = tmp_path / "scored.csv"
    scored.write_text("qid,docid,y_expert,bm25\nq1,a,1,2.0\nq1,b,0,1.0\nq2,c,2,0.5\nq2,d,0,0.7\n")
    evaluate = ["evaluate", "--candidates", str(scored), "--systems", "bm25"]
    missing = str(tmp_path / "no-such-dataset")
    for argv in (
        [*evaluate, "--out", str(mine)],
        [*evaluate, "--out", str(scored)],  # a file where the report folder goes
        ["world", "build", "--config", str(trec_config), "--sessions", "200", "--out", str(mine)],
        ["train", "gbdt", "--dataset", missing, "--out", str(mine)],  # before the dataset is read
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "not written by hybridrank" in err and "Traceback" not in err, argv
    # An experiment refuses it before it simulates anything.
    from hybridrank.errors import OutputExistsError
    from hybridrank.pipelines import ExperimentConfig, run_experiment

    with pytest.raises(OutputExistsError):
        run_experiment(ExperimentConfig(), mine, progress=False)
    assert (mine / "report.md").read_text() == "my notes"
    assert sorted(p.name for p in mine.iterdir()) == ["report.md"]
    # hybridrank's own output of another kind is refused too: a world dataset (its
    # config.yaml), a hybrid bundle (its manifest.json) and a GBDT run hold one of the
    # others' markers each, never all.
    kinds = {"dataset": ("dataset.yaml", "config.yaml"), "bundle": ("hybrid.json", "manifest.json"),
             "run": ("manifest.json", "config.yaml", "schema.json"),
             "experiment": ("info.json", "config.yaml")}  # fmt: skip
    for kind, files in kinds.items():
        folder = tmp_path / kind
        folder.mkdir()
        for name in files:
            (folder / name).write_text("{}")
    for target in ("dataset", "bundle", "experiment"):
        argv = ["train", "gbdt", "--dataset", missing, "--out", str(tmp_path / target)]
        assert main(argv) == 2, target
        assert "another kind of output" in capsys.readouterr().err
    for target in ("dataset", "bundle", "run"):
        with pytest.raises(OutputExistsError, match="another kind of output"):
            run_experiment(ExperimentConfig(), tmp_path / target, progress=False)
    assert (tmp_path / "dataset" / "dataset.yaml").exists()
    # Options are checked before the table is scored, in one line.
    assert main([*evaluate, "--metrics", "ndcg@0", "--out", str(tmp_path / "r")]) == 2
    assert "cut-off after '@' must be a positive integer" in capsys.readouterr().err
    assert main([*evaluate, "--baseline", "nosuch", "--out", str(tmp_path / "r")]) == 2
    assert "--baseline 'nosuch' is not one of --systems" in capsys.readouterr().err
    # Its own earlier report is replaced; so is the other mode's (`runs/report` is both
    # modes' default) and what a killed run left (report.md written before report.json).
    assert main([*evaluate, "--out", str(tmp_path / "r")]) == 0
    assert main([*evaluate, "--out", str(tmp_path / "r")]) == 0
    for left in ("clicks.md", "report.json"):
        (tmp_path / left).mkdir()
        (tmp_path / left / left).write_text("x")
        assert main([*evaluate, "--out", str(tmp_path / left)]) == 0
    capsys.readouterr()
    # A train config with a bad metric fails when it is read, naming the key.
    bad = tmp_path / "bad.yaml"
    bad.write_text("metrics: [ndcg@x]\n")
    assert main(["train", "gbdt", "--config", str(bad), "--out", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "metrics" in err and "ndcg@x" in err


@pytest.mark.slow
def test_demo_on_small_world(
    tmp_path: Path, trec_config: Path, capsys: pytest.CaptureFixture
) -> None:
    args = ["demo", "--config", str(trec_config), "--sessions", "800"]
    assert main([*args, "--out", str(tmp_path / "d")]) == 0
    printed = capsys.readouterr().out
    for system in (
        "| bm25",
        "| click_gbdt",
        "| llm_gbdt",
        "| famol",
        "| gated_stacker",
        "| meta_ranker",
    ):
        assert system in printed
    assert "tuned gates" in printed
    assert (tmp_path / "d" / "report" / "main_ndcg_at_10.png").exists()
    assert (tmp_path / "d" / "report" / "sessions_sweep.png").exists()
    assert (tmp_path / "d" / "report" / "gate_curve.png").stat().st_size > 1000
    gates = (tmp_path / "d" / "report" / "gate.csv").read_text().splitlines()
    assert gates[0].startswith("seed,gate,centre,slope,g(low)") and len(gates) == 2
    assert "| bm25" in printed and "| rule" in printed and "| raw_ctr" in printed


def test_errors_are_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["evaluate", "--candidates", str(tmp_path / "missing.parquet")]) == 2
    err = capsys.readouterr().err
    assert "missing.parquet" in err and "Traceback" not in err
    bad = tmp_path / "bad.yaml"
    bad.write_text("world:\n  simulation: {click_model: ubm}\n")
    assert main(["world", "build", "--config", str(bad), "--out", str(tmp_path / "w")]) == 2
    assert "click_model" in capsys.readouterr().err
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1 not really")
    assert main(["evaluate", "--candidates", str(corrupt)]) == 2
    assert "corrupt.parquet" in capsys.readouterr().err
    # A bad value names the CSV's line (the header is line 1).
    scored = tmp_path / "scored.csv"
    scored.write_text("qid,docid,bm25,y_expert\nq1,a,1.0,2\nq1,b,0.5,\n")
    assert main(["evaluate", "--candidates", str(scored), "--systems", "bm25",
                 "--out", str(tmp_path / "r")]) == 2  # fmt: skip
    assert "scored.csv, line 3, column 'y_expert'" in capsys.readouterr().err
    # A repeated row would count its document twice in the metrics.
    scored.write_text("qid,docid,bm25,y_expert\nq1,a,1.0,2\nq1,b,0.5,3\nq1,b,0.5,3\n")
    assert main(["evaluate", "--candidates", str(scored), "--systems", "bm25",
                 "--out", str(tmp_path / "r")]) == 2  # fmt: skip
    assert "scored.csv, line 4, column 'docid': duplicate (qid, docid) row ('q1', 'b')" in (
        capsys.readouterr().err
    )
    # An experiment's scores.parquet stacks its seeds: each seed's query is its own query.
    stacked = tmp_path / "stacked.csv"
    stacked.write_text("seed,qid,docid,bm25,y_expert\n0,q1,a,1.0,2\n0,q1,b,0.5,0\n"
                       "1,q1,a,0.2,2\n1,q1,b,0.9,0\n")  # fmt: skip
    assert main(["evaluate", "--candidates", str(stacked), "--systems", "bm25",
                 "--metrics", "mrr", "--out", str(tmp_path / "s")]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "stacks 2 runs (seed)" in out
    summary = json.loads((tmp_path / "s" / "report.json").read_text())["summary"][0]
    assert (summary["n"], summary["mrr"]) == (2, pytest.approx(0.75))  # (1 + 1/2) / 2
    # An experiment's tuning queries are named, and left out on request.
    tuned = tmp_path / "tuned.csv"
    tuned.write_text("qid,docid,bm25,y_expert,tuning\nq1,a,1.0,2,True\nq1,b,0.5,0,True\n"
                     "q2,a,0.2,2,False\nq2,b,0.9,0,False\n")  # fmt: skip
    argv = ["evaluate", "--candidates", str(tuned), "--systems", "bm25", "--metrics", "mrr"]
    assert main([*argv, "--out", str(tmp_path / "t1")]) == 0
    assert "1 query is marked `tuning`" in capsys.readouterr().out
    assert main([*argv, "--exclude-tuning", "--out", str(tmp_path / "t2")]) == 0
    assert "1 tuning query left out" in capsys.readouterr().out
    summary = json.loads((tmp_path / "t2" / "report.json").read_text())["summary"][0]
    assert (summary["n"], summary["mrr"]) == (1, pytest.approx(0.5))


def test_a_misspelt_config_key_names_the_closest_known_key(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    typo = tmp_path / "typo.yaml"
    typo.write_text("experiment:\n  seedz: [0]\n  stacker: {n_trial: 5}\n")
    assert main(["experiment", "--config", str(typo), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "unknown keys ['seedz'] (did you mean 'seeds' for 'seedz'?)" in err, err
    typo.write_text("experiment:\n  stacker: {n_trial: 5}\n")
    assert main(["experiment", "--config", str(typo), "--out", str(tmp_path / "x")]) == 2
    assert "(did you mean 'n_trials' for 'n_trial'?)" in capsys.readouterr().err
    # A section name of another command gets no made-up hint, and nothing is written.
    typo.write_text("experimnt:\n  seeds: [0]\n")
    assert main(["train", "gbdt", "--config", str(typo), "--out", str(tmp_path / "y")]) == 2
    err = capsys.readouterr().err
    assert "train config: unknown sections ['experimnt']; known sections are [" in err, err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_bad_config_shapes_and_values_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    cfg = tmp_path / "c.yaml"
    cases = [
        ("experiment:\n  stacker: [1]\n", "stacker: expected a mapping of keys, got list"),
        ("experiment:\n  famol: [1]\n", "famol: expected a mapping of keys, got list"),
        ("experiment:\n  scheduling: fast\n", "scheduling: expected a mapping of keys, got str"),
        ("experiment: {seeds: [0]}\nexperimnt: {seeds: [1]}\n", "top-level key 'experimnt': did you mean 'experiment'?"),
        ("experiment: {seeds: [0\n", "c.yaml, line 2, column 1: not valid YAML"),
    ]  # fmt: skip
    for text, message in cases:
        cfg.write_text(text)
        assert main(["experiment", "--config", str(cfg), "--out", str(tmp_path / "x")]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    cfg.write_text("wrold:\n  simulation: {n_sessions: 10}\n")
    assert main(["world", "build", "--config", str(cfg), "--out", str(tmp_path / "w")]) == 2
    assert "top-level key 'wrold': did you mean 'world'?" in capsys.readouterr().err
    assert main(["world", "build", "--config", str(tmp_path), "--out", str(tmp_path / "w")]) == 2
    assert "is a directory, not a YAML config file" in capsys.readouterr().err
    cfg.write_text("profiles: {quick: {bi-encoder: [1]}}\n")
    assert main(["train", "neural", "--config", str(cfg), "--out", str(tmp_path / "n")]) == 2
    assert "profiles.quick.bi-encoder: expected a mapping" in capsys.readouterr().err
    cfg.write_text("world:\n  simulation: {zipf_exponent: .nan}\n")
    assert main(["world", "build", "--config", str(cfg), "--out", str(tmp_path / "w")]) == 2
    assert "zipf_exponent must be a number >= 0, got nan" in capsys.readouterr().err
    cfg.write_text("experiment:\n  annotate: {backend: embedding, params: {head_tokenz: 3}}\n")
    assert main(["experiment", "--config", str(cfg), "--out", str(tmp_path / "x")]) == 2
    assert "(did you mean 'head_tokens' for 'head_tokenz'?)" in capsys.readouterr().err
    cfg.write_text("experiment:\n  annotate: {backend: embeding}\n")
    assert main(["experiment", "--config", str(cfg), "--out", str(tmp_path / "x")]) == 2
    assert "(did you mean 'embedding'?)" in capsys.readouterr().err
    for argv in (
        ["world", "build", "--zipf", "nan", "--out", str(tmp_path / "w")],
        ["world", "examination", "--max-rank", "0"],
        ["study", "run", "studies/stacker_study.yaml", "--n-trials", "0"],
        ["dataset", "import", "--folds", "1", "--out", str(tmp_path / "d")],
    ):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2
    for argv, message in (
        (
            ["dataset", "import", "--letor", str(tmp_path), "--out", str(tmp_path / "d")],
            "is a directory, not a file (dataset.letor in a YAML, --letor on the command line)",
        ),
        (  # a mistyped path is reported as one, not as the options it leaves unmet
            ["dataset", "import", "--collection", str(tmp_path / "no"), "--out", str(tmp_path)],
            "no: no such directory (dataset.collection in a YAML, --collection on the command",
        ),
        (
            ["experiment", "--dataset", str(tmp_path), "--data", str(tmp_path), "--out", "x"],
            "with --dataset the experiment runs on that dataset: drop one of them",
        ),
        (["annotate", "report", "--budget", "5"], "--budget: not read by `annotate report`"),
        (["annotate", "--draws", "3"], "--draws: not read by `annotate`"),
        (["evaluate", "clicks", "--systems", "x"], "--systems: not read by `evaluate clicks`"),
        (
            ["evaluate", "--dataset", str(tmp_path)],
            "--dataset: not read by `evaluate`; drop it (`evaluate clicks` reads a dataset's",
        ),
    ):
        assert main(argv) == 2
        assert message in capsys.readouterr().err
    assert main(["world", "examination", "--clicklogs", str(tmp_path / "none")]) == 2
    assert "--clicklogs" in capsys.readouterr().err
    scored = tmp_path / "scored.csv"
    scored.write_text("qid,docid,famol,y_expert\nq1,a,1.0,2\nq1,b,0.5,0\n")
    assert main(["evaluate", "--candidates", str(scored), "--systems", "famoll",
                 "--out", str(tmp_path / "e")]) == 2  # fmt: skip
    assert "(did you mean 'famol' for 'famoll'?)" in capsys.readouterr().err
    assert not (tmp_path / "w").exists() and not (tmp_path / "x").exists()


def test_verbosity_after_the_subcommand_and_no_bars_in_a_log(
    tmp_path: Path, trec_config: Path, capsys: pytest.CaptureFixture, monkeypatch
) -> None:
    from hybridrank.cli import build_parser

    help_text = build_parser()._subparsers._group_actions[0].choices["world"]  # type: ignore[union-attr]
    build = help_text._subparsers._group_actions[0].choices["build"]
    assert "(default: runs/world)" in " ".join(build.format_help().split())
    args = build_parser().parse_args(["world", "build", "-vv", "--out", "x"])
    assert (args.verbose, args.sub_verbose, args.quiet) == (0, 2, False)
    args = build_parser().parse_args(["-v", "world", "build", "-v", "-q", "--out", "x"])
    assert (args.verbose + args.sub_verbose, args.quiet) == (2, True)
    assert not hasattr(build_parser().parse_args(["-v", "world", "build"]), "sub_verbose")
    seen = {}

    def record(args: object) -> int:
        from tqdm.auto import tqdm

        bar = tqdm(range(3), desc="bar")
        seen["disabled"] = bar.disable
        bar.close()
        return 0

    import hybridrank.cli as cli

    real = cli.build_parser

    def parser_with(func):  # the real parser, its command replaced by `record`
        class P:
            def parse_args(self, argv):
                a = real().parse_args(argv)
                a.func = func
                return a

        return P()

    monkeypatch.setattr(cli, "build_parser", lambda: parser_with(record))
    # On a terminal the bars stay, unless -q; in a log (pytest's capture) they go.
    monkeypatch.setattr(cli.sys.stderr, "isatty", lambda: True, raising=False)
    assert main(["world", "build", "--out", str(tmp_path / "w")]) == 0
    assert seen == {"disabled": False}
    assert main(["world", "build", "-q", "--out", str(tmp_path / "w")]) == 0
    assert seen == {"disabled": True}
    monkeypatch.setattr(cli.sys.stderr, "isatty", lambda: False, raising=False)
    assert main(["world", "build", "--out", str(tmp_path / "w")]) == 0
    assert seen == {"disabled": True}
    from tqdm.auto import tqdm

    bar = tqdm(range(3), disable=False)  # the bars are back after the command
    assert not bar.disable
    bar.close()


def test_clickmodel_fit_checks_its_inputs_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    for bad in ("0", "1", "-0.2", "x"):
        with pytest.raises(SystemExit):
            main(["clickmodel", "fit", "--clicklogs", str(tmp_path), "--holdout", bad])
        assert "--holdout" in capsys.readouterr().err
    assert main(["clickmodel", "fit", "--clicklogs", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "holds neither log" in err and "Traceback" not in err


def test_negative_sessions_rejected(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["world", "build", "--sessions", "-3"])
    assert "expected a number >= 0" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "flag", "reason"),
    [
        (["world", "build", "--seed", "-1"], "--seed", ">= 0"),
        (["dataset", "import", "--log", "x.csv", "--seed", "-1"], "--seed", ">= 0"),
        (["evaluate", "clicks", "--dataset", "d", "--seed", "-1"], "--seed", ">= 0"),
        (["importance", "run", "--seed", "-1"], "--seed", ">= 0"),
        (["importance", "run", "--repeats", "0"], "--repeats", ">= 1"),
        (["importance", "run", "--top", "-3"], "--top", ">= 1"),
    ],
)
def test_seeds_and_counts_are_checked_by_the_parser(
    args: list[str], flag: str, reason: str, capsys: pytest.CaptureFixture
) -> None:
    with pytest.raises(SystemExit):
        main(args)
    err = capsys.readouterr().err
    assert f"argument {flag}" in err and reason in err and "Traceback" not in err


def test_negative_seeds_in_configs_are_refused() -> None:
    from hybridrank.data import SimulationConfig
    from hybridrank.errors import ConfigError
    from hybridrank.gbdt import LambdaMARTConfig
    from hybridrank.pipelines import ExperimentConfig, FoldConfig

    for make, name in ((lambda: LambdaMARTConfig(seed=-1), "gbdt.seed"),
                       (lambda: SimulationConfig(seed=-1), "simulation.seed"),
                       (lambda: FoldConfig(seed=-1), "folds.seed"),
                       (lambda: ExperimentConfig(seeds=(0, -2)), "experiment.seeds")):  # fmt: skip
        with pytest.raises(ConfigError, match=f"{name} must be >= 0"):
            make()


def test_untrusted_text_is_escaped_and_ctrl_c_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "evil\x1b[2J\x07.parquet"
    assert main(["evaluate", "--candidates", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x07" not in err and "\\x1b[2J\\x07" in err

    from hybridrank.cli import _evaluate

    def interrupted(args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(_evaluate, "cmd_evaluate", interrupted)
    assert main(["evaluate", "--candidates", "x.csv"]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "interrupted during `evaluate`" in err[0]


def test_clickmodel_examination_of_a_dataset_log(
    tmp_path: Path, trec_config: Path, capsys: pytest.CaptureFixture
) -> None:
    world = tmp_path / "world"
    build = ["world", "build", "--config", str(trec_config), "--sessions", "3000", "--out"]
    assert main([*build, str(world)]) == 0
    capsys.readouterr()
    out = tmp_path / "exam"
    args = ["clickmodel", "examination", "--dataset", str(world), "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "harvested" in printed and "pbm_em" in printed and "ctr_by_position" in printed
    import pandas as pd

    table = pd.read_csv(out / "examination.csv", index_col="position")
    assert table.index.tolist() == list(range(1, 11))
    assert table.loc[1, "harvested"] == pytest.approx(1.0)
    assert table.loc[5, "harvested"] < table.loc[2, "harvested"] < 1.0
    assert (table["pairs_shared_with_above"].loc[2:5] > 0).all()
    assert (out / "examination.png").read_bytes()[:4] == b"\x89PNG"
    # A dataset that is not there: one clear line naming it, a non-zero exit.
    assert main(["clickmodel", "examination", "--dataset", str(tmp_path / "nope")]) != 0
    assert "nope" in capsys.readouterr().err


def test_an_interrupted_trial_logs_no_traceback() -> None:
    import logging
    import sys

    from hybridrank.cli import _DropInterruptedTrials

    def record(message: str, exc: BaseException | None = None) -> logging.LogRecord:
        info = None
        if exc is not None:
            try:
                raise exc
            except BaseException:
                info = sys.exc_info()
        return logging.LogRecord("optuna", logging.WARNING, __file__, 1, message, (), info)

    keep = _DropInterruptedTrials().filter
    # Optuna's two records of a trial stopped by Ctrl-C are dropped ...
    assert not keep(
        record("Trial 3 failed with parameters: {} because of ...", KeyboardInterrupt())
    )
    assert not keep(record("Trial 3 failed with value None."))
    # ... those of a real failure are kept, with its traceback.
    assert keep(record("Trial 4 failed with parameters: {} because of ...", ValueError("real")))
    assert keep(record("Trial 4 failed with value None."))
    assert keep(record("Trial 5 finished with value: 0.6"))


def test_a_closed_stdout_ends_quietly(tmp_path: Path) -> None:
    import subprocess
    import sys

    scored = tmp_path / "scored.csv"
    scored.write_text("qid,docid,bm25,y_expert\nq1,a,1.0,2\nq1,b,0.5,0\n")
    argv = [
        "evaluate",
        "--candidates",
        str(scored),
        "--systems",
        "bm25",
        "--out",
        str(tmp_path / "r"),
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "hybridrank", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # `hybridrank ... | head` once head has what it wants
    err = proc.stderr.read().decode()
    assert proc.wait() == 141 and "Traceback" not in err and "BrokenPipeError" not in err
    # Stopped as `head` stops any writer: nothing half-written is left behind.
    assert not (tmp_path / "r").exists() or (tmp_path / "r" / "report.json").exists()
