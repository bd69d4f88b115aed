"""Feature importance of a LambdaMART model: gain, split count, SHAP and permutation, per bucket."""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from hybridrank import columns as C
from hybridrank._atomic import save_figure, write_text
from hybridrank._grouping import offsets_from_qid
from hybridrank.evaluate import ndcg_at_k
from hybridrank.gbdt._lambdamart import LambdaMARTRanker

logger = logging.getLogger(__name__)

ALL = "all"


@dataclass(frozen=True)
class Importance:
    """Importance tables.

    Attributes:
        overall: One row per feature: ``gain``, ``split`` (shares of the
            total), ``shap`` (mean |SHAP|) and ``permutation`` (mean drop in
            NDCG@k when the feature is shuffled within each query).
        by_bucket: One row per (bucket, feature): ``shap`` and ``permutation``
            computed on that bucket's queries only, and ``queries``, how many
            (with a relevant document: the permutation drop's queries).
    """

    overall: pd.DataFrame
    by_bucket: pd.DataFrame

    def top(self, n: int = 15, by: str = "permutation") -> pd.DataFrame:
        return self.overall.sort_values(by, ascending=False).head(n)

    def bucket_table(
        self, measure: str = "permutation", n: int = 15, *, counts: bool = False
    ) -> pd.DataFrame:
        """Features as rows, buckets as columns, for one measure (``counts``: each column
        named with its number of queries, ``low (n=12)``)."""
        wide = self.by_bucket.pivot(index="feature", columns=C.BUCKET, values=measure)
        order = [b for b in dict.fromkeys(self.by_bucket[C.BUCKET]) if b in wide.columns]
        wide = wide[order]
        wide = wide.loc[wide.abs().max(axis=1).sort_values(ascending=False).index[:n]]
        if counts and "queries" in self.by_bucket.columns:  # how many queries each averages
            n_queries = self.by_bucket.groupby(C.BUCKET, sort=False)["queries"].first()
            wide.columns = [f"{b} (n={int(n_queries[b])})" for b in wide.columns]
        return wide

    @property
    def has_buckets(self) -> bool:
        """Whether the table explained had frequency buckets (else ``by_bucket`` is ``all``)."""
        return bool(set(self.by_bucket[C.BUCKET].astype(str)) - {"all"})

    def to_text(self, n: int = 15) -> str:
        parts = [
            f"Top {n} features overall (gain and split as shares; shap = mean |SHAP|; "
            "permutation = NDCG drop when shuffled within queries)",
            self.top(n).to_markdown(floatfmt=".4f"),
        ]
        if self.has_buckets:
            parts += [
                "",
                "Permutation importance per frequency bucket (NDCG drop)",
                self.bucket_table("permutation", n, counts=True).to_markdown(floatfmt=".4f"),
                "",
                "Mean |SHAP| per frequency bucket",
                self.bucket_table("shap", n, counts=True).to_markdown(floatfmt=".4f"),
            ]
        return "\n".join(parts)

    def write(self, out_dir: str | Path, *, n: int = 15) -> dict[str, Path]:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {
            "overall_csv": out / "importance.csv",
            "markdown": out / "importance.md",
            "png_overall": out / "importance.png",
        }
        write_text(paths["overall_csv"], self.overall.to_csv())
        write_text(paths["markdown"], self.to_text(n) + "\n")
        self._plot_overall(paths["png_overall"], n)
        bucket_csv, png_buckets = out / "importance_by_bucket.csv", out / "importance_by_bucket.png"
        if self.has_buckets:  # without buckets the "per bucket" table is the overall one again
            paths["bucket_csv"], paths["png_buckets"] = bucket_csv, png_buckets
            write_text(bucket_csv, self.by_bucket.to_csv(index=False))
            self._plot_buckets(png_buckets, n)
        else:  # an earlier run's into the same folder would read as this one's
            bucket_csv.unlink(missing_ok=True)
            png_buckets.unlink(missing_ok=True)
        return paths

    def _plot_overall(self, path: Path, n: int) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        top = self.top(n)[::-1]
        measures = ["gain", "split", "shap", "permutation"]
        fig, axes = plt.subplots(1, 4, figsize=(16, 0.35 * len(top) + 1.5), sharey=True)
        for ax, m in zip(axes, measures, strict=True):
            ax.barh(top.index, top[m])
            ax.set_title(m)
            ax.grid(axis="x", alpha=0.3)
        fig.suptitle(
            textwrap.fill("Feature importance (features ordered by permutation importance)", 100)
        )
        fig.tight_layout()
        save_figure(fig, path, dpi=110)

    def _plot_buckets(self, path: Path, n: int) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        wide = self.bucket_table("permutation", n, counts=True)[::-1]
        buckets = list(wide.columns)
        fig, ax = plt.subplots(figsize=(9, 0.4 * len(wide) + 1.5))
        height = 0.8 / max(len(buckets), 1)
        y = np.arange(len(wide))
        for i, b in enumerate(buckets):
            ax.barh(y + (i - (len(buckets) - 1) / 2) * height, wide[b].to_numpy(), height, label=b)
        ax.set_yticks(y, wide.index)
        ax.set_xlabel("NDCG drop when shuffled within queries")
        ax.set_title("Which signals carry head and tail queries")
        ax.legend()
        ax.grid(axis="x", alpha=0.3)
        fig.tight_layout()
        save_figure(fig, path, dpi=110)


