"""The ``hybridrank`` command: one entry point with subcommands."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from hybridrank import __version__
from hybridrank import columns as C
from hybridrank.errors import HybridRankError

logger = logging.getLogger("hybridrank")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return value


def _world_config(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from hybridrank.world import WorldConfig

    config = WorldConfig.from_yaml(args.config) if args.config else WorldConfig()
    sim = config.simulation
    overrides = {
        "n_sessions": args.sessions,
        "zipf_exponent": args.zipf,
        "seed": args.seed,
        "click_model": args.click_model,
    }
    sim = replace(sim, **{k: v for k, v in overrides.items() if v is not None})
    return config.replace(simulation=sim)


def _add_world_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config", type=Path, help="world YAML (default: the embedded NFCorpus click world)"
    )
    p.add_argument(
        "--data",
        type=Path,
        help="collection directory (default: $HYBRIDRANK_DATA, ../shared/datasets, else download)",
    )
    p.add_argument("--sessions", type=_positive_int, help="number of simulated sessions")
    p.add_argument("--zipf", type=float, help="Zipf exponent of query popularity")
    p.add_argument("--seed", type=int, help="simulation seed")
    p.add_argument(
        "--click-model", choices=["pbm", "cascade"], help="click model of simulated users"
    )


def cmd_world_build(args: argparse.Namespace) -> int:
    from hybridrank.world import build_world

    config = _world_config(args)
    start = time.perf_counter()
    world = build_world(config, data=args.data)
    out = world.save(args.out)
    summary = world.summary()
    print(f"click world written to {out} in {time.perf_counter() - start:.1f}s")
    print(
        f"  {summary['queries']} queries ({summary['queries_with_candidates']} with candidates, "
        f"{summary['queries_with_relevant_candidate']} with a relevant candidate), "
        f"{summary['candidates']} candidates"
    )
    print(
        f"  {summary['sessions']} sessions, {summary['impressions']} impressions, {summary['clicks']} clicks"
    )
    print("  CTR by rank: " + " ".join(f"{v:.3f}" for v in summary["ctr_by_rank"]))
    table = pd.DataFrame(summary["buckets"]).T
    print(table.to_markdown())
    return 0


def cmd_world_examination(args: argparse.Namespace) -> int:
    from hybridrank.data import ctr_by_rank, examination_from_ctr, read_clara2, read_yandex_sample

    root = args.clicklogs
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


def _evaluate_and_write(
    candidates: pd.DataFrame,
    systems: Sequence[str],
    *,
    out: Path,
    metrics: Sequence[str],
    baseline: str | None,
    title: str,
    label: str = C.Y_EXPERT,
) -> None:
    from hybridrank.evaluate import evaluate_table

    order = ("low", "mid", "high")
    present = set(candidates[C.BUCKET].astype(str)) if C.BUCKET in candidates else set()
    bucket_order = [b for b in order if b in present] + sorted(present - set(order))
    report = evaluate_table(
        candidates,
        systems,
        label=label,
        metrics=metrics,
        bucket=C.BUCKET if C.BUCKET in candidates else None,
        bucket_order=bucket_order,
        baseline=baseline,
        title=title,
    )
    print(report.to_text())
    paths = report.write(out)
    print()
    for kind, path in paths.items():
        print(f"  {kind:>16}: {path}")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from hybridrank.errors import DataFormatError

    path: Path = args.candidates
    try:
        table = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such candidate table") from None
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise DataFormatError(f"cannot read the candidate table ({exc})", path=path) from None
    _evaluate_and_write(
        table,
        args.systems,
        out=args.out,
        metrics=args.metrics,
        baseline=args.baseline,
        title=f"{path}: {', '.join(args.systems)} against {args.label}",
        label=args.label,
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from hybridrank.world import build_world

    start = time.perf_counter()
    config = _world_config(args)
    out: Path = args.out
    print(f"hybridrank {__version__} demo: building the click world ...", flush=True)
    world = build_world(config, data=args.data)
    world.save(out / "world")
    s = world.summary()
    print(
        f"  {s['queries']} queries, {s['candidates']} BM25 candidates, {s['sessions']} sessions, "
        f"{s['clicks']} clicks; buckets "
        + ", ".join(f"{b}: {v['queries']}" for b, v in s["buckets"].items())
    )
    print()
    _evaluate_and_write(
        world.candidates,
        [C.BM25],
        out=out / "report",
        metrics=args.metrics,
        baseline=None,
        title=(
            f"BM25 baseline on the {world.config.data.format} click world "
            f"({world.config.simulation.n_sessions} sessions, Zipf {world.config.simulation.zipf_exponent:g}, "
            f"seed {world.config.simulation.seed}); expert grades"
        ),
    )
    print(f"\ndone in {time.perf_counter() - start:.1f}s; outputs under {out}")
    return 0


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

    world = sub.add_parser("world", help="build and inspect the click world")
    wsub = world.add_subparsers(dest="world_command", required=True)
    build = wsub.add_parser(
        "build", help="collection + BM25 + simulated traffic -> a run directory"
    )
    _add_world_options(build)
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
    exam.add_argument("--max-rank", type=int, default=10)
    exam.set_defaults(func=cmd_world_examination)

    ev = sub.add_parser("evaluate", help="score columns of a candidate table -> per-bucket report")
    ev.add_argument(
        "--candidates", type=Path, required=True, help="candidate table (.parquet or .csv)"
    )
    ev.add_argument("--systems", nargs="+", default=[C.BM25], help="score columns to evaluate")
    ev.add_argument("--metrics", nargs="+", default=["ndcg@10", "mrr", "err@10"])
    ev.add_argument("--label", default=C.Y_EXPERT, help="graded relevance column")
    ev.add_argument("--baseline", help="system to test the others against (paired randomisation)")
    ev.add_argument("--out", type=Path, default=Path("runs/report"))
    ev.set_defaults(func=cmd_evaluate)

    demo = sub.add_parser("demo", help="the end-to-end demo on the embedded default world")
    _add_world_options(demo)
    demo.add_argument("--out", type=Path, default=Path("runs/demo"))
    demo.add_argument("--metrics", nargs="+", default=["ndcg@10", "mrr", "err@10"])
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    # bm25s sets its own logger to DEBUG; keep it at ours.
    logging.getLogger("bm25s").setLevel(level)
    try:
        return int(args.func(args))
    except (HybridRankError, FileNotFoundError, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"hybridrank: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
