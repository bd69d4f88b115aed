"""Per-bucket evaluation reports: tables (text, markdown, CSV, JSON) and a PNG chart."""

from __future__ import annotations

import json
import logging
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hybridrank import columns as C
from hybridrank._atomic import save_figure, write_text
from hybridrank._grouping import offsets_from_qid
from hybridrank.errors import ConfigError, DataFormatError, MissingColumnError
from hybridrank.evaluate._metrics import parse_metric
from hybridrank.evaluate._significance import bootstrap_ci, randomization_test

logger = logging.getLogger(__name__)

ALL = "all"


@dataclass(frozen=True)
class Report:
    """Metrics of several systems, per frequency bucket and overall.

    Attributes:
        per_query: One row per (query, system): ``qid, bucket, system`` and a
            column per metric (NaN for queries without a relevant candidate).
        summary: One row per (system, bucket) including ``"all"``: for each
            metric its mean, ``_ci_low`` and ``_ci_high``, the number of queries
            evaluated (``n``), those left out for holding no relevant
            candidate (``n_no_relevant``), and where a baseline was named the
            randomisation-test p-value against it (``_p_vs_<baseline>``).
        metrics: Metric names in display order.
        buckets: Bucket names in display order (``"all"`` last).
        systems: System (score column) names in display order.
        title: A line describing what was evaluated.
        baseline: Name of the system the p-values compare against, if any.
    """

    per_query: pd.DataFrame
    summary: pd.DataFrame
    metrics: tuple[str, ...]
    buckets: tuple[str, ...]
    systems: tuple[str, ...]
    title: str = ""
    baseline: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def bucket_sizes(self) -> dict[str, int]:
        """Queries evaluated per bucket (those with a relevant candidate)."""
        first = self.summary.drop_duplicates(C.BUCKET)
        return {str(b): int(n) for b, n in zip(first[C.BUCKET], first["n"], strict=True)}

    def table(self, metric: str | None = None) -> pd.DataFrame:
        """Wide table: a row per system, a column per bucket, cells ``mean [low, high]``."""
        metric = metric or self.metrics[0]
        cells: dict[str, list[str]] = {}
        counts = self.bucket_sizes()
        for bucket in self.buckets:
            header = f"{bucket} (n={counts[bucket]})"
            col = []
            for system in self.systems:
                row = self.summary[
                    (self.summary["system"] == system) & (self.summary[C.BUCKET] == bucket)
                ].iloc[0]
                text = f"{row[metric]:.3f} [{row[metric + '_ci_low']:.3f}, {row[metric + '_ci_high']:.3f}]"
                pcol = f"{metric}_p_vs_{self.baseline}"
                if self.baseline and system != self.baseline and pcol in row and row[pcol] < 0.05:
                    text += " *"
                col.append(text)
            cells[header] = col
        return pd.DataFrame(cells, index=pd.Index(self.systems, name="system"))

    def to_text(self) -> str:
        """The tables a user reads in the terminal, one per metric."""
        parts = [self.title] if self.title else []
        n_left_out = self.summary.loc[self.summary[C.BUCKET] == ALL, "n_no_relevant"]
        if len(n_left_out):
            parts.append(
                f"Queries without a relevant candidate, left out of every mean: {int(n_left_out.iloc[0])}"
            )
        for metric in self.metrics:
            parts.append("")
            parts.append(f"{metric} (mean [95% bootstrap CI])")
            parts.append(self.table(metric).to_markdown())
        if self.baseline:
            parts.append("")
            parts.append(f"* p < 0.05, paired randomisation test against {self.baseline}")
        return "\n".join(parts)

    def write(self, out_dir: str | Path, *, stem: str = "report") -> dict[str, Path]:
        """Write markdown, CSV (summary and per query), JSON and a PNG chart per metric."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {
            "markdown": out / f"{stem}.md",
            "csv": out / f"{stem}.csv",
            "per_query": out / f"{stem}_per_query.csv",
            "json": out / f"{stem}.json",
        }
        # Each file appears whole or not at all (temporary sibling, then rename). The JSON
        # first: it marks the folder as a report's (`evaluate` replaces only such folders).
        payload = {
            "title": self.title,
            "metrics": list(self.metrics),
            "buckets": list(self.buckets),
            "systems": list(self.systems),
            "baseline": self.baseline,
            "meta": self.meta,
            "summary": json.loads(self.summary.to_json(orient="records")),
        }
        write_text(paths["json"], json.dumps(payload, indent=2) + "\n")
        write_text(paths["markdown"], self.to_text() + "\n")
        write_text(paths["csv"], self.summary.to_csv(index=False))
        write_text(paths["per_query"], self.per_query.to_csv(index=False))
        for metric in self.metrics:
            png = out / f"{stem}_{metric.replace('@', '_at_')}.png"
            self.plot(metric, png)
            paths[f"png:{metric}"] = png
        return paths

    def plot(self, metric: str, path: str | Path) -> Path:
        """Grouped bar chart: buckets on the x axis, a bar per system, bootstrap CIs as error bars."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        n_sys = len(self.systems)
        width = 0.8 / max(n_sys, 1)
        x = np.arange(len(self.buckets))
        fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(self.buckets) * max(1, n_sys / 2)), 4.2))
        for i, system in enumerate(self.systems):
            rows = (
                self.summary[self.summary["system"] == system]
                .set_index(C.BUCKET)
                .reindex(list(self.buckets))
            )
            mean = rows[metric].to_numpy(dtype=float)
            err = np.vstack(
                [
                    mean - rows[metric + "_ci_low"].to_numpy(dtype=float),
                    rows[metric + "_ci_high"].to_numpy(dtype=float) - mean,
                ]
            )
            bars = ax.bar(
                x + (i - (n_sys - 1) / 2) * width, mean, width, yerr=err, capsize=3, label=system
            )
            if n_sys <= 4:
                ax.bar_label(bars, fmt="%.3f", fontsize=7, label_type="center", color="white")
        counts = self.bucket_sizes()
        ax.set_xticks(x, [f"{b}\n(n={counts[b]})" for b in self.buckets])
        ax.set_ylabel(metric)
        ax.set_title(textwrap.fill(self.title or metric, 80), fontsize=9)
        ax.legend(fontsize=8, ncols=min(n_sys, 4), loc="lower right")
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        path = save_figure(fig, path, dpi=120)
        return path


