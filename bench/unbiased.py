"""Unbiased LambdaMART on raw clicks: learned position biases and per-bucket NDCG@10.

Default: the NFCorpus click world with 20,000 sessions (PBM clicks; its true
examination curve is known). Fits unbiased LambdaMART (XGBoost
``lambdarank_unbiased``; LightGBM's position column, whose biases come from
its debug log and are shown as exp(b_p - b_1)) on every impression row with
the dataset's own (non-click) features, prints the learned biases beside the
true curve and a PBM fitted by EM for ranks 1-10, then cross-validates, side
by side on the same table, three label sources with the same features and
engine: click-model labels (``label: click``), unbiased LambdaMART on raw
clicks (``label: clicks``) and raw-CTR labels (``label: ctr``), plus the
production click GBDT (click-model labels with click features) for
reference; NDCG@10 per bucket against the expert grades, tuning queries left
out.

Usage:
  python bench/unbiased.py                       # NFCorpus world, 20,000 sessions
  python bench/unbiased.py --data ../shared/datasets/cisi --sessions 20000
  python bench/unbiased.py --clara2 ../shared/datasets/clicklogs/clara2   # real clicks, real grades
Ends with (worlds only: a real log has no true curve):
  RESULT unbiased_position_bias_max_abs_diff_top5 <value> target <= 0.05 : met|missed
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import pandas as pd

from hybridrank.data import Dataset
from hybridrank.gbdt import LambdaMARTConfig
from hybridrank.pipelines import (
    DataConfig,
    GBDTTrainConfig,
    ImportConfig,
    UnbiasedConfig,
    WorldConfig,
    build_table,
    build_world,
    fit_unbiased,
    import_dataset,
    impression_rows,
    pbm_examination,
    position_bias_table,
    train_gbdt,
)


def load(args: argparse.Namespace) -> tuple[Dataset, tuple[float, ...] | None, str]:
    if args.clara2:
        root = Path(args.clara2)
        config = ImportConfig(
            log=str(root / "CLARA2SearchLog_beta"),
            log_format="clara2",
            qrels=str(root / "CLARA2QueryUrlRelevance_beta"),
            qrels_format="clara2",
        )
        return import_dataset(config), None, "CLARA2 (real clicks, real grades)"
    data = DataConfig() if args.data is None else DataConfig(format="trec", path=args.data)
    world = WorldConfig.from_dict({"simulation": {"n_sessions": args.sessions, "seed": args.seed}})
    world = WorldConfig(data=data, simulation=world.simulation)
    name = "NFCorpus" if args.data is None else Path(args.data).name
    return (
        build_world(world),
        world.simulation.examination,
        f"{name} world, {args.sessions} sessions",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", help="a TREC-layout collection for the world (default NFCorpus)")
    parser.add_argument("--clara2", help="the CLARA2 directory: import and use its real clicks")
    parser.add_argument("--sessions", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--engine", default="xgboost", choices=("xgboost", "lightgbm"))
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--no-compare", action="store_true", help="position biases only")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    start = time.perf_counter()

    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        dataset, true, title = load(args)
        assert dataset.impressions is not None
        table, _ = build_table(dataset)
        features = list(dataset.features)
        print(f"# {title}: {len(dataset.impressions)} impressions, features {features}")

        unbiased = UnbiasedConfig()
        rows = impression_rows(dataset, table, features, unbiased)
        learned: dict[str, pd.Series | None] = {}
        for engine in ("xgboost", "lightgbm"):
            t0 = time.perf_counter()
            ranker = fit_unbiased(
                rows, features, LambdaMARTConfig(engine=engine, n_jobs=args.n_jobs)
            )
            learned[engine] = ranker.position_bias_
            print(
                f"# {engine}: {ranker.best_iteration_} rounds, {time.perf_counter() - t0:.0f}s; "
                f"{ranker.position_bias_source_}"
            )
        pbm = pbm_examination(dataset.impressions, unbiased.max_position)
        bias = position_bias_table(learned, pbm, true)
        print("\n## Learned position biases (position 1 = 1)\n")
        print(bias.to_markdown(floatfmt=".3f"))
        diffs: dict[str, float] = {}
        if true is not None:
            for name in ("xgboost", "lightgbm", "pbm_examination"):
                if name in bias:
                    gap = (bias[name] - bias["true_examination"]).abs().loc[1:5]
                    diffs[name] = float(gap.max())
                    print(f"max |{name} - true| on ranks 1-5: {diffs[name]:.3f}")

        if not args.no_compare:
            compare(dataset, args, features, tmp)
        print(f"\n# total {time.perf_counter() - start:.0f}s")
        if true is not None:
            value = diffs["xgboost"]
            print(
                f"RESULT unbiased_position_bias_max_abs_diff_top5 {value:.3f} target <= 0.05 : "
                f"{'met' if value <= 0.05 else 'missed'}"
            )


def compare(dataset: Dataset, args: argparse.Namespace, features: list[str], tmp: Path) -> None:
    """Per-bucket NDCG@10 of the label sources, cross-validated on the same folds."""
    gbdt = {"engine": args.engine, "n_jobs": args.n_jobs}
    runs = {
        "click-model labels": {"label": "click", "features": features},
        "unbiased LambdaMART (raw clicks)": {"label": "clicks", "features": features},
        "raw-CTR labels": {"label": "ctr", "features": features},
        "click-model labels + click features": {"label": "click", "features": ["click", *features]},
    }
    frames = []
    for what, spec in runs.items():
        t0 = time.perf_counter()
        config = GBDTTrainConfig.from_dict({**spec, "gbdt": gbdt, "metrics": ["ndcg@10"]})
        run = train_gbdt(config, tmp / f"run-{len(frames)}", dataset=dataset, progress=False)
        if run.report is None:
            print(f"# {what}: no expert grades, no report")
            continue
        s = run.report.summary
        mine = s[s["system"] == run.name].assign(system=what)
        if not frames:
            frames.append(s[s["system"] == "bm25"])
        frames.append(mine)
        print(f"# {what}: {time.perf_counter() - t0:.0f}s")
    if not frames:
        return
    summary = pd.concat(frames)
    n = summary.drop_duplicates("bucket").set_index("bucket")["n"]
    pivot = summary.pivot_table(
        index="system", columns="bucket", values="ndcg@10", sort=False
    ).rename(columns=lambda b: f"{b} (n={int(n[b])})")
    print(f"\n## NDCG@10 per bucket ({args.engine}, same features {features}, expert grades)\n")
    print(pivot.to_markdown(floatfmt=".3f"))


if __name__ == "__main__":
    main()
