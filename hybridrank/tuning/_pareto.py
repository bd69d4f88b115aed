"""Multi-objective gbdt studies: the Pareto front (table and PNG) and picking a trial from it.

A production ranker is chosen for quality and serving cost. A study with
``objectives: [ndcg, latency]`` (or ``size``) keeps every trial's validation
NDCG@10, p50 latency and size; :func:`pick_trial` applies a rule such as
``"ndcg>=0.64, fastest"`` or ``"ndcg>=best-0.005, smallest"`` to the completed
trials, and :func:`lambdamart_params` turns the chosen trial's parameters
(:class:`~hybridrank.gbdt.LambdaMARTConfig` fields; LightGBM names in older
studies) into config fields.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hybridrank._atomic import save_figure, write_text
from hybridrank.errors import ConfigError

#: Columns of :func:`trials_table` a pick rule can name, with their aliases.
PICK_COLUMNS: Mapping[str, str] = {
    "ndcg": "ndcg",
    "ndcg@10": "ndcg",
    "latency": "p50_ms",
    "p50": "p50_ms",
    "p50_ms": "p50_ms",
    "size": "size",
    "trees": "n_trees",
}
#: How a pick rule chooses among the trials that meet its constraints.
CHOOSERS: Mapping[str, tuple[str, bool]] = {
    "fastest": ("p50_ms", True),
    "smallest": ("size", True),
    "best": ("ndcg", False),
}
_OPS: Mapping[str, Callable[[Any, Any], Any]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}
#: Trial parameter of a gbdt study -> LambdaMARTConfig field: the field names themselves,
#: and the LightGBM names that studies made before the fields were searched used.
LGB_TO_LAMBDAMART: Mapping[str, str] = {
    "learning_rate": "learning_rate",
    "num_leaves": "num_leaves",
    "min_child_samples": "min_child_samples",
    "colsample": "colsample",
    "reg_lambda": "reg_lambda",
    "min_data_in_leaf": "min_child_samples",
    "feature_fraction": "colsample",
    "lambda_l2": "reg_lambda",
}


def trials_table(study: Any) -> pd.DataFrame:
    """One row per completed trial: ``trial, ndcg, p50_ms, size, n_trees, best_round,
    pareto`` and the parameters (``pareto``: on the front of the study's objectives)."""
    import optuna

    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    front = {t.number for t in study.best_trials} if len(study.directions) > 1 else set()
    rows = []
    for t in done:
        rows.append({
            "trial": t.number,
            "ndcg": float(t.values[0]),
            "p50_ms": t.user_attrs.get("p50_ms", np.nan),
            "size": t.user_attrs.get("size", np.nan),
            "n_trees": t.user_attrs.get("n_trees", np.nan),
            "best_round": t.user_attrs.get("best_round", np.nan),
            "pareto": t.number in front,
            **t.params,
        })  # fmt: skip
    return pd.DataFrame(rows)


def pareto_front(study: Any) -> pd.DataFrame:
    """The Pareto-optimal trials, best NDCG first."""
    table = trials_table(study)
    if table.empty:
        return table
    return table[table["pareto"]].sort_values("ndcg", ascending=False).reset_index(drop=True)


@dataclass(frozen=True)
class Pick:
    """A rule choosing one trial: constraints, then a chooser.

    Attributes:
        constraints: ``(column, op, value, relative_to_best)`` each; with
            ``relative_to_best`` the value is added to the best value of the column
            (``ndcg>=best-0.005``).
        chooser: ``fastest``, ``smallest`` or ``best``.
    """

    constraints: tuple[tuple[str, str, float, bool], ...]
    chooser: str

    def describe(self) -> str:
        """The constraints as written: ``ndcg>=best-0.005, p50_ms<=1.0``."""
        def one(column: str, op: str, value: float, relative: bool) -> str:
            return f"{column}{op}best{value:+g}" if relative else f"{column}{op}{value:g}"

        return ", ".join(one(*c) for c in self.constraints) or "no constraint"

    @classmethod
    def parse(cls, text: str) -> Pick:
        """``"ndcg>=0.64, fastest"``, ``"ndcg>=best-0.005, latency<=1.0, smallest"``."""
        constraints: list[tuple[str, str, float, bool]] = []
        chooser = None
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            if part in CHOOSERS:
                if chooser is not None:
                    raise ConfigError(f"pick {text!r}: more than one of {sorted(CHOOSERS)}")
                chooser = part
                continue
            m = re.fullmatch(r"([a-z_@0-9]+)\s*(>=|<=|>|<)\s*(best\s*)?([+-]?\s*[0-9.eE+-]+)", part)
            if m is None or m.group(1) not in PICK_COLUMNS:
                raise ConfigError(
                    f"pick {text!r}: cannot read {part!r}; write constraints like ndcg>=0.64, "
                    f"ndcg>=best-0.005, latency<=1.5 (columns {sorted(PICK_COLUMNS)}) and one "
                    f"of {sorted(CHOOSERS)}"
                )
            try:
                value = float(m.group(4).replace(" ", ""))
            except ValueError:
                raise ConfigError(f"pick {text!r}: {m.group(4)!r} is not a number") from None
            constraints.append((PICK_COLUMNS[m.group(1)], m.group(2), value, bool(m.group(3))))
        if chooser is None:
            raise ConfigError(f"pick {text!r}: end with one of {sorted(CHOOSERS)}")
        return cls(tuple(constraints), chooser)


def pick_trial(table: pd.DataFrame, pick: Pick | str) -> pd.Series:
    """The trial of ``table`` (:func:`trials_table`) a pick rule chooses.

    Raises:
        ConfigError: No trial meets the constraints (the message gives the
            closest values), or the chooser needs a cost the trials lack.
    """
    rule = Pick.parse(pick) if isinstance(pick, str) else pick
    if table.empty:
        raise ConfigError("the study has no completed trial to pick from")
    ok = np.ones(len(table), dtype=bool)
    for column, op, value, relative in rule.constraints:
        col = table[column].to_numpy(dtype=np.float64)
        best = np.nanmax(col) if column == "ndcg" else np.nanmin(col)
        threshold = best + value if relative else value
        ok &= _OPS[op](col, threshold)
    if not ok.any():
        raise ConfigError(
            f"no trial meets {rule.describe()}: NDCG ranges {table['ndcg'].min():.4f}.."
            f"{table['ndcg'].max():.4f}, p50 {table['p50_ms'].min():.3f}..{table['p50_ms'].max():.3f} ms"
        )
    column, ascending = CHOOSERS[rule.chooser]
    candidates = table[ok]
    if candidates[column].isna().all():
        raise ConfigError(f"pick {rule.chooser}: the trials hold no {column}")
    # Ties on the cost go to the higher NDCG.
    order = candidates.sort_values([column, "ndcg"], ascending=[ascending, False])
    return order.iloc[0]


def lambdamart_params(trial: Mapping[str, Any]) -> dict[str, Any]:
    """LambdaMARTConfig fields of a gbdt trial (a :func:`trials_table` row or its params).

    ``n_estimators`` is the trial's early-stopped round count and early
    stopping is off, so the trained model has the size (and latency) the
    study measured.
    """
    out: dict[str, Any] = {}
    for name, field_name in LGB_TO_LAMBDAMART.items():
        if name in trial and not pd.isna(trial[name]) and field_name not in out:
            value = trial[name]
            out[field_name] = int(value) if field_name in ("num_leaves", "min_child_samples") else float(value)
    rounds = trial.get("best_round")
    if rounds is not None and not pd.isna(rounds):
        out["n_estimators"] = max(int(rounds), 1)
        out["early_stopping_rounds"] = None
    return out


def pareto_report(study: Any, out_dir: str | Path) -> tuple[str, dict[str, Path]]:
    """The Pareto front as markdown/CSV and a PNG of every trial (front highlighted)."""
    out = Path(out_dir)
    table = trials_table(study)
    front = pareto_front(study)
    cost = "p50_ms" if "latency" in study.user_attrs.get("objectives", ["ndcg", "latency"]) else "size"
    lines = [
        f"study {study.study_name}: {len(study.trials)} trials, {len(table)} complete; "
        f"objectives: NDCG@10 (max), {cost} (min)",
        f"Pareto front ({len(front)} trials), best NDCG first:",
        front.to_markdown(index=False, floatfmt=".4g") if len(front) else "(empty)",
    ]
    text = "\n".join(lines)
    paths = {"markdown": out / "pareto.md", "csv": out / "pareto.csv", "png": out / "pareto.png"}
    write_text(paths["markdown"], text + "\n")
    write_text(paths["csv"], table.to_csv(index=False))
    plot_pareto(table, cost, paths["png"])
    return text, paths


def plot_pareto(table: pd.DataFrame, cost: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, column, label in (
        (axes[0], "p50_ms", "p50 latency, 100 documents (ms)"),
        (axes[1], "size", "size (leaves over all trees)"),
    ):
        rest = table[~table["pareto"]]
        ax.scatter(rest[column], rest["ndcg"], s=14, alpha=0.5, label="trial")
        front = table[table["pareto"]].sort_values(column)
        ax.plot(front[column], front["ndcg"], "o-", color="C3",
                label=f"Pareto front ({cost})" if column == cost else "front of the study's cost")  # fmt: skip
        ax.set_xlabel(label)
        ax.set_ylabel("validation NDCG@10")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("gbdt study: quality against serving cost")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


__all__ = [
    "CHOOSERS",
    "LGB_TO_LAMBDAMART",
    "PICK_COLUMNS",
    "Pick",
    "lambdamart_params",
    "pareto_front",
    "pareto_report",
    "pick_trial",
    "plot_pareto",
    "trials_table",
]