def evaluate_table(
    table: pd.DataFrame,
    systems: Sequence[str],
    *,
    label: str = C.Y_EXPERT,
    metrics: Sequence[str] = ("ndcg@10",),
    bucket: str | None = C.BUCKET,
    bucket_order: Sequence[str] | None = None,
    baseline: str | None = None,
    title: str = "",
    n_bootstrap: int = 2_000,
    n_permutations: int = 10_000,
    seed: int = 0,
) -> Report:
    """Evaluate score columns of a candidate table per bucket and overall.

    Args:
        table: Candidate table, rows of a query contiguous.
        systems: Score columns to evaluate (higher is better).
        label: Column holding graded relevance (default the expert grades).
        metrics: Metric names such as ``ndcg@10``, ``mrr``, ``err@10``.
        bucket: Column naming each query's bucket; None for overall only.
        bucket_order: Display order of buckets; default sorted by first appearance.
        baseline: A system to test every other one against (paired randomisation).
        title: Heading line of the report.
        n_bootstrap: Resamples of the bootstrap confidence intervals.
        n_permutations: Sign flips of the randomisation test.
        seed: Seed of both resampling procedures.
    """
    missing = [c for c in [*systems, label, C.QID] if c not in table.columns]
    if bucket is not None and bucket not in table.columns:
        missing.append(bucket)
    if missing:
        import difflib

        hints = [
            f"{close[0]!r} for {m!r}"
            for m in missing
            if (close := difflib.get_close_matches(str(m), list(map(str, table.columns)), n=1))
        ]
        raise MissingColumnError(
            f"candidate table lacks columns {missing}"
            + (f" (did you mean {', '.join(hints)}?)" if hints else "")
            + f"; it has {list(table.columns)}"
        )
    if baseline is not None and baseline not in systems:
        raise ConfigError(f"baseline {baseline!r} is not among the systems {list(systems)}")
    for column in [label, *systems]:
        col_values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(col_values)
        if bad.any():
            bad_row = int(np.flatnonzero(bad)[0])
            what = "label" if column == label else "score"
            raise DataFormatError(
                f"{int(bad.sum())} {what} values are missing, infinite or not numbers "
                f"(first: qid {table[C.QID].iloc[bad_row]!r}, docid "
                f"{table[C.DOCID].iloc[bad_row] if C.DOCID in table else '?'!r}); "
                "fill them (a score column: --on-missing worst ranks such rows last)",
                row=bad_row,
                column=column,
            )
    parsed = [parse_metric(m) for m in metrics]
    offsets = offsets_from_qid(table[C.QID].to_numpy())
    starts = offsets[:-1]
    qids = table[C.QID].to_numpy()[starts]
    buckets_q = (
        table[bucket].astype(str).to_numpy()[starts]
        if bucket is not None
        else np.full(len(qids), ALL)
    )
    labels = table[label].to_numpy(dtype=np.float64)
    negative = labels < 0
    if negative.any():  # TREC's junk grades: not relevant, as trec_eval counts them
        logger.warning(
            "%d negative %s values counted as 0 (not relevant), as trec_eval does",
            int(negative.sum()), label,
        )  # fmt: skip
        labels = np.where(negative, 0.0, labels)

    frames = []
    for system in systems:
        scores = table[system].to_numpy(dtype=np.float64)
        values = {m.name: m(scores, labels, offsets=offsets) for m in parsed}
        frames.append(pd.DataFrame({C.QID: qids, C.BUCKET: buckets_q, "system": system, **values}))
    per_query = pd.concat(frames, ignore_index=True)

    if bucket_order is None:
        order = list(dict.fromkeys(buckets_q)) if bucket is not None else []
    else:
        order = [b for b in bucket_order if b in set(buckets_q)]
    order = [b for b in order if b != ALL] + [ALL] if bucket is not None else [ALL]

    rows = []
    for system in systems:
        mine = per_query[per_query["system"] == system]
        base = per_query[per_query["system"] == baseline] if baseline else None
        for b in order:
            sel = mine if b == ALL else mine[mine[C.BUCKET] == b]
            first = sel[parsed[0].name].to_numpy()
            row: dict[str, Any] = {
                "system": system,
                C.BUCKET: b,
                "n": int(np.count_nonzero(~np.isnan(first))),
                "n_no_relevant": int(np.count_nonzero(np.isnan(first))),
            }
            for m in parsed:
                vals = sel[m.name].to_numpy()
                row[m.name] = float(np.nanmean(vals)) if np.any(~np.isnan(vals)) else float("nan")
                low, high = bootstrap_ci(vals, n_resamples=n_bootstrap, rng=seed)
                row[m.name + "_ci_low"], row[m.name + "_ci_high"] = low, high
                if base is not None and system != baseline:
                    bsel = base if b == ALL else base[base[C.BUCKET] == b]
                    test = randomization_test(
                        vals, bsel[m.name].to_numpy(), n_resamples=n_permutations, rng=seed
                    )
                    row[f"{m.name}_p_vs_{baseline}"] = test.p_value
            rows.append(row)
    summary = pd.DataFrame(rows)
    return Report(
        per_query=per_query,
        summary=summary,
        metrics=tuple(m.name for m in parsed),
        buckets=tuple(order),
        systems=tuple(systems),
        title=title,
        baseline=baseline,
    )
