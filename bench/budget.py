"""Budgeted LLM labels: the stacker with 30% of the pairs labelled tail-first vs all and vs random.

Runs the experiment's budget curve on a click world (NFCorpus by default,
``--world cisi`` for CISI): for each seed, the stacker (click-GBDT + LLM-GBDT,
gate tuned on the labelled tuning queries) is trained with every pair's LLM
label, and again with the labels of 30% of the pairs chosen tail-first and at
random (the judge's cached answers are masked outside the chosen pairs, label
and raw score alike: equivalent to asking only those pairs; by default the raw
score is then estimated there from the packaged MiniLM's cosine, ``--fill
none`` leaves it missing). The fully labelled run trains every system of the
experiment; the budget runs only the stacker's experts: click-GBDT, LLM-GBDT
and its anchors (the experiment's default: FAMOL, retrained per budget, the
gold expert and the raw mean dwell, which read no LLM label). ``--anchors``
(none) measures the two-expert stacker.

Smaller than ``studies/paper.yaml``: no session sweep, the stacker tuned with
60 trials. About 9 minutes on two cores with the default anchors (FAMOL is
retrained for each seed and strategy), 6 without.

Usage: python bench/budget.py [--world nfcorpus|cisi] [--seeds 0 1 2] [--budget 0.3] [--anchors ...]
       [--features click text semantic dataset dense] [--fill dense|none]
       [--judge embedding|simulated] [--noise 2.0]
Ends with: RESULT budget_<world>_stacker_retained <tail-first / full> target >= 0.98 : met|missed
(met needs tail-first beating random with p < 0.05 as well; both are printed).
With ``--judge simulated`` the name is ``budget_<world>_simulated_sd<noise>_stacker_retained``:
a measurement with a judge of known quality (bench/_judges.py), not the benchmark's own.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from dataclasses import replace

import numpy as np
from _judges import add_judge_arguments, annotate_config, describe, result_world


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--world", choices=["nfcorpus", "cisi"], default="nfcorpus")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budget", type=float, default=0.3)
    parser.add_argument("--strategies", nargs="+", default=["tail-first", "random"])
    parser.add_argument(
        "--anchors", nargs="*", default=None,
        help="the stacker's anchor experts (default: the experiment's: famol, gold_gbdt, raw_dwell; "
        "none: the two-expert stacker)",
    )  # fmt: skip
    parser.add_argument(
        "--features", nargs="+", default=None,
        help="feature groups of the GBDT systems (default: the experiment's; add dense for the "
        "local MiniLM cosine of every pair, which the budget never masks)",
    )  # fmt: skip
    parser.add_argument(
        "--fill", choices=["dense", "none"], default=None,
        help="the judge's score on unlabelled pairs (default: the experiment's, dense: the local "
        "MiniLM cosine mapped onto the judge's scale; none: missing)",
    )  # fmt: skip
    parser.add_argument("--out", default=None)
    add_judge_arguments(parser)
    args = parser.parse_args()

    import optuna

    from hybridrank.ensemble import StackerConfig
    from hybridrank.evaluate import randomization_test
    from hybridrank.pipelines import DataConfig, ExperimentConfig, WorldConfig, run_experiment

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.basicConfig(level=logging.WARNING)
    world = (
        WorldConfig(data=DataConfig(format="trec", path="../shared/datasets/cisi"))
        if args.world == "cisi"
        else WorldConfig()
    )
    anchors = tuple(ExperimentConfig().stacker.anchors if args.anchors is None else args.anchors)
    systems = ("click_gbdt", "llm_gbdt", "gated_stacker") + (
        ("famol",) if "famol" in anchors else ()
    )
    config = ExperimentConfig(
        world=world,
        seeds=tuple(args.seeds),
        sessions=(),
        budgets=(args.budget, 1.0),
        budget_strategies=tuple(args.strategies),
        budget_systems=systems,
        stacker=StackerConfig(n_trials=60, anchors=anchors),
        neural=None,  # the budget runs use LLM-GBDT as the stacker's LLM expert
        annotate=annotate_config(args),
    )
    if args.features is not None:
        config = replace(config, features=tuple(args.features))
    if args.fill is not None:
        config = replace(config, budget_fill=args.fill)
    config = replace(config, metrics=("ndcg@10",))
    start = time.perf_counter()
    out = args.out or tempfile.mkdtemp(prefix="bench-budget-")
    result = run_experiment(config, out, progress=False, echo=lambda m: print(m, flush=True))
    assert result.budget is not None
    pq = result.budget.per_query
    stacker = pq[pq["system"] == "gated_stacker"]

    def values(strategy: str, budget: float) -> np.ndarray:
        part = stacker[(stacker["strategy"] == strategy) & (stacker["budget"] == budget)]
        return part.sort_values(["seed", "qid"])["value"].to_numpy()

    full = values("tail-first", 1.0)
    tail = values("tail-first", args.budget)
    rand = values("random", args.budget)
    ok = ~np.isnan(full)
    share = float(
        stacker[(stacker["strategy"] == "tail-first") & (stacker["budget"] == args.budget)][
            "share"
        ].mean()
    )
    retained = float(np.nanmean(tail) / np.nanmean(full))
    test = randomization_test(tail[ok], rand[ok])
    print()
    print(result.budget.markdown)
    print()
    print(f"stacker anchors: {list(anchors) or 'none (two experts)'}; features {config.features}; "
          f"judge score on unlabelled pairs: {config.budget_fill}")  # fmt: skip
    print(f"world {args.world}, judge {describe(args)}, seeds {args.seeds}, "
          f"{ok.sum()} evaluated query-seeds; {time.perf_counter() - start:.0f}s")  # fmt: skip
    print(f"stacker NDCG@10: all pairs labelled {np.nanmean(full):.4f}; {share:.1%} tail-first "
          f"{np.nanmean(tail):.4f}; random {np.nanmean(rand):.4f}")  # fmt: skip
    print(f"tail-first / full = {retained:.4f}; tail-first - random = "
          f"{np.nanmean(tail) - np.nanmean(rand):+.4f}, paired randomisation p = {test.p_value:.4g}")  # fmt: skip
    met = retained >= 0.98 and test.p_value < 0.05 and np.nanmean(tail) > np.nanmean(rand)
    print(f"met needs both: retained >= 0.98 and tail-first > random with p < 0.05 "
          f"(p = {test.p_value:.3g})")  # fmt: skip
    print(
        f"RESULT budget_{result_world(args)}_stacker_retained {retained:.4f} target >= 0.98 : "
        f"{'met' if met else 'missed'}"
    )


if __name__ == "__main__":
    main()
