"""``python -m hybridrank`` and the ``hybridrank`` command: the command-line interface."""

from __future__ import annotations

import os
import sys


def run() -> int:
    """The console entry point. The CLI's modules load here, inside it, so a Ctrl-C
    while they load (a second or two) ends in one line too, not a traceback."""
    try:
        from hybridrank.cli import main
    except KeyboardInterrupt:
        print("hybridrank: interrupted while starting; nothing was done", file=sys.stderr)
        return 130
    try:
        try:
            return main()
        finally:  # what is still buffered goes out here, where a closed reader is handled
            sys.stdout.flush()
    except BrokenPipeError:
        # The reader of stdout went away (`hybridrank ... | head`): no traceback, and no
        # second error when Python flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    raise SystemExit(run())
