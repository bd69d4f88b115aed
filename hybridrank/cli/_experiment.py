"""``hybridrank experiment`` and ``hybridrank demo``: the clicks-vs-LLM-labels experiment."""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from hybridrank import __version__
from hybridrank.cli._common import (
    add_dataset_option,
    add_world_options,
    positive_int,
    with_data_path,
    world_config,
)
from hybridrank.errors import ConfigError


def print_experiment(result: Any) -> None:
    print(result.main.to_text())
    metric = result.main.metrics[0]
    if result.sweep.shape[1] and len({c[0] for c in result.sweep.columns}) > 1:
        print(
            f"\n{metric} by session count (seed {next(iter(result.per_seed))}; columns: sessions / bucket)"
        )
        print(result.sweep.to_markdown(floatfmt=".3f"))
    runs = result.info["runs"]
    gates = {k: v["gate"] for k, v in runs.items() if "gate" in v}
    if gates:
        print("\ntuned gates (sigmoid: click weight g = sigmoid(slope * (log1p(freq) - centre)); "
              f"head: a base gate with the head queries' weight fixed): {gates}")  # fmt: skip
    heads = {k: v["click_tuning"] for k, v in runs.items() if "click_tuning" in v}
    for name, head in heads.items():
        chosen = (
            f"weight {head['weight']:g} for queries of >= {head['min_frequency']:g} sessions "
            f"(at most that below them)" if head["weight"] is not None
            else f"none ({head['kept_base']})"
        )  # fmt: skip
        print(f"{name}: head click weight from the head queries' {head['held_out_sessions']} "
              "clicked held-out sessions: "
              f"{chosen}")  # fmt: skip
    print(f"reports: {result.path / 'report'}  (main.md/.csv/.json, main_*.png)")


def cmd_experiment(args: argparse.Namespace) -> int:
    from hybridrank.data import Dataset
    from hybridrank.pipelines import ExperimentConfig, run_experiment

    config = ExperimentConfig.from_yaml(args.config) if args.config else ExperimentConfig()
    if args.seeds:
        config = replace(config, seeds=tuple(args.seeds))
    if args.sessions is not None:
        config = replace(config, sessions=tuple(args.sessions))
    if args.cache is not None:
        config = replace(config, cache=str(args.cache))
    if args.no_neural_cache:
        config = replace(config, neural_cache=False)
    if args.dataset is not None and args.data is not None:
        raise ConfigError(
            "--data names the collection of a simulated world; with --dataset the experiment "
            "runs on that dataset: drop one of them"
        )
    dataset = Dataset.read(args.dataset) if args.dataset else None
    start = time.perf_counter()
    result = run_experiment(
        with_data_path(config, args.data), args.out, dataset=dataset,
        echo=lambda m: print(m, flush=True),
    )  # fmt: skip
    print_experiment(result)
    print(f"done in {time.perf_counter() - start:.0f}s")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The main job: the whole experiment on the embedded defaults, one seed."""
    from hybridrank.pipelines import ExperimentConfig, run_experiment

    start = time.perf_counter()
    config = ExperimentConfig(
        world=world_config(args),
        seeds=(args.seed if args.seed is not None else 0,),
        sessions=(),
        cache=str(args.cache) if args.cache else None,
    )
    config = replace(config, metrics=tuple(args.metrics))
    if args.no_neural:
        config = replace(config, neural=None)
    if args.no_neural_cache:
        config = replace(config, neural_cache=False)
    print(
        f"hybridrank {__version__} demo: NFCorpus click world, embedded semantic judge (MiniLM, not an LLM), "
        f"click-GBDT, LLM-GBDT{'' if args.no_neural else ', LLM-neural (the MiniLM query tower distilled from the judge)'}, data scheduling, "
        "FAMOL, the gold expert (LambdaMART on the tuning queries' expert grades), the "
        "frequency-gated stacker and the meta-ranker",
        flush=True,
    )
    result = run_experiment(
        with_data_path(config, args.data), args.out, echo=lambda m: print("  " + m, flush=True)
    )
    print()
    print_experiment(result)
    print(f"\ndone in {time.perf_counter() - start:.0f}s; outputs under {args.out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    ex = sub.add_parser(
        "experiment", help="the clicks-vs-LLM-labels experiment on a dataset or simulated worlds"
    )
    ex.add_argument(
        "--config",
        type=Path,
        help="experiment YAML (default: the built-in defaults; studies/paper.yaml is the "
        "paper's setup)",
    )
    add_dataset_option(
        ex,
        help="run on this dataset (its folds, buckets and tuning set); default: simulate the "
        "config's click world for every seed",
    )
    ex.add_argument("--data", type=Path, help="collection directory of the simulated world")
    ex.add_argument("--seeds", type=int, nargs="+", help="simulation seeds (overrides the config)")
    ex.add_argument("--sessions", type=positive_int, nargs="*", help="session counts of the sweep")
    ex.add_argument("--cache", type=Path, help="answer cache (default: the one shared cache)")
    ex.add_argument("--out", type=Path, default=Path("runs/experiment"))
    _add_neural_cache_option(ex)
    ex.set_defaults(func=cmd_experiment)

    demo = sub.add_parser("demo", help="the end-to-end demo on the embedded default world")
    add_world_options(demo)
    demo.add_argument("--out", type=Path, default=Path("runs/demo"))
    demo.add_argument("--metrics", nargs="+", default=["ndcg@10", "mrr"])
    demo.add_argument("--cache", type=Path, help="answer cache (default: the one shared cache)")
    demo.add_argument("--neural", action="store_true", help=argparse.SUPPRESS)  # the old opt-in
    demo.add_argument(
        "--no-neural",
        action="store_true",
        help="leave out the LLM-neural model (the query tower; about 1 min 45 s of a cold demo on 2 cores; a rerun reads its cached scores)",
    )
    _add_neural_cache_option(demo)
    demo.set_defaults(func=cmd_demo)


def _add_neural_cache_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-neural-cache",
        action="store_true",
        help="train the LLM-neural model even when its scores for these inputs are cached, "
        "and cache nothing (config: neural_cache: false)",
    )
