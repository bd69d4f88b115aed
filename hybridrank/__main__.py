"""``python -m hybridrank`` runs the command-line interface."""

from hybridrank.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
