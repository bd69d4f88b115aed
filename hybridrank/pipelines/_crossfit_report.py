"""The experiment's report on the labelled tuning queries, the stacker cross-fitted.

The stacker is scored there by its cross-fit (:func:`~hybridrank.ensemble.crossfit_stacker`:
each fold by a stacker tuned on the other folds, the gold expert retrained on
their grades alone), every other system as it is elsewhere (out of fold over
query folds; the gold expert cross-fitted over the tuning queries). Left out:
the tuned stacker and the meta-ranker, both fitted on those queries' grades.
The judge's cut points are calibrated on the same grades, so what learns from
LLM labels is slightly favoured there. Beside each system's quality there, its
quality on the evaluated queries shows whether the few labelled queries rank
the systems as the many do.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from hybridrank import columns as C
from hybridrank._atomic import save_figure
from hybridrank.data import TUNING
from hybridrank.evaluate import Report, evaluate_table

#: The cross-fitted stacker's score column (NaN outside the tuning queries).
CROSSFIT = "gated_stacker_crossfit"
#: Systems fitted on the tuning queries' grades: no honest score there.
IN_SAMPLE = ("gated_stacker", "meta_ranker")


def crossfit_report(
    tables: Sequence[pd.DataFrame],
    systems: Sequence[str],
    evaluated: Report,
    *,
    metric: str,
    bucket_order: Sequence[str],
    title: str,
) -> tuple[Report, pd.DataFrame] | None:
    """Each system's ``metric`` on the tuning queries (seeds pooled) beside the evaluated one.

    Args:
        tables: The main table's runs (qids already made unique across seeds),
            with the :data:`CROSSFIT` column.
        systems: The report's systems.
        evaluated: The main report (the evaluated queries).
        metric: The metric.
        bucket_order: Bucket display order.
        title: The report's title line.

    Returns:
        The tuning-query report (p-values against the cross-fitted stacker)
        and the side-by-side table, or None when no run has the column.
    """
    runs = [t for t in tables if CROSSFIT in t.columns]
    if not runs:
        return None
    pooled = pd.concat(runs, ignore_index=True)
    tuning = pooled.loc[pooled[TUNING].to_numpy() & pooled[CROSSFIT].notna().to_numpy()]
    names = [CROSSFIT, *(s for s in systems if s not in IN_SAMPLE and s != CROSSFIT)]
    report = evaluate_table(tuning, names, metrics=(metric,), bucket_order=bucket_order,
                            baseline=CROSSFIT, title=title)  # fmt: skip

    def overall(summary: pd.DataFrame, name: str) -> dict[str, float]:
        at_all = summary[summary[C.BUCKET] == "all"]
        if name not in at_all.columns:
            return {}
        values = at_all[name].to_numpy(dtype=np.float64)
        return dict(zip(at_all["system"].astype(str), values.tolist(), strict=True))

    mean, low, high = (
        overall(report.summary, f"{metric}{end}") for end in ("", "_ci_low", "_ci_high")
    )
    p_value = overall(report.summary, f"{metric}_p_vs_{CROSSFIT}")
    truth = overall(evaluated.summary, metric)
    rows = []
    for name in names:
        # The stacker's quality on the evaluated queries is the tuned stacker's there.
        served = "gated_stacker" if name == CROSSFIT else name
        rows.append(
            {
                "system": name,
                f"tuning queries ({metric})": mean[name],
                "95% CI": f"[{low[name]:.3f}, {high[name]:.3f}]",
                "p vs stacker": None if name == CROSSFIT else p_value.get(name),
                f"evaluated queries ({metric})": truth.get(served, np.nan),
            }
        )
    side = pd.DataFrame(rows)
    for column, rank in ((f"tuning queries ({metric})", "rank, tuning"),
                         (f"evaluated queries ({metric})", "rank, evaluated")):  # fmt: skip
        side[rank] = side[column].rank(ascending=False, method="min").astype("Int64")
    return report, side


def rank_agreement(side: pd.DataFrame) -> tuple[float, int] | None:
    """Spearman correlation of the systems' ranks on the tuning and the evaluated queries,
    and the number of systems measured on both (None with fewer than three)."""
    ranks = side[["rank, tuning", "rank, evaluated"]].dropna().astype(float)
    if len(ranks) < 3:
        return None
    return float(spearmanr(ranks.iloc[:, 0], ranks.iloc[:, 1]).statistic), len(ranks)


def crossfit_summary(side: pd.DataFrame, metric: str) -> str:
    """One line for the console: the cross-fitted stacker, the best other system there and
    how well the tuning queries rank the systems."""
    col = f"tuning queries ({metric})"
    first = side.iloc[0]
    others = side.iloc[1:].sort_values(col, ascending=False)
    text = f"stacker cross-fitted on the tuning queries: {metric} {first[col]:.3f}"
    if len(others):
        best = others.iloc[0]
        p = best["p vs stacker"]
        text += (
            f" (rank {int(first['rank, tuning'])} of {len(side)}; best other "
            f"{best['system']} {best[col]:.3f}" + ("" if pd.isna(p) else f", p = {p:.3g}") + ")"
        )
    agreement = rank_agreement(side)
    if agreement is not None:
        text += f"; the systems' ranks there vs the evaluated queries: Spearman {agreement[0]:.2f}"
    return text


def crossfit_markdown(report: Report, side: pd.DataFrame, folds: int) -> str:
    """The report's text: what was measured, the side-by-side table, the per-bucket table."""
    n = report.bucket_sizes().get("all", 0)
    measured = rank_agreement(side)
    agreement = (
        ""
        if measured is None
        else f"Rank correlation (Spearman) of the systems between the two columns: "
        f"{measured[0]:.2f} over {measured[1]} systems."
    )
    lines = [
        f"Systems on the {n} labelled tuning queries (seeds pooled), the stacker cross-fitted "
        f"over {folds} folds (`{CROSSFIT}`: each fold scored by a stacker tuned on the other "
        "folds, the gold expert retrained on their grades alone); the tuned stacker and the "
        "meta-ranker, fitted on these queries, are left out. The judge's cut points are "
        "calibrated on these queries' grades, so systems learning from LLM labels are slightly "
        "favoured here. Beside it, each system on the evaluated queries (the stacker: the one "
        "tuned on all tuning queries).",
        "",
        side.to_markdown(index=False, floatfmt=".4f"),
        "",
        agreement,
        "",
        report.title,
        "",
        report.table().to_markdown(),
    ]
    return "\n".join(lines)


