"""The ``hybridrank`` command: one module per command group, each registering its subcommands.

``main`` reports hybridrank's own errors (bad input, configs, missing files)
in one line; any other exception is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from hybridrank import __version__
from hybridrank.cli import (
    _annotate,
    _clickmodel,
    _dataset,
    _evaluate,
    _experiment,
    _serve,
    _study,
    _train,
    _world,
)
from hybridrank.errors import HybridRankError

logger = logging.getLogger("hybridrank")

#: The command groups, in the order ``--help`` lists them.
COMMAND_MODULES = (
    _dataset,
    _world,
    _annotate,
    _train,
    _evaluate,
    _experiment,
    _study,
    _serve,
    _clickmodel,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hybridrank",
        description="Learning to rank from user clicks and LLM relevance labels, fused by query frequency.",
    )
    parser.add_argument("--version", action="version", version=f"hybridrank {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    # bm25s sets its own logger to DEBUG; keep it at ours.
    logging.getLogger("bm25s").setLevel(level)
    if args.command in ("experiment", "demo", "study"):
        # Optuna logs every trial at INFO (and resets its logger on first use).
        import optuna

        optuna.logging.set_verbosity(level)
    try:
        return int(args.func(args))
    except HybridRankError as exc:
        print(f"hybridrank: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"hybridrank: interrupted during `{args.command}`; finished files and caches are kept, "
            "rerun the same command to resume",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
