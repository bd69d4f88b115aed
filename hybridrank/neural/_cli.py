"""``hybridrank train neural``: the command, and its parser for hybridrank/cli.py to mount."""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from hybridrank.neural._config import ARCHITECTURES


def add_train_neural_parser(subparsers: Any) -> None:
    """Add ``neural`` to the ``hybridrank train`` subparsers."""
    p = subparsers.add_parser(
        "neural",
        help="cross-encoder / bi-encoder on LLM labels -> a run directory",
        description="Fine-tune the packaged MiniLM on the click world's LLM labels (y_llm), "
        "5-fold cross-validated by query, and write model/, config.yaml, report/, "
        "metrics.json, folds.json and loss.png.",
    )
    p.add_argument(
        "--config",
        type=Path,
        help="train YAML (default: the built-in defaults; see studies/neural.yaml)",
    )
    p.add_argument(
        "--profile",
        help="profile of a config with `profiles:` (studies/neural.yaml: quick | full; default quick)",
    )
    p.add_argument(
        "--architecture",
        choices=list(ARCHITECTURES),
        help="override neural.architecture (a profile's per-architecture keys follow it)",
    )
    p.add_argument("--world", type=Path, help="a world directory from `hybridrank world build`")
    p.add_argument("--data", type=Path, help="collection directory for building the world")
    p.add_argument("--out", type=Path, default=Path("runs/neural"))
    p.set_defaults(func=cmd_train_neural)


def cmd_train_neural(args: argparse.Namespace) -> int:
    """Run :func:`hybridrank.neural.train_neural` and print its report."""
    from hybridrank.neural._train import NeuralTrainConfig, train_neural

    architecture = getattr(args, "architecture", None)
    config = (
        NeuralTrainConfig.from_yaml(
            args.config, getattr(args, "profile", None), architecture=architecture
        )
        if args.config
        else NeuralTrainConfig()
    )
    if architecture:
        config = replace(config, neural=replace(config.neural, architecture=args.architecture))
    if args.world:
        config = replace(config, world_dir=str(args.world))
    start = time.perf_counter()
    run = train_neural(config, args.out, data=args.data)
    print(run.report.to_text())
    print(f"\ntimings (s): {run.timings}; total {time.perf_counter() - start:.1f}s")
    print(
        f"run: {run.path}  (model/, config.yaml, metrics.json, folds.json, report/, loss.png, "
        "scores.parquet)"
    )
    return 0
