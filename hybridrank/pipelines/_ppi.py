"""Per-bucket quality from a few expert grades and many LLM labels (prediction-powered inference)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from hybridrank import columns as C
from hybridrank.errors import DataFormatError
from hybridrank.evaluate import per_query_metric, ppi_per_bucket

logger = logging.getLogger(__name__)


def ppi_report(
    table: pd.DataFrame,
    systems: Sequence[str],
    gold_qids: set[str],
    *,
    metric: str = "ndcg@10",
    alpha: float = 0.05,
) -> pd.DataFrame:
    """PPI++ and gold-only estimates of each system's mean metric, per bucket and overall.

    The metric is computed per query twice: against the LLM labels (``y_llm``)
    on every query, and against the expert grades (``y_expert``) on the gold
    queries; PPI corrects the LLM-label mean by the gold queries' gap and
    reports its interval beside the gold-only one (Angelopoulos et al., 2023;
    for IR, Oosterhuis et al., 2024). Queries without a relevant document
    count 0, as trec_eval does; pairs the judge did not label count grade 0.

    Args:
        table: Candidate table with ``qid``, ``bucket``, ``y_llm``, the
            system score columns and, on the gold queries, ``y_expert``.
        systems: Score columns.
        gold_qids: Queries whose expert grades are known.
        metric: Metric name.
        alpha: Miscoverage of the intervals.
    """
    for column in (C.Y_LLM, C.Y_EXPERT, C.BUCKET):
        if column not in table.columns:
            raise DataFormatError("PPI needs this column in the candidate table", column=column)
    work = table.assign(**{C.Y_LLM: table[C.Y_LLM].fillna(0.0)})
    buckets = work.groupby(C.QID, sort=False)[C.BUCKET].first().astype(str)
    gold_rows = work[C.QID].isin(gold_qids).to_numpy()
    frames = []
    for system in systems:
        pred = per_query_metric(work, system, C.Y_LLM, metric=metric, fill_no_relevant=0.0)
        gold = per_query_metric(
            work.loc[gold_rows], system, C.Y_EXPERT, metric=metric, fill_no_relevant=0.0
        )
        per_query = pd.DataFrame(
            {
                "gold": gold.reindex(pred.index).to_numpy(dtype=np.float64),
                "pred": pred.to_numpy(dtype=np.float64),
                "is_gold": pred.index.isin(list(gold_qids)),
                C.BUCKET: buckets.reindex(pred.index).to_numpy(),
            }
        )
        out = ppi_per_bucket(
            per_query, gold="gold", pred="pred", is_gold="is_gold", bucket=C.BUCKET, alpha=alpha
        )
        out.insert(0, "system", system)
        frames.append(out)
    return pd.concat(frames, ignore_index=True)


def ppi_markdown(frame: pd.DataFrame, metric: str) -> str:
    """The PPI table as markdown: estimate [interval] beside the gold-only estimate [interval]."""

    def cell(est: float, lo: float, hi: float) -> str:
        return "n/a" if not np.isfinite(est) else f"{est:.3f} [{lo:.3f}, {hi:.3f}]"

    rows = []
    for _, r in frame.iterrows():
        rows.append(
            {
                "system": r["system"],
                C.BUCKET: r[C.BUCKET],
                "gold queries": int(r["n_gold"]),
                "other queries": int(r["n_unlabelled"]),
                f"{metric} PPI": cell(r["estimate"], r["ci_low"], r["ci_high"]),
                f"{metric} gold only": cell(r["gold_estimate"], r["gold_ci_low"], r["gold_ci_high"]),
            }
        )
    return pd.DataFrame(rows).to_markdown(index=False)


__all__ = ["ppi_markdown", "ppi_report"]
