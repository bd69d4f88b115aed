"""The embedded judge against the expert grades: quadratic kappa and what its grades alone rank.

Builds a click world (NFCorpus by default, or ``--world cisi``), labels it with
the embedded semantic judge and runs ``annotate report``, all through the CLI
as a user would (``world build``, ``annotate``, ``annotate report``). The
report's figures are on every judged pair outside the dataset's tuning
queries (their grades calibrate the judge):

- quadratic-weighted kappa against the expert grades;
- NDCG@10 by the judge's grades alone (ties broken by BM25) minus BM25's
  NDCG@10 on the same pairs.

``--draws N`` (passed to ``annotate report``) also refits the judge's
calibration on N other random query sets of the same size (the judge's scores
are fixed; only the calibration queries change) and prints the mean, lowest
and highest of both figures, so a result is not the luck of one calibration
set.

The judge's answers come from the answer cache (``$HYBRIDRANK_CACHE``) when
warm: about 15 seconds then; a cold NFCorpus world takes 5-10 minutes on 2 cores.

Usage: python bench/judge.py [--world nfcorpus|cisi] [--draws 10] [--out DIR]
Ends with two lines:
  RESULT judge_<world>_kappa_quadratic <kappa> target >= 0.40 : met|missed
  RESULT judge_<world>_grades_only_minus_bm25 <diff> target >= 0.03 : met|missed
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

KAPPA_TARGET = 0.40
GRADES_TARGET = 0.03


def _cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "hybridrank", *args], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--world", choices=["nfcorpus", "cisi"], default="nfcorpus")
    parser.add_argument("--draws", type=int, default=10)
    parser.add_argument(
        "--out", default=None, help="where to build the world (default: a temp dir)"
    )
    args = parser.parse_args()

    start = time.perf_counter()
    out = Path(args.out or tempfile.mkdtemp(prefix="bench-judge-")) / args.world
    if not (out / "dataset.yaml").exists():
        build = ["world", "build", "--out", str(out)]
        if args.world == "cisi":
            build += ["--data", "../shared/datasets/cisi", "--sessions", "2000"]
        _cli(*build)
    _cli("annotate", "--dataset", str(out))
    _cli("annotate", "report", "--dataset", str(out), "--draws", str(args.draws))
    report = json.loads((out / "agreement" / "agreement.json").read_text())
    overall = next(r for r in report["by_bucket"] if r.get("bucket", r.get("index")) == "all")
    kappa = float(report["overall"]["kappa_quadratic"])
    diff = float(overall["ndcg@10_grades_only"]) - float(overall["ndcg@10_bm25"])
    print(f"\nworld {args.world}: {out} ({time.perf_counter() - start:.0f}s)")
    print(
        f"RESULT judge_{args.world}_kappa_quadratic {kappa:.4f} target >= {KAPPA_TARGET} : "
        + ("met" if kappa >= KAPPA_TARGET else "missed")
    )
    print(
        f"RESULT judge_{args.world}_grades_only_minus_bm25 {diff:.4f} target >= {GRADES_TARGET} : "
        + ("met" if diff >= GRADES_TARGET else "missed")
    )


if __name__ == "__main__":
    main()
