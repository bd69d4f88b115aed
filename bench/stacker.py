"""The stacker study's cost: 200 trials on 100,000 queries x 50 documents.

Each trial proposes a gate, mixes the two (pre-normalised) score vectors and
evaluates NDCG@10 once, vectorised. The script reports trials per second and
one trial's time against a single NDCG@10 evaluation of the same data
(target: a trial costs at most 3 evaluations; Optuna's own bookkeeping with
an in-memory storage is included).

Usage: python bench/stacker.py [--queries 100000] [--trials 200]
Ends with: RESULT stacker_trial_cost_in_evaluations <trial / evaluation> target <= 3 : met|missed
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--queries", type=int, default=100_000)
    parser.add_argument("--docs", type=int, default=50)
    parser.add_argument("--trials", type=int, default=200)
    args = parser.parse_args()

    import optuna

    from hybridrank.ensemble import StackerConfig, prepare, suggest_gate
    from hybridrank.evaluate import ndcg_at_k

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rng = np.random.default_rng(0)
    n_q, n_d = args.queries, args.docs
    qid = np.repeat(np.arange(n_q), n_d)
    labels = rng.integers(0, 4, qid.size) * (rng.random(qid.size) < 0.3)
    freq = np.repeat(rng.zipf(1.5, n_q).clip(0, 10_000) - 1, n_d)
    click = labels + rng.normal(0, np.where(freq > 20, 0.5, 3.0))
    llm = labels + rng.normal(0, 1.5, qid.size)
    start = time.perf_counter()
    data = prepare(click, llm, qid=qid, freq=freq, labels=labels)
    setup = time.perf_counter() - start

    evals = []
    for _ in range(5):
        start = time.perf_counter()
        ndcg_at_k(data.click, data.labels, offsets=data.offsets, k=10)
        evals.append(time.perf_counter() - start)
    one_eval = min(evals)

    cfg = StackerConfig(n_trials=args.trials)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    start = time.perf_counter()
    study.optimize(lambda t: data.value(suggest_gate(t, cfg)), n_trials=args.trials)
    total = time.perf_counter() - start
    per_trial = total / args.trials
    ratio = per_trial / one_eval
    print(f"data: {n_q:,} queries x {n_d} documents; per-query normalisation once: {setup:.2f}s")
    print(f"one NDCG@10 evaluation: {one_eval * 1000:.1f} ms")
    print(
        f"{args.trials} trials in {total:.1f}s: {args.trials / total:.1f} trials/s, {per_trial * 1000:.1f} ms per trial"
    )
    print(f"best gate {study.best_params}, NDCG@10 {study.best_value:.4f}")
    verdict = "met" if ratio <= 3 else "missed"
    print(f"RESULT stacker_trial_cost_in_evaluations {ratio:.2f} target <= 3 : {verdict}")


if __name__ == "__main__":
    main()
