"""``hybridrank train gbdt`` and ``hybridrank train neural``: production models on a dataset."""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

from hybridrank.cli._common import add_dataset_option, with_data_path
from hybridrank.neural import ARCHITECTURES


def cmd_train_gbdt(args: argparse.Namespace) -> int:
    from hybridrank.pipelines import GBDTTrainConfig, train_gbdt

    config = GBDTTrainConfig.from_yaml(args.config) if args.config else GBDTTrainConfig()
    if args.dataset:
        config = replace(config, dataset=str(args.dataset))
    if args.label:
        config = replace(config, label=args.label)
    if args.like_experiment is not None:
        from hybridrank.pipelines import train_config_like_experiment

        config = train_config_like_experiment(args.like_experiment, config.label, config)
        print(
            f"trained as the experiment {args.like_experiment} trained its {config.label} model: "
            f"features {list(config.features)}, gbdt n_estimators {config.gbdt.n_estimators}, "
            f"early_stopping_rounds {config.gbdt.early_stopping_rounds}"
        )
    if args.features:
        config = replace(config, features=tuple(args.features))
    config = replace(
        config,
        dask=config.dask.overridden(scheduler=args.dask_scheduler, n_workers=args.dask_workers),
    )
    start = time.perf_counter()
    run = train_gbdt(with_data_path(config, args.data), args.out)
    if run.report is not None:
        print(run.report.to_text())
    else:
        print("the dataset has no expert grades: no per-bucket report")
    print(
        f"\n{run.name}: trained on {len(run.features)} features, best round "
        f"{run.ranker.best_iteration_}, in {time.perf_counter() - start:.1f}s"
    )
    print(
        f"bundle: {run.path}  (model/, schema.json, config.yaml, metrics.json, report/, curves.png)"
    )
    return 0


def cmd_train_neural(args: argparse.Namespace) -> int:
    from hybridrank.pipelines import NeuralTrainConfig, train_neural

    architecture = args.architecture
    config = (
        NeuralTrainConfig.from_yaml(args.config, args.profile, architecture=architecture)
        if args.config
        else NeuralTrainConfig()
    )
    if architecture:
        config = replace(config, neural=replace(config.neural, architecture=architecture))
    if args.dataset:
        config = replace(config, dataset=str(args.dataset))
    start = time.perf_counter()
    run = train_neural(with_data_path(config, args.data), args.out)
    resumed = [str(r["fold"]) for r in run.folds if r.get("resumed")]
    if resumed:
        print(f"resumed: fold(s) {', '.join(resumed)} read back from the stopped run's checkpoints")
    print(run.report.to_text())
    print(f"\ntimings (s): {run.timings}; total {time.perf_counter() - start:.1f}s")
    print(
        f"run: {run.path}  (model/, config.yaml, metrics.json, folds.json, report/, loss.png, "
        "scores.parquet)"
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from hybridrank.pipelines import LABELS

    train = sub.add_parser("train", help="train production models on a dataset")
    tsub = train.add_subparsers(dest="train_command", required=True)
    tg = tsub.add_parser(
        "gbdt",
        help="LambdaMART (click, LLM, raw-CTR or grade labels, or FAMOL on click and LLM labels) "
        "-> a run directory (bundle)",
    )
    tg.add_argument("--config", type=Path, help="train YAML (see studies/gbdt.yaml)")
    add_dataset_option(tg)
    tg.add_argument(
        "--label",
        choices=sorted(LABELS),
        help="label to train on (overrides label:); famol: FAMOL, one LambdaMART on click and "
        "LLM labels weighted by query frequency (needs a click log and `annotate`; options in "
        "famol:, the model in gbdt:)",
    )
    tg.add_argument(
        "--features", nargs="+", help="feature groups (click, text, semantic, dataset) or columns"
    )
    tg.add_argument(
        "--like-experiment", type=Path, metavar="DIR",
        help="train the label's model as the experiment in DIR trained its own (features, click "
        "labels and features, its LambdaMART settings; famol and expert included), for a bundle "
        "serving that experiment's stacker; --features still overrides",
    )  # fmt: skip
    tg.add_argument("--data", type=Path, help="collection directory, when the world is built here")
    tg.add_argument("--out", type=Path, default=Path("runs/gbdt"))
    tg.add_argument(
        "--dask-scheduler",
        metavar="tcp://HOST:PORT",
        help="train the folds and the model on this Dask scheduler's workers (overrides dask:)",
    )
    tg.add_argument(
        "--dask-workers",
        type=int,
        metavar="N",
        help="train on a local Dask cluster of N worker processes on 127.0.0.1 (overrides dask:)",
    )
    tg.set_defaults(func=cmd_train_gbdt)

    p = tsub.add_parser(
        "neural",
        help="cross-encoder / bi-encoder on LLM labels -> a run directory",
        description="Fine-tune the packaged MiniLM on a dataset's LLM labels (y_llm), "
        "cross-validated by query, and write model/, config.yaml, report/, "
        "metrics.json, folds.json and loss.png.",
    )
    p.add_argument("--config", type=Path, help="train YAML (see studies/neural.yaml)")
    p.add_argument(
        "--profile",
        help="profile of a config with `profiles:` (studies/neural.yaml: quick | full; default quick)",
    )
    p.add_argument(
        "--architecture",
        choices=list(ARCHITECTURES),
        help="override neural.architecture (a profile's per-architecture keys follow it)",
    )
    add_dataset_option(p)
    p.add_argument("--data", type=Path, help="collection directory, when the world is built here")
    p.add_argument("--out", type=Path, default=Path("runs/neural"))
    p.set_defaults(func=cmd_train_neural)
