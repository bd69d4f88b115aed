"""Would a gate on more query signals than frequency earn its place? Measured on one experiment run.

The stacker's gate is a function of query frequency alone. Issue 12 asks for
a gate on further query-level signals. Before such a gate enters the product,
this script measures on a finished run whether the signals would help. It
reads the run's ``scores.parquet`` and ``info.json`` and, per seed at the
main session count, tunes two or more gates on the run's labelled tuning
queries, exactly as the experiment tunes its stacker:

- the same experts, anchors and normalisation as the run's stacker;
- TPE, seeded, the same number of trials per searched parameter;
- the same evaluated queries (tuning queries left out).

The gates:

- ``frequency``: ``sigmoid(slope * (log1p(f) - centre))``, the product's gate;
- ``+ <signal>``: that plus ``w * (signal - reference)``, one signal at a time;
- ``+ all``: every signal at once.

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

It prints NDCG@10 per gate and bucket, the paired difference to the
frequency gate with its randomisation p, and the tuned signal weights per
seed (a weight whose sign flips between seeds is fitted noise).

Usage:
  python bench/gate_signals.py --run DIR [--trials-per-parameter 20]
Ends with one line:
  RESULT gate_signals_best_gain <diff> target > 0 (Bonferroni p < 0.05) : met|missed

The best gate is picked on the evaluated queries, so its p is compared with
0.05 divided by the number of gates tried.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import yaml

from hybridrank import columns as C
from hybridrank.ensemble import fuse, prepare, zscore_per_query
from hybridrank.evaluate import ndcg_at_k, randomization_test

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


def tune(table: pd.DataFrame, run: dict, norm: str, signals: list[str], trials_per_param: int,
         seed: int) -> tuple[np.ndarray, dict[str, float]]:  # fmt: skip
    """Tune one gate (and the anchors' weights) on the tuning rows; fused scores of all rows."""
    names = list(run.get("anchors") or {})
    data = prepare(
        table["click_gbdt"].to_numpy(), table[run.get("llm_model", "llm_gbdt")].to_numpy(),
        qid=table[C.QID].to_numpy(), freq=table[C.FREQ].to_numpy(),
        labels=table[C.Y_EXPERT].to_numpy(), normalisation=norm,
        anchors=[table[a].to_numpy() for a in names],
    )  # fmt: skip
    sig = query_signals(table, data.click, data.llm, data.offsets)
    missing = [s for s in signals if s not in sig]
    if missing:
        raise SystemExit(f"the run has no column for the signals {missing}")
    log_freq = np.log1p(data.row_freq)
    tuning = table["tuning"].to_numpy(bool)
    qid = table[C.QID].to_numpy()

    def fused(p: dict[str, float]) -> np.ndarray:
        z = p["slope"] * (log_freq - p["centre"])
        for s in signals:
            z = z + p[f"w_{s}"] * sig[s]
        gate = 1.0 / (1.0 + np.exp(-z))
        weights: tuple[float, ...] = ()
        if names:
            shares = np.array([p.get(f"share_{i}", 1.0) for i in range(len(names))])
            shares = (
                shares / shares.sum() if shares.sum() > 0 else np.full(len(names), 1 / len(names))
            )
            weights = tuple(float(w) for w in p["anchor_weight"] * shares)
        return fuse(gate, data.click, data.llm, anchors=data.anchors if names else (),
                    anchor_weights=weights)  # fmt: skip

    def objective(trial: optuna.Trial) -> float:
        p = {"centre": trial.suggest_float("centre", 0.0, 5.0),
             "slope": trial.suggest_float("slope", 0.0, 8.0)}  # fmt: skip
        if names:
            p["anchor_weight"] = trial.suggest_float("anchor_weight", 0.0, 1.0)
            if len(names) > 1:
                for i in range(len(names)):
                    p[f"share_{i}"] = trial.suggest_float(f"share_{i}", 0.0, 1.0)
        for s in signals:
            p[f"w_{s}"] = trial.suggest_float(f"w_{s}", *WEIGHT_RANGE)
        v = ndcg_at_k(fused(p)[tuning], data.labels[tuning], qid=qid[tuning], k=10)
        return float(np.nanmean(v))

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    n_params = 2 + len(signals) + (1 + len(names) if len(names) > 1 else len(names))
    study.optimize(objective, n_trials=trials_per_param * n_params)
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
    norm = str(stacker.get("normalisation", "zscore"))
    seed0 = int(stacker.get("seed", 0))
    sessions = int(scores["sessions"].max())
    scores = scores[scores["sessions"] == sessions]
    available = [s for s, (col, _) in SIGNALS.items() if col is None or col in scores]
    gates = {"frequency": [], **{f"+ {s}": [s] for s in available}, "+ all": available}
    per_query = []
    weights = []
    for seed, table in scores.groupby("seed"):
        run = info["runs"].get(f"seed{int(seed)}_sessions{sessions}", {})
        table = table.sort_values(C.QID, kind="stable").reset_index(drop=True)
        evaluated = ~table["tuning"].to_numpy(bool)
        ev = table.loc[evaluated]
        first = ev.drop_duplicates(C.QID)
        for name, signals in gates.items():
            fused, params = tune(table, run, norm, signals, args.trials_per_parameter, seed0)
            v = ndcg_at_k(
                fused[evaluated], ev[C.Y_EXPERT].to_numpy(), qid=ev[C.QID].to_numpy(), k=10
            )
            per_query.append(pd.DataFrame({"seed": int(seed), "qid": first[C.QID].to_numpy(),
                                           "bucket": first[C.BUCKET].to_numpy(), "gate": name,
                                           "ndcg": v}))  # fmt: skip
            weights.append({"seed": int(seed), "gate": name,
                            **{k: v for k, v in params.items() if k.startswith("w_")}})  # fmt: skip
            print(f"seed {seed}: {name} tuned", flush=True)
    q = pd.concat(per_query, ignore_index=True).dropna(subset=["ndcg"])
    print(f"\n# {args.run}: {scores['seed'].nunique()} seeds x {sessions} sessions, "
          f"{q[['seed', 'qid']].drop_duplicates().shape[0]} evaluated queries\n")  # fmt: skip
    table = q.pivot_table(index="gate", columns="bucket", values="ndcg", aggfunc="mean")
    table = table[[b for b in BUCKETS if b in table.columns]]
    table["all"] = q.groupby("gate")["ndcg"].mean()
    wide = q.pivot_table(index=["seed", "qid"], columns="gate", values="ndcg")
    rows = []
    for name in gates:
        if name == "frequency":
            continue
        test = randomization_test(wide[name], wide["frequency"])
        rows.append({"gate": name, "diff vs frequency": test.mean_diff, "p": test.p_value})
    tests = pd.DataFrame(rows)
    table = table.reindex(list(gates)).reset_index()
    print(table.to_markdown(index=False, floatfmt=".4f"), "\n")
    print(tests.to_markdown(index=False, floatfmt=".4f"), "\n")
    print("Tuned signal weights per seed:\n")
    print(pd.DataFrame(weights).query("gate != 'frequency'").to_markdown(index=False,
                                                                         floatfmt=".2f"), "\n")  # fmt: skip
    # The best of several gates, picked on the evaluated queries: Bonferroni over the gates.
    best = tests.loc[tests["diff vs frequency"].idxmax()]
    alpha = 0.05 / len(tests)
    met = best["diff vs frequency"] > 0 and best["p"] < alpha
    print(f"best: {best['gate']} (p {best['p']:.4f}; {len(tests)} gates tried, so p < {alpha:.3g})")
    print(f"RESULT gate_signals_best_gain {best['diff vs frequency']:.4f} target > 0 "
          f"(Bonferroni p < 0.05) : {'met' if met else 'missed'}")  # fmt: skip


if __name__ == "__main__":
    main()
