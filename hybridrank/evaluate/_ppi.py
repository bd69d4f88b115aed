"""Prediction-powered inference (PPI++) for the mean of a per-query metric.

A few *gold* queries carry expert grades; every query carries LLM labels. The
metric (say NDCG@10 of one ranker) is computed per query twice, with each
kind of label. Prediction-powered inference (Angelopoulos et al., *Science*
2023) estimates the mean of the expert-graded metric over all queries from
the LLM-labelled metric of the many queries, corrected by its measured error
on the gold ones:

    theta = lam * mean(f_unlabelled) + mean(y_gold - lam * f_gold)

The *rectifier* ``y_gold - lam * f_gold`` removes the LLM's bias, so the
estimate is unbiased for any ``lam``. PPI++ (Angelopoulos, Duchi and Zrnic,
2023) picks the ``lam`` that minimises the variance,
``cov(y, f) / ((1 + n / N) var(f))``, clipped to ``[0, 1]``: ``lam = 0`` is the
classical gold-only mean, ``lam = 1`` is the original PPI. The interval is
the normal one, ``theta +- z * sqrt(lam^2 var(f_unl) / N + var(y - lam f) / n)``
(variances with ``ddof=1``). Oosterhuis et al. (KDD 2024) apply it to IR
evaluation with LLM relevance judgements.

Policy for queries without a relevant document: the ranking metrics return
NaN for them (see :mod:`hybridrank.evaluate._metrics`), but PPI needs one
population whose mean both labellings estimate. :func:`per_query_metric`
takes ``fill_no_relevant`` (use ``0.0``: a query with nothing relevant scores
0 under trec_eval's convention); :func:`ppi_mean` and :func:`ppi_per_bucket`
refuse NaN where a value is needed.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt
import pandas as pd

from hybridrank import columns as C
from hybridrank._grouping import offsets_from_qid
from hybridrank.errors import DataFormatError
from hybridrank.evaluate._metrics import parse_metric

logger = logging.getLogger(__name__)

ALL = "all"


@dataclass(frozen=True)
class PPIEstimate:
    """A prediction-powered estimate of a mean, beside the gold-only one.

    Attributes:
        estimate: PPI++ estimate of the mean of the gold metric.
        ci_low: Lower end of its normal confidence interval.
        ci_high: Upper end of its normal confidence interval.
        lam: The weight ``lam`` of the LLM-labelled metric, in ``[0, 1]``.
        n_gold: Number of gold queries (expert grades and LLM labels).
        n_unlabelled: Number of queries with LLM labels only.
        gold_estimate: Mean of the gold metric over the gold queries.
        gold_ci_low: Lower end of the classical interval,
            ``mean - z * sd / sqrt(n)``.
        gold_ci_high: Upper end of the classical interval.
    """

    estimate: float
    ci_low: float
    ci_high: float
    lam: float
    n_gold: int
    n_unlabelled: int
    gold_estimate: float
    gold_ci_low: float
    gold_ci_high: float

    @property
    def width(self) -> float:
        """Width of the PPI interval."""
        return self.ci_high - self.ci_low

    @property
    def gold_width(self) -> float:
        """Width of the gold-only interval."""
        return self.gold_ci_high - self.gold_ci_low


def _vector(values: npt.ArrayLike, name: str) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {x.shape}")
    n_bad = int(np.count_nonzero(~np.isfinite(x)))
    if n_bad:
        raise ValueError(
            f"{name} holds {n_bad} NaN or infinite values; compute the metric with "
            "fill_no_relevant=0.0 or drop those queries"
        )
    return x


def _z(alpha: float) -> float:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    return NormalDist().inv_cdf(1 - alpha / 2)


def ppi_mean(
    gold: npt.ArrayLike,
    pred_gold: npt.ArrayLike,
    pred_unlabelled: npt.ArrayLike,
    *,
    alpha: float = 0.05,
    power_tuning: bool = True,
    lam: float | None = None,
) -> PPIEstimate:
    """PPI++ estimate and ``1 - alpha`` interval of the mean of a per-query metric.

    Args:
        gold: Metric with expert grades on the gold queries, shape ``(n,)``.
        pred_gold: The metric with LLM labels on the same queries, same order,
            shape ``(n,)``.
        pred_unlabelled: The metric with LLM labels on the other queries,
            shape ``(N,)``.
        alpha: Miscoverage of the intervals (0.05 gives 95% intervals).
        power_tuning: Choose ``lam`` by PPI++; False uses ``lam = 1`` (PPI).
        lam: A fixed ``lam`` in ``[0, 1]``; overrides ``power_tuning``.

    Returns:
        The estimate with its interval and the gold-only mean with its
        classical interval. With fewer than 2 unlabelled queries, or an
        LLM-labelled metric of zero variance, the tuned ``lam`` is 0.

    Raises:
        ValueError: On fewer than 2 gold queries, unequal lengths of ``gold``
            and ``pred_gold``, NaN or infinite values (naming the argument),
            or ``alpha``/``lam`` out of range.

    Example:
        >>> est = ppi_mean([0.5, 0.7, 0.9], [0.4, 0.7, 1.0], [0.2, 0.6, 0.8, 0.4])
        >>> round(est.lam, 4), round(est.estimate, 4)
        (0.4586, 0.6083)
    """
    y = _vector(gold, "gold")
    f = _vector(pred_gold, "pred_gold")
    f_unl = _vector(pred_unlabelled, "pred_unlabelled")
    if f.shape != y.shape:
        raise ValueError(
            f"gold and pred_gold must hold one value per gold query each, got {y.shape[0]} and {f.shape[0]}"
        )
    n, n_unl = y.shape[0], f_unl.shape[0]
    if n < 2:
        raise ValueError(f"gold holds {n} queries; PPI needs at least 2 gold queries")
    z = _z(alpha)

    if lam is not None:
        if not 0.0 <= lam <= 1.0:
            raise ValueError(f"lam must be in [0, 1], got {lam}")
        weight = float(lam)
    elif not power_tuning:
        weight = 1.0
    else:
        weight = _tuned_lambda(y, f, f_unl)

    var_unl = float(np.var(f_unl, ddof=1)) if n_unl >= 2 else 0.0
    if weight > 0 and n_unl == 0:
        raise ValueError("pred_unlabelled is empty; with no unlabelled queries use lam=0")
    rect = y - weight * f
    mean_unl = float(f_unl.mean()) if n_unl else 0.0
    estimate = weight * mean_unl + float(rect.mean())
    variance = float(np.var(rect, ddof=1)) / n
    if weight > 0:
        variance += weight**2 * var_unl / n_unl
    half = z * math.sqrt(variance)

    gold_mean = float(y.mean())
    gold_half = z * float(np.std(y, ddof=1)) / math.sqrt(n)
    return PPIEstimate(
        estimate=estimate,
        ci_low=estimate - half,
        ci_high=estimate + half,
        lam=weight,
        n_gold=n,
        n_unlabelled=n_unl,
        gold_estimate=gold_mean,
        gold_ci_low=gold_mean - gold_half,
        gold_ci_high=gold_mean + gold_half,
    )


def _tuned_lambda(y: np.ndarray, f: np.ndarray, f_unl: np.ndarray) -> float:
    """PPI++'s variance-minimising weight for a mean, clipped to [0, 1]."""
    n, n_unl = y.shape[0], f_unl.shape[0]
    if n_unl < 2:
        return 0.0
    var_all = float(np.var(np.concatenate([f, f_unl]), ddof=1))
    if var_all <= 0.0:
        return 0.0
    cov = float(np.cov(y, f, ddof=1)[0, 1])
    return float(np.clip(cov / ((1.0 + n / n_unl) * var_all), 0.0, 1.0))


