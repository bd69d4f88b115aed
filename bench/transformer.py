"""The LLM-supervised transformer against its own untrained start, per frequency bucket.

Runs the experiment once (one seed, the default neural model: the query tower
distilled from the judge's continuous grades into per-document offsets, see README
"The transformer semantic model")
on a click world, NFCorpus by default or ``--world cisi``, and compares
``llm_neural`` (trained out of fold) with ``raw_minilm`` (the same packaged
MiniLM at the same sequence length, untrained) on every evaluated query:
NDCG@10 per bucket, the paired difference and a paired randomisation test.
The neural model reads texts and LLM labels only, so one seed is every
query once; more seeds would repeat the same queries.

A few minutes on two cores (the judge's answers come from the answer cache
after the first run; the transformer's five folds about 1 minute).

Usage: python bench/transformer.py [--world nfcorpus|cisi] [--seed 0] [--neural KEY=VALUE ...]
       [--judge embedding|simulated] [--noise 2.0]
Ends with: RESULT transformer_<world>_gain_over_untrained <min(all, low)> target >= 0.02 : met|missed
(met needs the gain >= 0.02 overall and on the low bucket, each with p < 0.05).
With ``--judge simulated`` the name is ``transformer_<world>_simulated_sd<noise>_...``: the
teacher is then a judge of known quality (bench/_judges.py), not the benchmark's.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from _judges import add_judge_arguments, annotate_config, describe, result_world

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TARGET = 0.02


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--world", choices=["nfcorpus", "cisi"], default="nfcorpus")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--neural", nargs="*", default=[], metavar="KEY=VALUE",
        help="override keys of the experiment's neural config (values read as YAML)",
    )  # fmt: skip
    parser.add_argument("--out", default=None)
    add_judge_arguments(parser)
    args = parser.parse_args()

    import optuna
    import pandas as pd

    from hybridrank.evaluate import ndcg_at_k, randomization_test
    from hybridrank.pipelines import DataConfig, ExperimentConfig, WorldConfig, run_experiment

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.basicConfig(level=logging.WARNING)
    world = (
        WorldConfig(data=DataConfig(format="trec", path="../shared/datasets/cisi"))
        if args.world == "cisi"
        else WorldConfig()
    )
    neural = dict(ExperimentConfig().neural or {})
    for item in args.neural:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--neural takes KEY=VALUE, got {item!r}")
        neural[key] = yaml.safe_load(value)
    config = ExperimentConfig(
        world=world, seeds=(args.seed,), sessions=(), neural=neural, tuning_sweep=(),
        annotate=annotate_config(args),
    )  # fmt: skip
    start = time.perf_counter()
    out = Path(args.out or tempfile.mkdtemp(prefix="bench-transformer-"))
    run_experiment(config, out, progress=False, echo=lambda m: print(m, flush=True))
    scores = pd.read_parquet(out / "scores.parquet")
    scores = scores.loc[~scores["tuning"].to_numpy(dtype=bool)]
    scores = scores.sort_values(["qid"], kind="stable")
    qid = scores["qid"].astype(str).to_numpy()
    labels = scores["y_expert"].to_numpy()
    buckets = scores.groupby("qid", sort=True)["bucket"].first()

    def per_query(system: str) -> pd.Series:
        values = ndcg_at_k(scores[system].to_numpy(), labels, qid=qid, k=10)
        return pd.Series(values, index=pd.unique(qid)).sort_index()

    trained, untrained = per_query("llm_neural"), per_query("raw_minilm")
    rows, gains = [], {}
    for name in ["low", "mid", "high", "all"]:
        keep = (buckets == name).to_numpy() if name != "all" else np.ones(len(buckets), bool)
        a, b = trained.to_numpy()[keep], untrained.to_numpy()[keep]
        ok = ~(np.isnan(a) | np.isnan(b))
        if not ok.any():
            rows.append(f"| {name} | 0 | | | | |")
            continue
        test = randomization_test(a[ok], b[ok])
        gains[name] = (float(np.mean(a[ok]) - np.mean(b[ok])), test.p_value)
        rows.append(
            f"| {name} | {int(ok.sum())} | {np.mean(b[ok]):.4f} | {np.mean(a[ok]):.4f} | "
            f"{gains[name][0]:+.4f} | {test.p_value:.4g} |"
        )
    print()
    print(f"world {args.world}, judge {describe(args)}, seed {args.seed}; neural {neural}; "
          f"{time.perf_counter() - start:.0f}s")  # fmt: skip
    print("| bucket | queries | untrained MiniLM | trained | gain | p |")
    print("|:--|--:|--:|--:|--:|--:|")
    print("\n".join(rows))
    judged = [b for b in ("all", "low") if b in gains]  # a world may have no low-bucket query
    value = min(gains[b][0] for b in judged)
    met = all(gains[b][0] >= TARGET and gains[b][1] < 0.05 for b in judged)
    print(f"met needs the gain >= {TARGET} overall and on low, each with p < 0.05"
          + ("" if "low" in gains else " (this world has no evaluated low-bucket query)"))  # fmt: skip
    print(
        f"RESULT transformer_{result_world(args)}_gain_over_untrained {value:.4f} "
        f"target >= {TARGET} : {'met' if met else 'missed'}"
    )


if __name__ == "__main__":
    main()
