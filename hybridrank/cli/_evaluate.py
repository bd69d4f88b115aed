"""``hybridrank evaluate``: score columns of a candidate table against expert grades, per bucket."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from hybridrank import columns as C
from hybridrank._atomic import check_output_dir
from hybridrank.cli._common import (
    add_dataset_option,
    bucket_order,
    positive_int,
    print_paths,
    refuse_options,
    remember_defaults,
    share,
)
from hybridrank.errors import ConfigError

#: Columns that tell an experiment's runs apart in its scores.parquet.
RUN_COLUMNS = ("seed", "sessions")

#: The column of an experiment's scores that marks its labelled tuning queries.
TUNING_COLUMN = "tuning"

#: Files either mode of `evaluate` writes into --out (the default one folder serves both).
#: (`report.json` is written first, so a killed run's folder holds it; a user's own
#: `report.md` is not taken for one.)
EVALUATE_MARKERS = ("report.json", "clicks.md", "clicks_metric.csv", "click_models.csv")


def cmd_evaluate(args: argparse.Namespace) -> int:
    if args.mode == "clicks":
        clicks = ("dataset", "holdout", "random_split", "seed", "out")
        refuse_options(args, clicks, "evaluate clicks")
        return _evaluate_clicks(args)
    refuse_options(
        args, [d for d in args._defaults if d not in ("dataset", "holdout", "random_split", "seed")],
        "evaluate", " (`evaluate clicks` reads a dataset's held-out clicks: --dataset, "
        "--holdout, --random-split, --seed)",
    )  # fmt: skip
    from hybridrank.data import check_unique_pairs, file_lines, read_table
    from hybridrank.evaluate import evaluate_table, parse_metric

    if args.candidates is None:
        raise ConfigError("evaluate grades needs --candidates FILE (a candidate table)")
    for metric in args.metrics:
        parse_metric(metric)
    if args.baseline is not None and args.baseline not in args.systems:
        raise ConfigError(f"--baseline {args.baseline!r} is not one of --systems {args.systems}")
    # Its own earlier reports (either mode's, also a killed run's) may be replaced, a folder
    # of other files may not.
    check_output_dir(args.out, markers=EVALUATE_MARKERS)
    path: Path = args.candidates
    table = read_table(path)
    if args.on_missing == "worst":
        for system in args.systems:
            if system in table.columns:
                values = table[system].to_numpy(dtype=np.float64)
                filled = np.where(np.isfinite(values), values, -np.inf)
                low = np.nanmin(values[np.isfinite(values)]) if np.isfinite(values).any() else 0.0
                # Ranked after every real score of the query, ties among themselves.
                table[system] = np.where(np.isfinite(filled), filled, low - 1.0)
    # An experiment's scores.parquet stacks its runs (seeds, session counts): each run's
    # query is a query of its own, as the experiment's pooled table counts it.
    if TUNING_COLUMN in table.columns:
        tuning = table[TUNING_COLUMN].fillna(False).astype(bool).to_numpy()
        if tuning.any():
            n_tuning = table.loc[tuning, C.QID].nunique() if C.QID in table else int(tuning.sum())
            if args.exclude_tuning:
                table = table.loc[~tuning].reset_index(drop=True)
                print(f"{path}: {n_tuning} tuning quer{'y' if n_tuning == 1 else 'ies'} left out "
                      "(--exclude-tuning)")  # fmt: skip
            else:
                print(
                    f"{path}: {n_tuning} quer{'y is' if n_tuning == 1 else 'ies are'} marked "
                    f"`{TUNING_COLUMN}` (the experiment tuned "
                    "its stacker and calibrated its judge on them, and leaves them out of its "
                    "tables): scored here too; --exclude-tuning leaves them out"
                )
    runs = [c for c in RUN_COLUMNS if c in table.columns]
    pairs = [C.QID, C.DOCID]
    if (
        runs
        and set(pairs) <= set(table.columns)
        and table.duplicated(pairs).any()
        and not table.duplicated([*runs, *pairs]).any()
    ):
        n_runs = len(table[runs].drop_duplicates())
        print(f"{path} stacks {n_runs} runs ({', '.join(runs)}): each run's queries are "
              "scored as queries of their own, pooled (filter the table to score one)")  # fmt: skip
        key = table[runs].astype(str).agg(":".join, axis=1)
        table = table.assign(**{C.QID: key + ":" + table[C.QID].astype(str)})
    with file_lines(path):
        if {C.QID, C.DOCID} <= set(table.columns):
            check_unique_pairs(table, why="count twice in the metrics")
        report = evaluate_table(
            table,
            args.systems,
            label=args.label,
            metrics=args.metrics,
            bucket=C.BUCKET if C.BUCKET in table else None,
            bucket_order=bucket_order(table),
            baseline=args.baseline,
            title=f"{path}: {', '.join(args.systems)} against {args.label}",
        )
    print(report.to_text())
    print_paths(report.write(args.out))
    return 0


def _evaluate_clicks(args: argparse.Namespace) -> int:
    from hybridrank.data import Dataset
    from hybridrank.pipelines import ClickEvalConfig, evaluate_on_clicks

    if args.dataset is None:
        raise ConfigError("evaluate clicks needs --dataset DIR (a dataset with a click log)")
    check_output_dir(args.out, markers=EVALUATE_MARKERS)
    dataset = Dataset.read(args.dataset)
    config = ClickEvalConfig(holdout=args.holdout, by_time=not args.random_split, seed=args.seed)
    result = evaluate_on_clicks(dataset, config)
    print(result.to_text())
    print_paths(result.write(args.out))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser(
        "evaluate",
        help="`evaluate grades`: score columns against expert grades per bucket; "
        "`evaluate clicks`: rankers judged on held-out sessions (no grades needed)",
    )
    ev.add_argument("mode", nargs="?", choices=["grades", "clicks"], default="grades")
    ev.add_argument(
        "--candidates", type=Path, help="grades: candidate table (.parquet, .csv, .tsv)"
    )
    add_dataset_option(ev, help="clicks: a dataset with a click log")
    ev.add_argument(
        "--holdout", type=share, default=0.2, help="clicks: share of (latest) sessions held out"
    )
    ev.add_argument(
        "--random-split",
        action="store_true",
        help="clicks: hold out random sessions, not the latest",
    )
    ev.add_argument("--seed", type=positive_int, default=0, help="clicks: seed of a random split")
    ev.add_argument("--systems", nargs="+", default=[C.BM25], help="score columns to evaluate")
    ev.add_argument("--metrics", nargs="+", default=["ndcg@10", "mrr", "err@10"])
    ev.add_argument("--label", default=C.Y_EXPERT, help="graded relevance column")
    ev.add_argument("--baseline", help="system to test the others against (paired randomisation)")
    ev.add_argument(
        "--exclude-tuning",
        action="store_true",
        help="leave out the rows whose `tuning` column is true (an experiment's tuning "
        "queries, which its own tables leave out)",
    )
    ev.add_argument(
        "--on-missing",
        choices=["error", "worst"],
        default="error",
        help="NaN/inf scores: an error naming the column and row (default), or ranked last",
    )
    ev.add_argument("--out", type=Path, default=Path("runs/report"))
    ev.set_defaults(func=cmd_evaluate)
    remember_defaults(ev)