def per_query_metric(
    table: pd.DataFrame,
    score: str,
    label: str,
    *,
    qid: str = C.QID,
    metric: str = "ndcg@10",
    fill_no_relevant: float | None = None,
) -> pd.Series:
    """One metric value per query of a candidate table.

    Args:
        table: Candidate table, rows of a query contiguous.
        score: Column of the ranker's scores (higher ranks first).
        label: Column of the graded labels (expert grades, LLM labels).
        qid: Column of the query ids.
        metric: Metric name understood by :func:`parse_metric`, e.g. ``ndcg@10``.
        fill_no_relevant: Value for queries with no label >= 1 (NaN by
            default, the metrics' policy; 0.0 is trec_eval's convention and
            what PPI needs).

    Returns:
        Series indexed by query id (in order of first appearance), named
        after the metric.

    Raises:
        DataFormatError: On a missing column or a NaN score or label, naming
            the column; on rows of a query that are not contiguous.
    """
    for col in (qid, score, label):
        if col not in table.columns:
            raise DataFormatError(
                f"candidate table lacks this column; it has {list(table.columns)}", column=col
            )
    for col in (score, label):
        values = pd.to_numeric(table[col], errors="coerce").to_numpy(dtype=np.float64)
        na = np.isnan(values)
        if na.any():
            raise DataFormatError(
                f"{int(na.sum())} missing or non-numeric values",
                row=int(np.flatnonzero(na)[0]),
                column=col,
            )
    m = parse_metric(metric)
    offsets = offsets_from_qid(table[qid].to_numpy())
    values = m(
        table[score].to_numpy(dtype=np.float64),
        table[label].to_numpy(dtype=np.float64),
        offsets=offsets,
    )
    if fill_no_relevant is not None:
        values = np.where(np.isnan(values), float(fill_no_relevant), values)
    index = pd.Index(table[qid].to_numpy()[offsets[:-1]], name=qid)
    return pd.Series(values, index=index, name=m.name)