def _permute_within_queries(
    column: np.ndarray, offsets: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Shuffle a column within each query (vectorised: sort by query, then a random key)."""
    gid = np.repeat(np.arange(offsets.shape[0] - 1), np.diff(offsets))
    order = np.lexsort((rng.random(gid.shape[0]), gid))
    return column[order]


def feature_importance(
    ranker: LambdaMARTRanker,
    table: pd.DataFrame,
    features: Sequence[str],
    *,
    label: str = C.Y_EXPERT,
    bucket: str | None = C.BUCKET,
    k: int = 10,
    n_repeats: int = 3,
    seed: int = 0,
    bucket_order: Sequence[str] | None = None,
) -> Importance:
    """Gain, split, SHAP and group-aware permutation importance, overall and per bucket.

    Args:
        ranker: A fitted ranker.
        table: Rows to explain: features, ``qid``, the label and the bucket,
            rows of a query contiguous.
        features: Feature columns in model order.
        label: Graded relevance column that NDCG is measured against.
        bucket: Bucket column; None for overall only.
        k: NDCG cut-off.
        n_repeats: Shuffles per feature (the mean drop is reported).
        seed: Seed of the shuffles.
        bucket_order: The buckets' order in the tables and plots; by default
            rising query frequency where the table has ``freq`` (low, mid,
            high), else the order they first appear in.
    """
    X = table[list(features)].to_numpy(dtype=np.float32)
    qid = table[C.QID].to_numpy()
    offsets = offsets_from_qid(qid)
    y = table[label].to_numpy(dtype=np.float64)
    q_bucket = (
        table[bucket].astype(str).to_numpy()[offsets[:-1]]
        if bucket
        else np.full(offsets.shape[0] - 1, ALL)
    )
    base = ndcg_at_k(ranker.predict(X), y, offsets=offsets, k=k)

    rng = np.random.default_rng(seed)
    drops = np.zeros((len(features), base.shape[0]))
    for j, _name in enumerate(tqdm(features, desc="permutation importance", leave=False)):
        for _ in range(n_repeats):
            Xp = X.copy()
            Xp[:, j] = _permute_within_queries(X[:, j], offsets, rng)
            drops[j] += base - ndcg_at_k(ranker.predict(Xp), y, offsets=offsets, k=k)
        drops[j] /= n_repeats

    contrib = np.abs(ranker.predict_contributions(X)[:, : len(features)])
    row_bucket = np.repeat(q_bucket, np.diff(offsets))
    gain = ranker.importance("gain")
    split = ranker.importance("split")
    valid = ~np.isnan(base)
    overall = pd.DataFrame(
        {
            "gain": (gain / max(gain.sum(), 1e-12)).reindex(list(features)).to_numpy(),
            "split": (split / max(split.sum(), 1e-12)).reindex(list(features)).to_numpy(),
            "shap": contrib.mean(axis=0),
            "permutation": drops[:, valid].mean(axis=1) if valid.any() else np.nan,
        },
        index=pd.Index(list(features), name="feature"),
    )
    rows = []
    for b in [*_ordered_buckets(table, bucket, q_bucket, bucket_order), ALL] if bucket else [ALL]:
        qmask = valid & ((q_bucket == b) if b != ALL else True)
        rmask = (row_bucket == b) if b != ALL else np.ones(row_bucket.shape[0], dtype=bool)
        shap_b = contrib[rmask].mean(axis=0) if rmask.any() else np.full(len(features), np.nan)
        perm_b = drops[:, qmask].mean(axis=1) if qmask.any() else np.full(len(features), np.nan)
        for j, name in enumerate(features):
            rows.append({C.BUCKET: b, "feature": name, "queries": int(np.sum(qmask)),
                         "shap": shap_b[j], "permutation": perm_b[j]})  # fmt: skip
    return Importance(overall=overall, by_bucket=pd.DataFrame(rows))


def _ordered_buckets(
    table: pd.DataFrame, column: str, q_bucket: np.ndarray, order: Sequence[str] | None
) -> list[str]:
    seen = list(dict.fromkeys(q_bucket.tolist()))
    if order is not None:
        return [b for b in order if b in seen] + [b for b in seen if b not in order]
    if C.FREQ not in table.columns:
        return seen
    freq = pd.to_numeric(table[C.FREQ], errors="coerce")
    lowest = freq.groupby(table[column].astype(str).to_numpy()).min()
    return sorted(seen, key=lambda b: (lowest.get(b, np.inf), seen.index(b)))
