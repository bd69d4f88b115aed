"""``python -m hybridrank`` and the ``hybridrank`` command: the command-line interface."""

from __future__ import annotations

import sys


def run() -> int:
    """The console entry point. The CLI's modules load here, inside it, so a Ctrl-C
    while they load (a second or two) ends in one line too, not a traceback."""
    try:
        from hybridrank.cli import main
    except KeyboardInterrupt:
        print("hybridrank: interrupted while starting; nothing was done", file=sys.stderr)
        return 130
    return main()


if __name__ == "__main__":
    raise SystemExit(run())
