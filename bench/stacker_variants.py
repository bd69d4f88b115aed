"""Would a stacker with more tuned parameters earn its place? Measured on one experiment run.

The stacker tunes a gate on query frequency alone and one weight per anchor
expert for every query. Issue 12 asks for a gate on further query-level
signals; anchor weights per frequency bucket are the other obvious
extension. Before either enters the product, this script measures on a
finished run whether it would help. It reads the run's ``scores.parquet``
and ``info.json`` and, per seed at the main session count, tunes each
variant on the run's labelled tuning queries as the experiment tunes its
stacker:

- the same experts, anchors, normalisation, search ranges and TPE seed as the
  run's stacker (its sigmoid gate; another gate kind is refused);
- 20 trials per searched parameter (``--trials-per-parameter``);
- the same evaluated queries (tuning queries left out).

The variants:

- ``product``: the gate ``sigmoid(slope * (log1p(f) - centre))`` and one
  total anchor weight split by one share per anchor, as the product tunes it.
  Every variant keeps its top trial (the product's ``stacker.selection:
  best``): the variants differ in what they tune, not in which trial they
  keep; the default ``rising`` rule is measured on its own (README, "Which
  tuned gate is kept");
- ``gate + <signal>``: the gate's logit plus ``w * (signal - reference)``,
  one signal at a time; ``gate + all signals``: every signal at once;
- ``anchors: total per bucket``: the anchors' total weight per frequency
  bucket (their shares shared); ``anchors: all per bucket``: total and
  shares per bucket.

The signals (one value per query):

- ``disagreement``: 1 minus the Pearson correlation of the click and LLM
  experts' z-scored scores (0: they agree; 1: unrelated; 2: reversed);
  reference 1;
- ``click_entropy``: the entropy of the query's clicks over documents
  (``q_click_entropy``, bits; 0 without clicks); reference 1;
- ``clicks_per_session``: the query's clicks per session
  (``q_clicks_per_session``; 0 without sessions); reference 1;
- ``judge_spread``: the standard deviation of the judge's expected grade over
  the query's candidates (``y_llm_soft``): a judge that grades every
  candidate alike has little to say; reference 0.5.

It prints NDCG@10 per variant and bucket, the paired difference to the
product with its randomisation p, and the tuned signal weights per seed (a
weight whose sign flips between seeds is fitted noise).

Usage:
  python bench/stacker_variants.py --run DIR [--trials-per-parameter 20]
Ends with one line:
  RESULT stacker_variant_best_gain <diff> target > 0 (Bonferroni p < 0.05) : met|missed

The best variant is picked on the evaluated queries, so its p is compared
with 0.05 divided by the number of variants tried.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import yaml

from hybridrank import columns as C
from hybridrank.ensemble import fuse, prepare, zscore_per_query
from hybridrank.evaluate import ndcg_at_k, randomization_test
from hybridrank.pipelines import anchor_scores

BUCKETS = ["low", "mid", "high"]
#: Signal name -> (table column or None for a score-derived signal, reference value).
SIGNALS = {
    "disagreement": (None, 1.0),
    "click_entropy": ("q_click_entropy", 1.0),
    "clicks_per_session": ("q_clicks_per_session", 1.0),
    "judge_spread": ("y_llm_soft", 0.5),
}
WEIGHT_RANGE = (-4.0, 4.0)


def query_signals(table: pd.DataFrame, click: np.ndarray, llm: np.ndarray,
                  offsets: np.ndarray) -> dict[str, np.ndarray]:  # fmt: skip
    """Each signal per row (constant within a query), centred on its reference."""
    sizes = np.diff(offsets)
    starts = offsets[:-1]
    # z-scored per query, the Pearson correlation is the mean product (0 for a constant expert).
    zc, zl = (zscore_per_query(x, offsets=offsets) for x in (click, llm))
    corr = np.add.reduceat(zc * zl, starts) / sizes
    out = {"disagreement": 1.0 - corr}
    for name, (column, _) in SIGNALS.items():
        if column is None or column not in table:
            continue
        values = table[column].to_numpy(dtype=np.float64)
        if name == "judge_spread":
            mean = np.add.reduceat(values, starts) / sizes
            sq = np.add.reduceat(values**2, starts) / sizes
            out[name] = np.sqrt(np.maximum(sq - mean**2, 0.0))
        else:
            out[name] = np.nan_to_num(values[starts], nan=0.0)
    return {k: np.repeat(v - SIGNALS[k][1], sizes) for k, v in out.items()}


@dataclass(frozen=True)
class Variant:
    """A stacker to tune: the gate's extra signals, and how the anchors' weights are split.

    ``anchors``: ``global`` (one total weight and one share per anchor, the
    product's), ``bucket_total`` (a total weight per frequency bucket, shares
    shared) or ``bucket`` (a total weight and shares per bucket).
    """

    signals: tuple[str, ...] = ()
    anchors: str = "global"


def tune(table: pd.DataFrame, run: dict, stacker: dict, variant: Variant, trials_per_param: int,
         ) -> tuple[np.ndarray, dict[str, float]]:  # fmt: skip
    """Tune one stacker variant on the tuning rows; its fused scores of all rows."""
    names = list(run.get("anchors") or {})
    norm = str(stacker.get("normalisation", "zscore"))
    seed = int(stacker.get("seed", 0))
    centre = tuple(stacker.get("centre_range", (0.0, 5.0)))
    slope = tuple(stacker.get("slope_range", (0.0, 8.0)))
    total = tuple(stacker.get("anchor_weight_range", (0.0, 1.0)))
    data = prepare(
        table["click_gbdt"].to_numpy(), table[run.get("llm_model", "llm_gbdt")].to_numpy(),
        qid=table[C.QID].to_numpy(), freq=table[C.FREQ].to_numpy(),
        labels=table[C.Y_EXPERT].to_numpy(), normalisation=norm,
        anchors=[anchor_scores(table, a) for a in names],
    )  # fmt: skip
    sig = query_signals(table, data.click, data.llm, data.offsets)
    missing = [s for s in variant.signals if s not in sig]
    if missing:
        raise SystemExit(f"the run has no column for the signals {missing}")
    log_freq = np.log1p(data.row_freq)
    tuning = table["tuning"].to_numpy(bool)
    qid = table[C.QID].to_numpy()
    # Which weight set a row takes: one for all (global), else its frequency bucket's.
    per_bucket = variant.anchors != "global"
    buckets = [b for b in BUCKETS if b in set(table[C.BUCKET])] if per_bucket else ["all"]
    group = (
        pd.Categorical(table[C.BUCKET], categories=buckets).codes.astype(np.int64)
        if per_bucket
        else np.zeros(len(table), dtype=np.int64)
    )
    share_sets = len(buckets) if variant.anchors == "bucket" else 1

    def fused(p: dict[str, float]) -> np.ndarray:
        z = p["slope"] * (log_freq - p["centre"])
        for s in variant.signals:
            z = z + p[f"w_{s}"] * sig[s]
        gate = 1.0 / (1.0 + np.exp(-z))
        gated = fuse(gate, data.click, data.llm)
        if not names:
            return gated
        totals = np.array([p[f"anchor_weight_{b}"] for b in range(len(buckets))])
        shares = np.array(
            [[p.get(f"share_{j}_{i}", 1.0) for i in range(len(names))] for j in range(share_sets)]
        )
        sums = shares.sum(axis=1, keepdims=True)
        shares = np.where(sums > 0, shares / np.where(sums > 0, sums, 1), 1 / len(names))
        row_shares = shares[group] if share_sets > 1 else np.repeat(shares, len(table), axis=0)
        weights = totals[group][:, None] * row_shares
        out = (1.0 - weights.sum(axis=1)) * gated
        for i, anchor in enumerate(data.anchors):
            out = out + weights[:, i] * anchor
        return out

    def objective(trial: optuna.Trial) -> float:
        p = {"centre": trial.suggest_float("centre", *centre),
             "slope": trial.suggest_float("slope", *slope)}  # fmt: skip
        if names:
            for b in range(len(buckets)):
                p[f"anchor_weight_{b}"] = trial.suggest_float(f"anchor_weight_{b}", *total)
            if len(names) > 1:
                for j in range(share_sets):
                    for i in range(len(names)):
                        p[f"share_{j}_{i}"] = trial.suggest_float(f"share_{j}_{i}", 0.0, 1.0)
        for s in variant.signals:
            p[f"w_{s}"] = trial.suggest_float(f"w_{s}", *WEIGHT_RANGE)
        v = ndcg_at_k(fused(p)[tuning], data.labels[tuning], qid=qid[tuning], k=10)
        return float(np.nanmean(v))

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    n_anchor = len(buckets) + (share_sets * len(names) if len(names) > 1 else 0) if names else 0
    study.optimize(objective, n_trials=trials_per_param * (2 + len(variant.signals) + n_anchor))
    return fused(study.best_params), study.best_params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="an experiment output directory")
    parser.add_argument("--trials-per-parameter", type=int, default=20)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    scores = pd.read_parquet(args.run / "scores.parquet")
    info = json.loads((args.run / "info.json").read_text())
    written = yaml.safe_load((args.run / "config.yaml").read_text()) or {}
    config = written.get("experiment", written)
    stacker = config.get("stacker") or {}
    if stacker.get("gate", "sigmoid") != "sigmoid":
        raise SystemExit(f"{args.run}: its stacker tuned a {stacker['gate']} gate; this script "
                         "extends the sigmoid gate")  # fmt: skip
    sessions = int(scores["sessions"].max())
    scores = scores[scores["sessions"] == sessions]
    available = [s for s, (col, _) in SIGNALS.items() if col is None or col in scores]
    variants = {
        "product": Variant(),
        **{f"gate + {s}": Variant(signals=(s,)) for s in available},
        "gate + all signals": Variant(signals=tuple(available)),
        "anchors: total per bucket": Variant(anchors="bucket_total"),
        "anchors: all per bucket": Variant(anchors="bucket"),
    }
    per_query = []
    weights = []
    for seed, table in scores.groupby("seed"):
        run = info["runs"].get(f"seed{int(seed)}_sessions{sessions}", {})
        table = table.sort_values(C.QID, kind="stable").reset_index(drop=True)
        evaluated = ~table["tuning"].to_numpy(bool)
        ev = table.loc[evaluated]
        first = ev.drop_duplicates(C.QID)
        for name, variant in variants.items():
            fused, params = tune(table, run, stacker, variant, args.trials_per_parameter)
            v = ndcg_at_k(
                fused[evaluated], ev[C.Y_EXPERT].to_numpy(), qid=ev[C.QID].to_numpy(), k=10
            )
            per_query.append(pd.DataFrame({"seed": int(seed), "qid": first[C.QID].to_numpy(),
                                           "bucket": first[C.BUCKET].to_numpy(), "variant": name,
                                           "ndcg": v}))  # fmt: skip
            if variant.signals:
                weights.append({"seed": int(seed), "variant": name,
                                **{k: v for k, v in params.items() if k.startswith("w_")}})  # fmt: skip
            print(f"seed {seed}: {name} tuned", flush=True)
    q = pd.concat(per_query, ignore_index=True).dropna(subset=["ndcg"])
    print(f"\n# {args.run}: {scores['seed'].nunique()} seeds x {sessions} sessions, "
          f"{q[['seed', 'qid']].drop_duplicates().shape[0]} evaluated queries\n")  # fmt: skip
    table = q.pivot_table(index="variant", columns="bucket", values="ndcg", aggfunc="mean")
    table = table[[b for b in BUCKETS if b in table.columns]]
    table["all"] = q.groupby("variant")["ndcg"].mean()
    wide = q.pivot_table(index=["seed", "qid"], columns="variant", values="ndcg")
    rows = []
    for name in variants:
        if name == "product":
            continue
        test = randomization_test(wide[name], wide["product"])
        rows.append({"variant": name, "diff vs product": test.mean_diff, "p": test.p_value})
    tests = pd.DataFrame(rows)
    table = table.reindex(list(variants)).reset_index()
    print(table.to_markdown(index=False, floatfmt=".4f"), "\n")
    print(tests.to_markdown(index=False, floatfmt=".4f"), "\n")
    print("Tuned signal weights per seed:\n")
    print(pd.DataFrame(weights).to_markdown(index=False, floatfmt=".2f"), "\n")
    # The best of several variants, picked on the evaluated queries: Bonferroni over them.
    best = tests.loc[tests["diff vs product"].idxmax()]
    alpha = 0.05 / len(tests)
    met = best["diff vs product"] > 0 and best["p"] < alpha
    print(f"best: {best['variant']} (p {best['p']:.4f}; {len(tests)} variants tried, so p < "
          f"{alpha:.3g})")  # fmt: skip
    print(f"RESULT stacker_variant_best_gain {best['diff vs product']:.4f} target > 0 "
          f"(Bonferroni p < 0.05) : {'met' if met else 'missed'}")  # fmt: skip


if __name__ == "__main__":
    main()
