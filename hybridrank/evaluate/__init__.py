"""Ranking metrics over grouped arrays, significance tests, per-bucket reports,
prediction-powered inference and click-based (IPS) evaluation."""

from __future__ import annotations

from hybridrank._grouping import offsets_from_qid
from hybridrank.evaluate._clickbased import (
    ClickMetricResult,
    ips_click_metric,
    ips_click_report,
)
from hybridrank.evaluate._metrics import (
    METRICS,
    Metric,
    check_metrics,
    dcg_at_k,
    err_at_k,
    mrr,
    ndcg_at_k,
    parse_metric,
    precision_at_k,
    rank_labels,
)
from hybridrank.evaluate._ppi import PPIEstimate, per_query_metric, ppi_mean, ppi_per_bucket
from hybridrank.evaluate._report import Report, evaluate_table
from hybridrank.evaluate._significance import (
    PairedTest,
    bootstrap_ci,
    max_gain_test,
    paired_t_test,
    randomization_test,
)

__all__ = [
    "METRICS",
    "ClickMetricResult",
    "Metric",
    "PPIEstimate",
    "PairedTest",
    "Report",
    "bootstrap_ci",
    "check_metrics",
    "dcg_at_k",
    "err_at_k",
    "evaluate_table",
    "ips_click_metric",
    "ips_click_report",
    "max_gain_test",
    "mrr",
    "ndcg_at_k",
    "offsets_from_qid",
    "paired_t_test",
    "parse_metric",
    "per_query_metric",
    "ppi_mean",
    "ppi_per_bucket",
    "precision_at_k",
    "randomization_test",
    "rank_labels",
]
