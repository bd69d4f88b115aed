"""The ``hybridrank`` command: one module per command group, each registering its subcommands.

``main`` reports hybridrank's own errors (bad input, configs, missing files)
in one line; any other exception is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

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


#: Control characters (ANSI escapes, carriage returns, bells...) except newline and tab.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def escape_untrusted(text: str) -> str:
    """Text from outside (a server's answer, a file's bytes) made safe for a terminal.

    Control characters become visible escapes (``\\x1b``), so an answer cannot
    move the cursor, recolour or clear the user's terminal.
    """
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


class _EscapingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return escape_untrusted(super().format(record))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hybridrank",
        description="Learning to rank from user clicks and LLM relevance labels, fused by query frequency.",
    )
    parser.add_argument("--version", action="version", version=f"hybridrank {__version__}")
    _add_output_options(parser, default=0)
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.register(sub)
    _add_to_subcommands(parser)
    return parser


def _add_output_options(parser: argparse.ArgumentParser, *, default: Any) -> None:
    """``-v`` (more log output) and ``-q`` (errors only, no progress bars); after the
    subcommand, ``-v`` counts apart (``sub_verbose``) and adds to the top level's."""
    parser.add_argument(
        "-v", "--verbose", action="count", default=default,
        dest="verbose" if default == 0 else "sub_verbose",
        help="more log output (-vv for debug)",
    )  # fmt: skip
    parser.add_argument(
        "-q", "--quiet", action="store_true", default=False if default == 0 else default,
        help="no warnings and no progress bars, errors only (bars are off anyway when "
        "stderr is not a terminal)",
    )  # fmt: skip


class _DefaultsFormatter(argparse.HelpFormatter):
    """Help that states each option's default where it has one and the text does not."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            action.option_strings
            and "default" not in text.lower()
            and default is not None
            and default is not argparse.SUPPRESS
            and not isinstance(default, bool)
            and default != []
        ):
            text += " (default: %(default)s)"
        return text


def _add_to_subcommands(parser: argparse.ArgumentParser) -> None:
    """``-v``/``-q`` after the subcommand too (``hybridrank world build -v``), and help
    that states defaults."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                child.formatter_class = _DefaultsFormatter
                # SUPPRESS: absent after the subcommand, the top-level value stands.
                _add_output_options(child, default=argparse.SUPPRESS)
                _add_to_subcommands(child)


class _DropInterruptedTrials(logging.Filter):
    """Drops Optuna's two records of a trial stopped by Ctrl-C: "Trial N failed ..." with
    the KeyboardInterrupt's traceback, then "Trial N failed with value None."; a trial
    that failed for any other reason keeps both."""

    def __init__(self) -> None:
        super().__init__()
        self._interrupted: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[0] if record.exc_info else None
        if exc is not None and issubclass(exc, KeyboardInterrupt):
            number = re.match(r"Trial (\d+) ", record.getMessage())
            self._interrupted = number.group(1) if number else None
            return False
        if self._interrupted is not None and record.getMessage().startswith(
            f"Trial {self._interrupted} failed with value"
        ):
            self._interrupted = None
            return False
        return True


def main(argv: Sequence[str] | None = None) -> int:
    command = "start-up"
    restore_bars: Callable[[], None] | None = None
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        command = args.command
        _configure_logging(args)
        if args.quiet or not sys.stderr.isatty():
            restore_bars = _bars_off()  # no bar updates in a log file or CI output
        return int(args.func(args))
    except HybridRankError as exc:
        print(f"hybridrank: error: {escape_untrusted(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"hybridrank: interrupted during `{command}`; finished files and caches are kept, "
            "the same command run again reuses them",
            file=sys.stderr,
        )
        return 130
    except BrokenPipeError:
        # The reader of stdout went away (`... | head`): what was written is written; no
        # traceback, and no second error when Python flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except OSError as exc:
        if exc.errno not in _ENVIRONMENT_ERRORS:
            raise
        # A full disk, a read-only or forbidden path: the machine's state, not a bug.
        where = f"{exc.filename}: " if exc.filename else ""
        print(
            f"hybridrank: error: {escape_untrusted(where + (exc.strerror or str(exc)))} "
            f"(during `{command}`; finished files and caches are kept)",
            file=sys.stderr,
        )
        return 1
    finally:
        if restore_bars is not None:
            restore_bars()


def _bars_off() -> Callable[[], None]:
    """Every tqdm progress bar off (ours, Optuna's, sentence-transformers': all subclass
    ``tqdm.std.tqdm``) until the returned function restores them. tqdm's own environment
    switch is read when tqdm is imported, so it cannot be set for one command."""
    import tqdm.std

    original = tqdm.std.tqdm.__init__

    def silent(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs["disable"] = True
        original(self, *args, **kwargs)

    tqdm.std.tqdm.__init__ = silent  # type: ignore[method-assign]

    def restore() -> None:
        tqdm.std.tqdm.__init__ = original  # type: ignore[method-assign]

    return restore

#: OS errors that report the machine's state (disk full, read-only, no permission).
_ENVIRONMENT_ERRORS = frozenset(
    getattr(errno, name)
    for name in ("ENOSPC", "EROFS", "EACCES", "EPERM", "EDQUOT")
    if hasattr(errno, name)
)


def _configure_logging(args: argparse.Namespace) -> None:
    verbose = args.verbose + getattr(args, "sub_verbose", 0)
    level = logging.WARNING - 10 * min(verbose, 2)
    if args.quiet:
        level = logging.ERROR
    handler = logging.StreamHandler()
    handler.setFormatter(_EscapingFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
    # bm25s sets its own logger to DEBUG when imported; BM25 resets it to follow ours.
    if args.command in ("experiment", "demo", "study"):
        # Optuna logs every trial at INFO (and resets its logger on first use).
        import optuna

        optuna.logging.set_verbosity(level)
        # A second Ctrl-C inside a trial (the first one stops the study after it):
        # Optuna logs "Trial N failed" with the traceback, then "Trial N failed with value
        # None.", before it re-raises; the one line below says what is kept, so both
        # records are dropped. The filter sits on the logger that makes them: Optuna's
        # progress bar replaces the handlers.
        trials = logging.getLogger("optuna.study._optimize")
        if not any(isinstance(f, _DropInterruptedTrials) for f in trials.filters):
            trials.addFilter(_DropInterruptedTrials())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
