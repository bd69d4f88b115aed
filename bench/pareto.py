"""Multi-objective production tuning: validation NDCG@10 against p50 latency on the NFCorpus world.

Builds the default click world (NFCorpus, 5,000 sessions, 60 labelled tuning
queries), its LLM labels from the answer cache (the embedded judge) and the
candidate table, then runs a gbdt study with two objectives (NDCG@10 on the
tuning queries' expert grades, maximised; p50 latency of ranking 100 documents
on one thread, minimised) with Optuna's multi-objective TPE. It prints the
Pareto front and looks for a trial within 0.005 NDCG@10 of the best trial with
at most half its p50 latency (``study best --pick "ndcg>=best-0.005, fastest"``).

Smaller than ``studies/gbdt_pareto_study.yaml`` (40 trials there): 30 trials
by default, so it fits in a few minutes on two loaded cores.

Usage: python bench/pareto.py [--trials 30] [--objective latency|size]
Ends with: RESULT pareto_latency_ratio <p50 picked / p50 best> target <= 0.5 : met|missed
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from dataclasses import replace
from typing import Any

#: NDCG@10 differences below this count as ties when the best trial is chosen.
TIE = 1e-4


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--objective", choices=["latency", "size"], default="latency")
    parser.add_argument("--tolerance", type=float, default=0.005)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    import optuna

    from hybridrank.labels.llm import AnnotateConfig, AnswerCache, GraderConfig, make_annotator
    from hybridrank.pipelines import (
        ExperimentConfig,
        TableOptions,
        annotate_dataset,
        build_table,
        build_world,
        default_answer_cache,
        resolve_features,
    )
    from hybridrank.tuning import StudySpec, pareto_front, pick_trial, run_study, trials_table

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.basicConfig(level=logging.WARNING)
    start = time.perf_counter()
    exp = ExperimentConfig()
    world = exp.world.replace(folds=replace(exp.world.folds, tuning_queries=exp.tuning_queries))
    dataset = build_world(world)
    judge = make_annotator("embedding")
    with judge, AnswerCache(default_answer_cache()) as cache:
        labels = annotate_dataset(
            dataset, judge, cache,
            AnnotateConfig(batch_size=512, grader=GraderConfig(fuse_bm25=True)), progress=False,
        )  # fmt: skip
    dataset = dataset.with_tables(llm_labels=labels.llm_labels)
    table, _ = build_table(dataset, TableOptions())
    features = resolve_features(("click", "text", "semantic"), table)
    print(f"inputs: {len(table)} pairs, {len(features)} features, "
          f"{int(table['tuning'].sum())} tuning rows; {time.perf_counter() - start:.0f}s", flush=True)  # fmt: skip

    out = args.out or tempfile.mkdtemp(prefix="bench-pareto-")
    spec = StudySpec(kind="gbdt", n_trials=args.trials, out=out, objectives=("ndcg", args.objective),
                     name=f"pareto-{args.objective}")  # fmt: skip
    t0 = time.perf_counter()
    study = run_study(spec, lambda: (table, features), progress=False).study
    trials = trials_table(study)
    front = pareto_front(study)
    cols = ["trial", "ndcg", "p50_ms", "size", "n_trees", "num_leaves", "learning_rate"]
    print(f"{len(trials)} trials in {time.perf_counter() - t0:.0f}s; Pareto front "
          f"(NDCG@10 vs {args.objective}):")  # fmt: skip
    print(front[cols].to_markdown(index=False, floatfmt=".4g"))
    # The best NDCG@10; among trials tied on it, the fastest (a slower twin of the best
    # would flatter the ratio). Tied: within TIE of the top, far below what one of the 60
    # tuning queries moves the mean by; seen here: two trials 0.00001 apart, one of them
    # 2.3 times slower, took turns as "best" between runs.
    measured = trials.dropna(subset=["ndcg", "p50_ms"])
    if measured.empty:
        raise SystemExit("no trial has both NDCG@10 and a p50 latency")
    top = measured[measured["ndcg"] >= measured["ndcg"].max() - TIE]
    best = top.loc[top["p50_ms"].idxmin()]
    picked = pick_trial(trials, f"ndcg>=best-{args.tolerance}, fastest")
    ratio = float(picked["p50_ms"] / best["p50_ms"])
    print(f"best trial #{int(best['trial'])}: NDCG@10 {best['ndcg']:.6f}, p50 {best['p50_ms']:.3f} ms, "
          f"size {int(best['size'])}; {len(top)} trial(s) within {TIE:g} of the top")  # fmt: skip
    print(f"fastest within {args.tolerance} NDCG@10: trial #{int(picked['trial'])}: NDCG@10 "
          f"{picked['ndcg']:.4f}, p50 {picked['p50_ms']:.3f} ms, size {int(picked['size'])}; "
          f"latency ratio {ratio:.3f}; size ratio {picked['size'] / best['size']:.3f}")  # fmt: skip
    floor = float(trials["p50_ms"].min())
    stump = _stump_p50(table, features, spec)
    print(f"fastest trial ({int(trials.loc[trials['p50_ms'].idxmin(), 'n_trees'])} trees): "
          f"{floor:.3f} ms; one tree of two leaves, timed the same way: {stump:.3f} ms; "
          f"half the best trial's p50: {best['p50_ms'] / 2:.3f} ms"
          + ("  -> the stump is slower than that: no model can meet the target here, the "
             "predictor's per-call cost dominates" if stump > best["p50_ms"] / 2 else ""))  # fmt: skip
    print(f"total {time.perf_counter() - start:.0f}s")
    verdict = "met" if ratio <= 0.5 else "missed"
    print(f"RESULT pareto_latency_ratio {ratio:.3f} target <= 0.5 : {verdict}")


def _stump_p50(table: Any, features: list[str], spec: Any) -> float:
    """p50 (ms) of the smallest model there is, one tree of two leaves, timed as the trials
    are (``serving_costs``, same documents, same repeats): the predictor's per-call floor."""
    import numpy as np

    from hybridrank import columns as C
    from hybridrank.gbdt import LambdaMARTConfig, LambdaMARTRanker
    from hybridrank.tuning import serving_costs

    train = table.loc[~table["tuning"].to_numpy() & table[C.Y_CLICK].notna().to_numpy()]
    cfg = LambdaMARTConfig(n_estimators=1, num_leaves=2, early_stopping_rounds=None, n_jobs=1)
    stump = LambdaMARTRanker(cfg).fit(train[features], train[C.Y_CLICK].to_numpy(),
                                      qid=train[C.QID].to_numpy())  # fmt: skip
    rows = table.loc[table["tuning"].to_numpy(), features].to_numpy(np.float32)
    sample = np.resize(rows, (spec.latency_docs, rows.shape[1]))
    return float(serving_costs(stump, sample, repeats=spec.latency_repeats)["p50_ms"])


if __name__ == "__main__":
    main()
