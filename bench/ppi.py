"""Prediction-powered inference: coverage and width against gold-only intervals, known truth.

Data (seeded): a synthetic candidate table of N_QUERIES queries x N_DOCS
documents with expert grades 0-3, an LLM label that is a noisy, upward-biased
version of the grade (noisier in the tail bucket than in the head), and a
ranker score (grade + noise). NDCG@10 of the ranker is computed per query
with the expert grades and with the LLM labels (a query with nothing
relevant scores 0). The truth is the mean expert NDCG@10 over all queries
(per bucket: over the bucket's queries).

Each of RESAMPLES rounds draws a random GOLD_SHARE of the queries as gold
(expert grades known) and estimates the mean with ``ppi_per_bucket``: PPI++
(gold + LLM labels) and the classical gold-only interval. The table shows,
per bucket, how often each 95% interval covers the truth, their mean widths
and the ratio PPI / gold-only, and the bias of the naive LLM-only mean.

Usage: python bench/ppi.py [--queries 500] [--docs 30] [--resamples 200] [--gold-share 0.1]
Ends with: RESULT ppi_coverage <overall PPI coverage> target >= 0.90 : met|missed
("missed" also when the PPI interval is not narrower than the gold-only one).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from hybridrank import columns as C
from hybridrank.evaluate import per_query_metric, ppi_per_bucket

BUCKETS = ("head", "torso", "tail")
BUCKET_SHARE = (0.2, 0.3, 0.5)
# Standard deviation of the LLM's error on the grade scale, per bucket.
LLM_NOISE = {"head": 0.5, "torso": 0.7, "tail": 0.9}
LLM_BIAS = 0.3


def make_table(n_q: int, n_d: int, rng: np.random.Generator) -> pd.DataFrame:
    """Candidate table: qid, bucket, expert grade, LLM label, ranker score."""
    bucket_q = rng.choice(BUCKETS, size=n_q, p=BUCKET_SHARE)
    # Per-query difficulty: how many relevant documents the candidates hold.
    rel_rate = rng.beta(2, 3, n_q)
    rows = n_q * n_d
    qid = np.repeat(np.arange(n_q), n_d)
    bucket = bucket_q[qid]
    relevant = rng.random(rows) < rel_rate[qid]
    grade = np.where(relevant, rng.choice([1, 2, 3], size=rows, p=[0.5, 0.3, 0.2]), 0)
    noise = pd.Series(bucket).map(LLM_NOISE).to_numpy(dtype=np.float64)
    llm = np.clip(np.rint(grade + LLM_BIAS + rng.normal(0, 1, rows) * noise), 0, 3)
    score = grade + rng.normal(0, 1.5, rows)
    return pd.DataFrame(
        {
            C.QID: qid,
            C.BUCKET: bucket,
            C.Y_EXPERT: grade,
            C.Y_LLM: llm,
            "ranker": score,
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--docs", type=int, default=30)
    parser.add_argument("--resamples", type=int, default=200)
    parser.add_argument("--gold-share", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    start = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    table = make_table(args.queries, args.docs, rng)
    expert = per_query_metric(table, "ranker", C.Y_EXPERT, fill_no_relevant=0.0)
    llm = per_query_metric(table, "ranker", C.Y_LLM, fill_no_relevant=0.0)
    buckets = table.groupby(C.QID, sort=False)[C.BUCKET].first()
    per_query = pd.DataFrame(
        {"expert": expert, "llm": llm, C.BUCKET: buckets.reindex(expert.index)}
    )
    order = [b for b in BUCKETS if b in set(per_query[C.BUCKET])]
    truth = per_query.groupby(C.BUCKET)["expert"].mean().to_dict()
    truth["all"] = float(per_query["expert"].mean())
    naive = per_query.groupby(C.BUCKET)["llm"].mean().to_dict()
    naive["all"] = float(per_query["llm"].mean())

    n_q = len(per_query)
    n_gold = max(2, round(args.gold_share * n_q))
    results = []
    for _ in range(args.resamples):
        is_gold = np.zeros(n_q, dtype=bool)
        is_gold[rng.choice(n_q, n_gold, replace=False)] = True
        frame = per_query.assign(is_gold=is_gold)
        # Non-gold queries have no expert value in practice.
        frame.loc[~is_gold, "expert"] = np.nan
        results.append(ppi_per_bucket(frame, gold="expert", pred="llm", is_gold="is_gold"))
    runs = pd.concat(results, ignore_index=True)
    runs["truth"] = runs[C.BUCKET].map(truth)
    runs["ppi_covers"] = (runs["ci_low"] <= runs["truth"]) & (runs["truth"] <= runs["ci_high"])
    runs["gold_covers"] = (runs["gold_ci_low"] <= runs["truth"]) & (
        runs["truth"] <= runs["gold_ci_high"]
    )
    elapsed = time.perf_counter() - start

    rows = []
    for b in [*order, "all"]:
        sel = runs[(runs[C.BUCKET] == b) & runs["estimate"].notna()]
        rows.append(
            {
                "bucket": b,
                "queries": int((per_query[C.BUCKET] == b).sum()) if b != "all" else n_q,
                "mean gold": float(sel["n_gold"].mean()),
                "truth": truth[b],
                "LLM-only bias": naive[b] - truth[b],
                "mean lam": float(sel["lam"].mean()),
                "PPI coverage": float(sel["ppi_covers"].mean()),
                "gold-only coverage": float(sel["gold_covers"].mean()),
                "PPI width": float(sel["width"].mean()),
                "gold-only width": float(sel["gold_width"].mean()),
                "width ratio PPI/gold": float(sel["width"].mean() / sel["gold_width"].mean()),
            }
        )
    summary = pd.DataFrame(rows)
    print(
        f"NDCG@10 of one ranker, {n_q} queries x {args.docs} documents; "
        f"{args.resamples} resamples with {n_gold} gold queries ({args.gold_share:.0%}); "
        f"95% intervals; {elapsed:.1f}s"
    )
    print(summary.to_markdown(index=False, floatfmt=".3f"))
    overall = summary[summary["bucket"] == "all"].iloc[0]
    coverage = float(overall["PPI coverage"])
    narrower = overall["PPI width"] < overall["gold-only width"]
    verdict = "met" if coverage >= 0.90 and narrower else "missed"
    print(f"RESULT ppi_coverage {coverage:.3f} target >= 0.90 : {verdict}")


if __name__ == "__main__":
    main()
