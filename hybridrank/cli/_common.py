"""Helpers shared by the command modules: argument types, option groups, printing."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from hybridrank import columns as C
from hybridrank.errors import ConfigError


def positive_int(text: str) -> int:
    """An argparse type: a whole number >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return value


def at_least_one(text: str) -> int:
    """An argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


def finite_float(text: str) -> float:
    """An argparse type: a finite number (not nan or inf)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def at_least_two(text: str) -> int:
    """An argparse type: a whole number >= 2 (query folds)."""
    value = at_least_one(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 2, got {value}")
    return value


def share(text: str) -> float:
    """An argparse type: a number strictly between 0 and 1 (a held-out share)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a share between 0 and 1, got {text}")
    return value


def add_world_options(p: argparse.ArgumentParser) -> None:
    """Options of a simulated click world (``world build``, ``demo``)."""
    p.add_argument(
        "--config", type=Path, help="world YAML (default: the embedded NFCorpus click world)"
    )
    p.add_argument(
        "--data",
        type=Path,
        help="collection directory: NFCorpus release layout, or a TREC layout (docs.tsv|docs.jsonl, "
        "queries.tsv, qrels; or BEIR's corpus.jsonl, queries.jsonl, qrels/test.tsv), detected by its files (default: $HYBRIDRANK_DATA, ../shared/datasets)",
    )
    p.add_argument("--sessions", type=positive_int, help="number of simulated sessions")
    p.add_argument("--zipf", type=finite_float, help="Zipf exponent of query popularity")
    p.add_argument("--seed", type=positive_int, help="simulation seed")
    p.add_argument(
        "--click-model", choices=["pbm", "cascade"], help="click model of simulated users"
    )
    p.add_argument(
        "--unknown-ids",
        choices=["error", "drop"],
        help="qrels naming unknown documents or queries: an error (default) or dropped and counted",
    )
    p.add_argument(
        "--tuning-queries",
        type=positive_int,
        help="labelled tuning/calibration queries of the dataset (default 60)",
    )


def world_config(args: argparse.Namespace) -> Any:
    """The world config of :func:`add_world_options`' flags over ``--config``."""
    from dataclasses import replace

    from hybridrank.pipelines import WorldConfig

    config = WorldConfig.from_yaml(args.config) if args.config else WorldConfig()
    sim = config.simulation
    overrides = {
        "n_sessions": args.sessions,
        "zipf_exponent": args.zipf,
        "seed": args.seed,
        "click_model": args.click_model,
    }
    sim = replace(sim, **{k: v for k, v in overrides.items() if v is not None})
    data = config.data
    if getattr(args, "unknown_ids", None):
        data = replace(data, unknown_ids=args.unknown_ids)
    folds = config.folds
    if getattr(args, "tuning_queries", None) is not None:
        folds = replace(folds, tuning_queries=args.tuning_queries)
    return config.replace(simulation=sim, data=data, folds=folds)


def bucket_order(table: pd.DataFrame) -> list[str]:
    order = ("low", "mid", "high")
    present = set(table[C.BUCKET].astype(str)) if C.BUCKET in table else set()
    return [b for b in order if b in present] + sorted(present - set(order))


def print_paths(paths: dict[str, Path], width: int = 16) -> None:
    print()
    for kind, path in paths.items():
        print(f"  {kind:>{width}}: {path}")


def print_skipped(skipped: dict[str, str]) -> None:
    for name, why in skipped.items():
        print(f"skipped {name}: {why}")


def add_dataset_option(p: argparse.ArgumentParser, *, required: bool = False, help: str = "") -> None:
    p.add_argument(
        "--dataset",
        type=Path,
        required=required,
        help=help
        or "a dataset directory (`hybridrank dataset import` or `hybridrank world build`)",
    )


def systems_present(table: pd.DataFrame, systems: Sequence[str]) -> list[str]:
    return [s for s in systems if s in table.columns]


def with_data_path(config: Any, data: Path | None) -> Any:
    """``config`` with ``--data DIR`` as its ``world.data.path``, so the config a command
    writes beside its output names the collection it was built on."""
    if data is None:
        return config
    world = config.world
    path = str(Path(data).resolve())  # the config.yaml rebuilds it from any directory
    return replace(config, world=replace(world, data=replace(world.data, path=path)))


def remember_defaults(parser: argparse.ArgumentParser) -> None:
    """Record the parser's option defaults, for :func:`refuse_options`."""
    parser.set_defaults(
        _defaults={a.dest: a.default for a in parser._actions if a.option_strings},
        _flags={a.dest: a.option_strings[-1] for a in parser._actions if a.option_strings},
    )


def refuse_options(
    args: argparse.Namespace, allowed: Sequence[str], mode: str, hint: str = ""
) -> None:
    """A usage error naming the options given that ``mode`` does not read (they would be
    ignored silently). ``allowed``: the destinations it reads; ``hint``: where they are read
    (added to the message)."""
    defaults: dict[str, Any] = getattr(args, "_defaults", {})
    flags: dict[str, str] = getattr(args, "_flags", {})
    ignored = [
        flags[dest]
        for dest, default in defaults.items()
        if dest not in allowed
        and dest not in ("verbose", "quiet", "help")
        and getattr(args, dest, default) != default
    ]
    if ignored:
        them = "them" if len(ignored) > 1 else "it"
        raise ConfigError(f"{', '.join(ignored)}: not read by `{mode}`; drop {them}{hint}")