def plot_crossfit(side: pd.DataFrame, metric: str, path: str | Path) -> Path:
    """Each system's quality on the tuning queries against the evaluated queries (PNG): on
    the diagonal, the labelled queries measure a system as the many would."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = side[f"evaluated queries ({metric})"].to_numpy(dtype=np.float64)
    y = side[f"tuning queries ({metric})"].to_numpy(dtype=np.float64)
    stacker = (side["system"] == CROSSFIT).to_numpy()
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    ax.scatter(x[~stacker], y[~stacker], s=18, color="tab:gray")
    ax.scatter(x[stacker], y[stacker], s=40, color="tab:red", label="stacker (cross-fitted)")
    for name, a, b in zip(side["system"], x, y, strict=True):
        ax.annotate(str(name), (a, b), fontsize=6, xytext=(3, 2), textcoords="offset points")
    finite = np.isfinite(x) & np.isfinite(y)
    if finite.any():
        low = float(min(x[finite].min(), y[finite].min()))
        high = float(max(x[finite].max(), y[finite].max()))
        ax.plot([low, high], [low, high], ":", color="black", linewidth=0.8)
    ax.set_xlabel(f"{metric}, evaluated queries")
    ax.set_ylabel(f"{metric}, labelled tuning queries")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    return save_figure(fig, path, dpi=110)


__all__ = [
    "CROSSFIT",
    "IN_SAMPLE",
    "crossfit_markdown",
    "crossfit_report",
    "crossfit_summary",
    "plot_crossfit",
    "rank_agreement",
]
