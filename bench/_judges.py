"""The judge a bench's experiment labels with: the embedded MiniLM judge (default) or the
simulated judge of known quality (``--judge simulated --noise SD``), whose scores are the
world's own expert grades plus seeded noise (``hybridrank.labels.llm.SimulatedJudge``).

The simulated judge answers "what would this measure with a judge better than MiniLM?";
its figures are never a system's quality, since it reads the grades the evaluation uses.
"""

from __future__ import annotations

import argparse
from typing import Any

#: The qrels files behind each bench world (read in place from ../shared).
QRELS = {
    "nfcorpus": [
        "../shared/datasets/nfcorpus/dev.3-2-1.qrel",
        "../shared/datasets/nfcorpus/test.3-2-1.qrel",
    ],
    "cisi": ["../shared/datasets/cisi/qrels"],
}


def add_judge_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--judge", choices=["embedding", "simulated"], default="embedding",
        help="the LLM-label judge: embedding (the packaged MiniLM, default) or simulated "
        "(expert grade + noise; a measuring instrument, see bench/_judges.py)",
    )  # fmt: skip
    parser.add_argument(
        "--noise", type=float, default=2.0,
        help="simulated judge: the error's standard deviation on the 0-3 scale (on NFCorpus, 2.0 "
        "gives quadratic kappa about 0.58 and 1.0 about 0.79; other collections differ); "
        "ignored with --judge embedding",
    )  # fmt: skip


def annotate_config(args: argparse.Namespace) -> Any:
    """The experiment's ``annotate`` section for ``args.judge`` on ``args.world``."""
    from hybridrank.labels.llm import AnnotateConfig

    if args.judge == "embedding":
        return AnnotateConfig()
    params = {"qrels": QRELS[args.world], "noise": args.noise}
    return AnnotateConfig(backend="simulated", params=params)


def describe(args: argparse.Namespace) -> str:
    return "embedding" if args.judge == "embedding" else f"simulated (noise {args.noise:g})"


def result_world(args: argparse.Namespace) -> str:
    """The world part of a RESULT name: ``nfcorpus``, or ``nfcorpus_simulated_sd2`` with the
    simulated judge, so its lines are never read as the benchmark's own."""
    if args.judge == "embedding":
        return str(args.world)
    return f"{args.world}_simulated_sd{args.noise:g}".replace(".", "p")
