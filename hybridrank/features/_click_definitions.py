"""What the click features are: their names, the sums they are made of, and the formulas.

Every engine (DuckDB SQL, pandas, Dask) reduces an impression log to the
same :class:`ClickSums`; :func:`features_from_sums` turns those into the
features, the one place where a feature is defined. Its column arithmetic
means the same on pandas and Dask frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hybridrank import columns as C

#: Query-document click features, in output order.
PAIR_FEATURES: tuple[str, ...] = (
    "qd_impressions",
    "qd_clicks",
    "qd_ctr",
    "qd_ctr_smooth",
    "qd_debiased_ctr",
    "qd_debiased_ctr_smooth",
    "qd_mean_position",
    "qd_first_click_rate",
    "qd_last_click_rate",
    "qd_skip_above_rate",
    "qd_mean_dwell",
    "qd_sat_click_rate",
)
#: Document features aggregated across queries (authority, quality, popularity).
DOC_FEATURES: tuple[str, ...] = (
    "doc_impressions",
    "doc_clicks",
    "doc_ctr_smooth",
    "doc_debiased_ctr_smooth",
    "doc_sat_share",
    "doc_n_queries",
)
#: Query features.
QUERY_FEATURES: tuple[str, ...] = (
    "q_sessions",
    "q_click_entropy",
    "q_abandonment_rate",
    "q_clicks_per_session",
)
CLICK_FEATURES: tuple[str, ...] = PAIR_FEATURES + DOC_FEATURES + QUERY_FEATURES
#: Dataset features a model's click-feature store serves under another name (an imported
#: log's ``logged_position_mean`` is the store's ``qd_mean_position``).
STORE_ALIASES: dict[str, str] = {C.LOGGED_POSITION: "qd_mean_position"}

#: Columns of each level of :class:`ClickSums` after its key columns.
PAIR_SUMS: tuple[str, ...] = (
    "imp",
    "clicks",
    "exam",
    "pos",
    "dwell",
    "sat",
    "first_clicks",
    "last_clicks",
    "skip_above",
    "dwell_clicks",
)
DOC_SUMS: tuple[str, ...] = ("imp", "clicks", "exam", "sat", "n_queries")
QUERY_SUMS: tuple[str, ...] = ("sessions", "abandoned", "clicks", "entropy")


@dataclass(frozen=True)
class ClickFeatures:
    """Click features of one log at three levels.

    Attributes:
        pairs: ``qid, docid`` and :data:`PAIR_FEATURES`.
        docs: ``docid`` and :data:`DOC_FEATURES`.
        queries: ``qid`` and :data:`QUERY_FEATURES`.
    """

    pairs: Any
    docs: Any
    queries: Any


@dataclass(frozen=True)
class ClickSums:
    """What an engine computes from a log: per-level sums and log-wide totals.

    Keys are strings (``str`` dtype); counts are integers; the rest floats.

    Attributes:
        pairs: ``qid, docid`` and :data:`PAIR_SUMS`: impressions, clicks,
            examination probabilities, positions, dwell of clicks, satisfied
            clicks, first clicks, last clicks, skips above the session's
            last click and the clicks whose dwell is known.
        docs: ``docid`` and :data:`DOC_SUMS` (the pair sums summed over
            queries; ``n_queries`` counts the pairs).
        queries: ``qid`` and :data:`QUERY_SUMS`: sessions, sessions without a
            click, clicks, and click entropy (``-sum p log2 p`` over the
            query's documents, ``p`` their share of its clicks).
        impressions: Impressions of the log.
        clicks: Clicks of the log.
        examinations: Examination probabilities summed over the log.
    """

    pairs: Any
    docs: Any
    queries: Any
    impressions: float
    clicks: float
    examinations: float


def _smooth(clicks: Any, impressions: Any, prior: float, strength: float) -> Any:
    return (clicks + strength * prior) / (impressions + strength)


def features_from_sums(sums: ClickSums, prior_strength: float) -> ClickFeatures:
    """The click features of a log's sums; rates are NaN where the denominator is 0.

    Args:
        sums: A log's :class:`ClickSums` (pandas or Dask frames).
        prior_strength: Pseudo-impressions of the smoothing towards the
            log's global rates.
    """
    global_ctr = sums.clicks / max(sums.impressions, 1.0)
    global_debiased = sums.clicks / max(sums.examinations, 1e-12)
    m = prior_strength

    p = sums.pairs
    imp, clicks, exam = p["imp"], p["clicks"], p["exam"]
    pairs = p[[C.QID, C.DOCID]].assign(
        qd_impressions=imp.astype("float64"),
        qd_clicks=clicks.astype("float64"),
        qd_ctr=clicks / imp,
        qd_ctr_smooth=_smooth(clicks, imp, global_ctr, m),
        qd_debiased_ctr=clicks / exam,
        qd_debiased_ctr_smooth=_smooth(clicks, exam, global_debiased, m),
        qd_mean_position=p["pos"] / imp,
        qd_first_click_rate=p["first_clicks"] / imp,
        qd_last_click_rate=p["last_clicks"] / imp,
        qd_skip_above_rate=p["skip_above"] / imp,
        # Over the clicks whose dwell the log knows (a last click's is often unknown): a
        # log without any dwell gives none, not a mean of 0.
        qd_mean_dwell=(p["dwell"] / p["dwell_clicks"]).where(p["dwell_clicks"] > 0),
        qd_sat_click_rate=p["sat"] / imp,
    )

    d = sums.docs
    dimp, dclicks = d["imp"], d["clicks"]
    docs = d[[C.DOCID]].assign(
        doc_impressions=dimp.astype("float64"),
        doc_clicks=dclicks.astype("float64"),
        doc_ctr_smooth=_smooth(dclicks, dimp, global_ctr, m),
        doc_debiased_ctr_smooth=_smooth(dclicks, d["exam"], global_debiased, m),
        doc_sat_share=(d["sat"] / dclicks).where(dclicks > 0),
        doc_n_queries=d["n_queries"].astype("float64"),
    )

    q = sums.queries
    sessions = q["sessions"]
    queries = q[[C.QID]].assign(
        q_sessions=sessions.astype("float64"),
        q_click_entropy=q["entropy"].astype("float64"),
        q_abandonment_rate=q["abandoned"] / sessions,
        q_clicks_per_session=q["clicks"] / sessions,
    )
    return ClickFeatures(pairs=pairs, docs=docs, queries=queries)


def entropy_terms(clicks: Any, query_clicks: Any) -> Any:
    """``-p log2 p`` of each document's share ``p`` of its query's clicks (0 without clicks)."""
    p = (clicks / query_clicks).where(clicks > 0, 1.0)
    return -(p * np.log2(p))