def _nan_row(n_gold: int, n_unl: int) -> dict[str, float | int]:
    nan = float("nan")
    return {
        "estimate": nan,
        "ci_low": nan,
        "ci_high": nan,
        "lam": nan,
        "n_gold": n_gold,
        "n_unlabelled": n_unl,
        "gold_estimate": nan,
        "gold_ci_low": nan,
        "gold_ci_high": nan,
    }


def ppi_per_bucket(
    per_query: pd.DataFrame,
    *,
    gold: str,
    pred: str,
    is_gold: str,
    bucket: str | None = C.BUCKET,
    alpha: float = 0.05,
    power_tuning: bool = True,
) -> pd.DataFrame:
    """PPI++ and gold-only estimates of a metric's mean, per bucket and overall.

    Args:
        per_query: One row per query: the metric with expert grades (``gold``,
            NaN allowed where ``is_gold`` is False), with LLM labels
            (``pred``), the gold flag and optionally the bucket.
        gold: Column of the metric with expert grades.
        pred: Column of the metric with LLM labels.
        is_gold: Boolean column, True for the queries with expert grades.
        bucket: Column naming each query's bucket; None for overall only.
        alpha: Miscoverage of the intervals.
        power_tuning: Choose ``lam`` by PPI++ (per bucket); False uses 1.

    Returns:
        One row per bucket (order of first appearance) and ``"all"`` last,
        with the column ``bucket`` and the fields of :class:`PPIEstimate`
        plus ``width`` and ``gold_width``. A bucket with fewer than 2 gold
        queries gets NaN estimates (and a log message); ``"all"`` raises.

    Raises:
        DataFormatError: On a missing column, NaN in ``pred`` or in ``gold``
            on a gold query, or a non-boolean ``is_gold``, naming the column.
        ValueError: If fewer than 2 queries are gold overall.
    """
    needed = [gold, pred, is_gold] + ([bucket] if bucket is not None else [])
    for col in needed:
        if col not in per_query.columns:
            raise DataFormatError(
                f"per-query table lacks this column; it has {list(per_query.columns)}", column=col
            )
    flag_raw = per_query[is_gold]
    if not pd.api.types.is_bool_dtype(flag_raw):
        raise DataFormatError(
            f"must be boolean (True for gold queries), got dtype {flag_raw.dtype}", column=is_gold
        )
    flag = flag_raw.to_numpy(dtype=bool)
    f = pd.to_numeric(per_query[pred], errors="coerce").to_numpy(dtype=np.float64)
    y = pd.to_numeric(per_query[gold], errors="coerce").to_numpy(dtype=np.float64)
    for name, values, checked in ((pred, f, np.ones_like(flag)), (gold, y, flag)):
        bad = checked & ~np.isfinite(values)
        if bad.any():
            raise DataFormatError(
                f"{int(bad.sum())} NaN or non-numeric values"
                + (" on gold queries" if name == gold else "")
                + "; compute the metric with fill_no_relevant=0.0 or drop those queries",
                row=int(np.flatnonzero(bad)[0]),
                column=name,
            )
    if bucket is not None:
        buckets = per_query[bucket].astype(str).to_numpy()
        order = [b for b in dict.fromkeys(buckets) if b != ALL]
    else:
        buckets = np.full(len(per_query), ALL)
        order = []

    rows = []
    for b in [*order, ALL]:
        sel = np.ones(len(per_query), dtype=bool) if b == ALL else buckets == b
        g, u = sel & flag, sel & ~flag
        n_gold, n_unl = int(g.sum()), int(u.sum())
        if n_gold < 2 and b != ALL:
            logger.info("bucket %r has %d gold queries; PPI needs 2, left as NaN", b, n_gold)
            row: dict[str, object] = {C.BUCKET: b, **_nan_row(n_gold, n_unl)}
        else:
            est = ppi_mean(y[g], f[g], f[u], alpha=alpha, power_tuning=power_tuning)
            row = {C.BUCKET: b, **asdict(est)}
        rows.append(row)
    out = pd.DataFrame(rows)
    out["width"] = out["ci_high"] - out["ci_low"]
    out["gold_width"] = out["gold_ci_high"] - out["gold_ci_low"]
    return out


__all__ = ["PPIEstimate", "per_query_metric", "ppi_mean", "ppi_per_bucket"]
