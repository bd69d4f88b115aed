"""``hybridrank world``: build the simulated click world (a dataset), inspect real logs' CTR curves."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from hybridrank._atomic import check_output_dir
from hybridrank.cli._common import add_world_options, at_least_one, world_config
from hybridrank.errors import MissingInputError


def cmd_world_build(args: argparse.Namespace) -> int:
    from hybridrank.data import MANIFEST
    from hybridrank.pipelines import build_world, world_summary, write_world

    config = world_config(args)
    check_output_dir(args.out, markers=(MANIFEST,))  # before the work, not after it
    start = time.perf_counter()
    dataset = build_world(config, data=args.data)
    out = write_world(dataset, args.out)
    summary = world_summary(dataset)
    print(f"click world (a dataset) written to {out} in {time.perf_counter() - start:.1f}s")
    print(
        f"  {summary['queries']} queries ({summary['queries_with_candidates']} with candidates), "
        f"{summary['candidates']} candidates; {summary['tuning_queries']} labelled tuning queries"
    )
    print(
        f"  {summary['sessions']} sessions, {summary['impressions']} impressions, {summary['clicks']} clicks"
    )
    print("  CTR by rank: " + " ".join(f"{v:.3f}" for v in summary["ctr_by_rank"]))
    print(dataset.bucket_table().to_markdown())
    print(f"\nnext: hybridrank annotate --dataset {out}; hybridrank experiment --dataset {out}")
    return 0


def cmd_world_examination(args: argparse.Namespace) -> int:
    from hybridrank.data import ctr_by_rank, examination_from_ctr, read_clara2, read_yandex_sample

    root = args.clicklogs
    if not root.is_dir():
        raise MissingInputError(
            f"--clicklogs {root}: no such directory (it holds yandex-wscd-sample/ and clara2/)"
        )
    logs = {
        "yandex": (read_yandex_sample, root / "yandex-wscd-sample" / "trainSample"),
        "clara2": (read_clara2, root / "clara2" / "CLARA2SearchLog_beta"),
    }
    curves = {}
    rows = []
    for name, (reader, path) in logs.items():
        log = reader(path)
        ctr = ctr_by_rank(log, max_rank=args.max_rank)
        curves[name] = examination_from_ctr(ctr)
        rows.append({"log": name, "measure": "ctr", **{f"r{i + 1}": v for i, v in enumerate(ctr)}})
        rows.append(
            {
                "log": name,
                "measure": "ctr/ctr1",
                **{f"r{i + 1}": v for i, v in enumerate(curves[name])},
            }
        )
    mean = np.minimum.accumulate(np.mean(np.vstack(list(curves.values())), axis=0))
    rows.append(
        {"log": "mean", "measure": "examination", **{f"r{i + 1}": v for i, v in enumerate(mean)}}
    )
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".3f"))
    print()
    print("simulation:")
    print("  examination: [" + ", ".join(f"{v:.3f}" for v in mean) + "]")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    world = sub.add_parser("world", help="build the simulated click world (a dataset)")
    wsub = world.add_subparsers(dest="world_command", required=True)
    build = wsub.add_parser(
        "build",
        help="collection + BM25 + simulated traffic -> a dataset directory",
        description="Build the click world: real text and grades, simulated traffic. The output "
        "is a dataset (dataset.yaml + parquet tables) every other command reads with --dataset.",
    )
    add_world_options(build)
    build.add_argument("--out", type=Path, default=Path("runs/world"), help="output directory")
    build.set_defaults(func=cmd_world_build)
    exam = wsub.add_parser(
        "examination",
        help="CTR by rank of the real click logs and the examination curve derived from it",
    )
    exam.add_argument(
        "--clicklogs",
        type=Path,
        default=Path("../shared/datasets/clicklogs"),
        help="directory holding yandex-wscd-sample/ and clara2/",
    )
    exam.add_argument(
        "--max-rank", type=at_least_one, default=10, help="ranks to read (default: 10)"
    )
    exam.set_defaults(func=cmd_world_examination)
