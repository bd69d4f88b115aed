"""Does fusion earn its place? The acceptance checks of the fusion work, from one experiment run.

Reads an experiment's output (``scores.parquet``: every system's out-of-fold
scores, and ``info.json``: the tuned gates) and prints, on the evaluated
queries (tuning queries left out), seeds pooled:

- the stacker against FAMOL overall (difference, paired randomisation p);
- learned models against the raw inputs they are given, per bucket: the
  paired difference click-GBDT - raw debiased CTR, click-GBDT - raw mean dwell
  of the pair's clicks (where the run has it: runs before it was a raw
  baseline do not) and LLM-GBDT - raw semantic similarity with a 95%
  bootstrap interval (met when no bucket is significantly below);
- the stacker against the best single-source model (click-GBDT, LLM-GBDT and,
  where the run has them, the transformer, the two LLM models' ensemble and the
  gold expert on the tuning queries' grades) overall
  and in every bucket, and against the untuned ``rule``;
- the tuned gate's rise in click weight from the low to the high bucket, per seed;
  for a seed whose gate rises less than 0.3, the same stacker (anchors as tuned)
  with the rising gate that scores best on the tuning queries, on the tuning and
  the evaluated queries: whether the tuning data prefers the flat gate at all;
- the ceiling of fusion with these experts: the best weighted sum of the
  experts' within-query percentiles per bucket (weights 0, 0.5, 1 each),
  chosen on the evaluated queries themselves. No gate tuned on other queries
  can beat it, so when it is below FAMOL + 0.01 the experts, not the gate,
  are what must improve.

Without ``--run`` it first runs ``hybridrank experiment`` on the embedded
NFCorpus world (3 seeds, 5,000 sessions, no sweep; about 5 minutes on 2 cores
once the judge's labels are cached) into a temporary directory.

Usage:
  python bench/fusion.py [--run runs/paper] [--sessions 5000]
Ends with RESULT lines:
  RESULT fusion_stacker_minus_famol <diff> target >= 0.01 : met|missed
  RESULT fusion_learned_below_raw_buckets <n> target <= 0 : met|missed
  RESULT fusion_buckets_below_best_single <n> target <= 0 : met|missed
  RESULT fusion_stacker_minus_rule <diff> target > 0 : met|missed
  RESULT fusion_gate_rise_min <rise> target >= 0.3 : met|missed
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from hybridrank import columns as C
from hybridrank.ensemble import Gate, make_gate, prepare, rank_per_query
from hybridrank.evaluate import bootstrap_ci, ndcg_at_k, randomization_test
from hybridrank.pipelines import SINGLE_SOURCE, anchor_scores, gate_table

BUCKETS = ["low", "mid", "high"]


def per_query(scores: pd.DataFrame, systems: list[str]) -> pd.DataFrame:
    """NDCG@10 per evaluated query (seed:qid) and system, with its bucket."""
    ev = scores.loc[~scores["tuning"].to_numpy()].copy()
    ev[C.QID] = ev["seed"].astype(str) + ":" + ev[C.QID].astype(str)
    ev = ev.sort_values([C.QID], kind="stable")
    first = ev.drop_duplicates(C.QID)
    out = pd.DataFrame({C.QID: first[C.QID].to_numpy(), C.BUCKET: first[C.BUCKET].to_numpy()})
    for s in systems:
        out[s] = ndcg_at_k(ev[s].to_numpy(), ev[C.Y_EXPERT].to_numpy(), qid=ev[C.QID].to_numpy(), k=10)
    return out.dropna(subset=systems)


def mix_ceiling(scores: pd.DataFrame, experts: list[str]) -> pd.DataFrame:
    """Per bucket, the best weighted percentile sum of ``experts`` on the evaluated queries."""
    ev = scores.loc[~scores["tuning"].to_numpy()].copy()
    ev[C.QID] = ev["seed"].astype(str) + ":" + ev[C.QID].astype(str)
    ev = ev.sort_values([C.QID], kind="stable")
    qid = ev[C.QID].to_numpy()
    pct = {e: rank_per_query(ev[e].to_numpy(), qid=qid) for e in experts}
    labels = ev[C.Y_EXPERT].to_numpy()
    rows = []
    for bucket in BUCKETS:
        mask = (ev[C.BUCKET] == bucket).to_numpy()
        if not mask.any():
            continue
        part = {e: p[mask] for e, p in pct.items()}
        part_labels, part_qid = labels[mask], qid[mask]
        best: tuple[float, tuple[float, ...]] = (-1.0, ())
        for w in itertools.product((0.0, 0.5, 1.0), repeat=len(experts)):
            if not any(w):
                continue
            mix = sum(wi * part[e] for wi, e in zip(w, experts, strict=True))
            per_q = pd.Series(ndcg_at_k(mix, part_labels, qid=part_qid, k=10))
            best = max(best, (float(per_q.mean()), w))
        n = int(per_q.notna().sum())  # queries without a relevant document have no NDCG
        rows.append({"bucket": bucket, "queries": n, "ceiling": best[0],
                     **{f"w_{e}": wi for e, wi in zip(experts, best[1], strict=True)}})  # fmt: skip
    table = pd.DataFrame(rows)
    total = (table["ceiling"] * table["queries"]).sum() / table["queries"].sum()
    return pd.concat([table, pd.DataFrame([{"bucket": "all", "queries": table["queries"].sum(),
                                            "ceiling": total}])], ignore_index=True)  # fmt: skip


#: Rising gates tried when a tuned gate is flat (sigmoid centre x slope).
CENTRES = np.arange(0.0, 5.01, 0.25)
SLOPES = (0.5, 1.0, 2.0, 4.0, 8.0)
MIN_RISE = 0.3


def flat_gate_check(scores: pd.DataFrame, info: dict, config: dict, sessions: int,
                    buckets: list[str]) -> pd.DataFrame:  # fmt: skip
    """For each seed whose tuned gate rises less than MIN_RISE: is a rising gate any better?

    The seed's anchors and weights stay as tuned; the gate is replaced by the sigmoid
    gate (from a centre x slope grid) that rises at least MIN_RISE between the lowest and
    highest bucket's median frequency and scores best on the tuning queries, the only
    queries the stacker may tune on. Both are then scored on the tuning and the evaluated
    queries. When the rising gate is no better on the tuning queries, the tuning data
    cannot prefer it; when it is no better on the evaluated queries either, the flat gate
    costs nothing there.
    """
    norm = str((config.get("stacker") or {}).get("normalisation", "zscore"))
    rows = []
    for seed, table in scores.groupby("seed"):
        run = info["runs"].get(f"seed{int(seed)}_sessions{sessions}", {})
        if run.get("gate_kind", "sigmoid") != "sigmoid" or "gate" not in run:
            continue
        gate = make_gate("sigmoid", run["gate"])
        column = run.get("llm_model", "llm_gbdt")  # the LLM expert this run's stacker used
        per_query_freq = table.drop_duplicates(C.QID).groupby(C.BUCKET, observed=True)[C.FREQ]
        medians = per_query_freq.median()
        ends = np.array([medians[buckets[0]], medians[buckets[-1]]], dtype=np.float64)

        def rise(g: Gate, ends: np.ndarray = ends) -> float:
            low, high = g(ends)
            return float(high - low)

        if rise(gate) >= MIN_RISE:
            continue
        anchors = run.get("anchors") or {}
        names, weights = list(anchors), tuple(float(w) for w in anchors.values())
        data = {}
        for part, mask in (("tuning", table["tuning"].to_numpy(bool)),
                           ("evaluated", ~table["tuning"].to_numpy(bool))):  # fmt: skip
            t = table.loc[mask].sort_values(C.QID, kind="stable")
            data[part] = prepare(
                t["click_gbdt"].to_numpy(), t[column].to_numpy(), qid=t[C.QID].to_numpy(),
                freq=t[C.FREQ].to_numpy(), labels=t[C.Y_EXPERT].to_numpy(), normalisation=norm,
                anchors=[anchor_scores(t, a) for a in names],
            )  # fmt: skip
        rising = [make_gate("sigmoid", {"centre": c, "slope": sl}) for c in CENTRES for sl in SLOPES]
        rising = [g for g in rising if rise(g) >= MIN_RISE]
        best = max(rising, key=lambda g: data["tuning"].value(g, weights))
        rows.append({
            "seed": int(seed), "tuned rise": rise(gate),
            "rising gate": f"centre {best.params()['centre']:.2f}, slope {best.params()['slope']:g}",
            "its rise": rise(best),
            "tuning: tuned": data["tuning"].value(gate, weights),
            "tuning: rising": data["tuning"].value(best, weights),
            "evaluated: tuned": data["evaluated"].value(gate, weights),
            "evaluated: rising": data["evaluated"].value(best, weights),
            "anchor weight": sum(weights),
        })  # fmt: skip
    return pd.DataFrame(rows)


def run_experiment(out: Path, sessions: int) -> None:
    config = out.parent / "fusion.yaml"
    config.write_text(yaml.safe_dump({"experiment": {
        "seeds": [0, 1, 2], "sessions": [], "main_sessions": sessions}}))  # fmt: skip
    cmd = [sys.executable, "-m", "hybridrank", "experiment", "--config", str(config), "--out", str(out)]
    subprocess.run(cmd, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, help="an experiment output directory")
    parser.add_argument("--sessions", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run
        if run is None:
            run = Path(tmp) / "run"
            run_experiment(run, args.sessions)
        scores = pd.read_parquet(run / "scores.parquet")
        info = json.loads((run / "info.json").read_text())
        written = yaml.safe_load((run / "config.yaml").read_text()) or {}
        config = written.get("experiment", written)
    sessions = int(scores["sessions"].max())
    scores = scores[scores["sessions"] == sessions]
    pairs = [
        ("click_gbdt", "raw_debiased_ctr"), ("click_gbdt", "raw_dwell"), ("llm_gbdt", "raw_semantic")
    ]  # fmt: skip
    systems = sorted({"famol", "gated_stacker", "rule", *SINGLE_SOURCE,
                      *(s for p in pairs for s in p)} & set(scores.columns))  # fmt: skip
    q = per_query(scores, systems)
    print(f"# {run}: {scores['seed'].nunique()} seeds x {sessions} sessions, "
          f"{len(q)} evaluated queries\n")  # fmt: skip

    rows = []
    below = 0
    for a, b in pairs:
        if a not in q or b not in q:
            continue
        for bucket in [*BUCKETS, "all"]:
            part = q if bucket == "all" else q[q[C.BUCKET] == bucket]
            if part.empty:
                continue
            d = (part[a] - part[b]).to_numpy()
            lo, hi = bootstrap_ci(d)
            rows.append({"model - raw input": f"{a} - {b}", "bucket": bucket, "n": len(part),
                         "diff": d.mean(), "ci_low": lo, "ci_high": hi})  # fmt: skip
            below += int(bucket != "all" and hi < 0)
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".3f"), "\n")

    # Single-source models: one label source each (clicks, the judge, the tuning queries' grades).
    singles = [s for s in SINGLE_SOURCE if s in q]
    best_single = max(singles, key=lambda s: q[s].mean())
    below_single = []
    for bucket in BUCKETS:
        part = q[q[C.BUCKET] == bucket]
        if part.empty:
            continue
        best = max(singles, key=lambda s: part[s].mean())
        d = part["gated_stacker"].mean() - part[best].mean()
        print(f"{bucket}: gated_stacker - best single-source ({best}) {d:+.4f}")
        below_single.append(d < 0)
    print()
    lines = []
    for other in ("famol", best_single, "rule", *(["raw_dwell"] if "raw_dwell" in q else [])):
        test = randomization_test(q["gated_stacker"], q[other])
        lines.append({"gated_stacker vs": other, "diff": test.mean_diff, "p": test.p_value})
    print(pd.DataFrame(lines).to_markdown(index=False, floatfmt=".4f"), "\n")
    buckets = [b for b in BUCKETS if b in set(scores[C.BUCKET])]
    tables = {(int(s), sessions): t for s, t in scores.groupby("seed")}
    gates = gate_table(tables, info, sessions, buckets)
    print(gates.to_markdown(index=False, floatfmt=".3f"), "\n")
    flat = flat_gate_check(scores, info, config, sessions, buckets)
    if not flat.empty:
        print(f"Seeds whose gate rises less than {MIN_RISE}: the same stacker with the rising "
              "gate that scores best on the tuning queries (anchors as tuned), NDCG@10:\n")  # fmt: skip
        print(flat.to_markdown(index=False, floatfmt=".4f"), "\n")

    experts = [e for e in ("famol", "click_gbdt", "llm_gbdt", "gold_gbdt", "raw_semantic")
               if e in scores]  # fmt: skip
    ceiling = mix_ceiling(scores, experts)
    famol_all = float(q["famol"].mean())
    print("Fusion ceiling: the best per-bucket percentile mix of", ", ".join(experts),
          "chosen on the evaluated queries themselves (FAMOL overall "
          f"{famol_all:.4f}):\n")  # fmt: skip
    print(ceiling.to_markdown(index=False, floatfmt=".4f"), "\n")

    vs_famol = lines[0]
    verdict = "met" if vs_famol["diff"] >= 0.01 and vs_famol["p"] < 0.05 else "missed"
    print(f"RESULT fusion_stacker_minus_famol {vs_famol['diff']:.4f} target >= 0.01 : {verdict}")
    print(f"RESULT fusion_learned_below_raw_buckets {below} target <= 0 : "
          f"{'met' if below == 0 else 'missed'}")  # fmt: skip
    n_below = int(sum(below_single))
    print(f"RESULT fusion_buckets_below_best_single {n_below} target <= 0 : "
          f"{'met' if n_below == 0 else 'missed'}")  # fmt: skip
    vs_rule = lines[2]["diff"]
    print(f"RESULT fusion_stacker_minus_rule {vs_rule:.4f} target > 0 : "
          f"{'met' if vs_rule > 0 else 'missed'}")  # fmt: skip
    rise_col = [c for c in gates.columns if c.startswith("rise")]
    rise = float(gates[rise_col[0]].min()) if rise_col else float("nan")
    print(f"RESULT fusion_gate_rise_min {rise:.3f} target >= 0.3 : "
          f"{'met' if rise >= 0.3 else 'missed'}")  # fmt: skip


if __name__ == "__main__":
    main()
