"""Examination by position from the log's own interventions (intervention harvesting).

A logging ranker that does not always show a (query, document) pair at the
same position runs an experiment for free: under the position-based model
``P(click) = examination(position) * attractiveness(query, document)``, the
pair's click rate at position l over its click rate at position k is
``examination(l) / examination(k)``, whatever its attractiveness. Pooling the
pairs shown at both k and l (Mantel-Haenszel: each pair weighted by
``n_k n_l / (n_k + n_l)``) gives a consistent estimate of that ratio without
any relevance model (Agarwal et al., WSDM 2019; Fang et al., SIGIR 2019).
Every position pair (k, l) with shared documents gives one log-ratio; a least
squares fit over all of them, each weighted by its inverse variance, gives the
curve, normalised to position 1.

Unlike a click model fitted by EM, nothing here depends on how well a per-pair
attractiveness is estimated from its few impressions, and unlike the biases
LambdaMART learns inside training, nothing depends on the ranker's current
scores.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hybridrank import columns as C
from hybridrank.errors import DataFormatError
from hybridrank.labels._click_models import validate_log

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HarvestedExamination:
    """Examination by position estimated from the pairs shown at more than one position.

    Attributes:
        curve: Examination by position 1..max_position, position 1 = 1
            (``pd.Series`` indexed by ``position``); NaN for a position that no
            shown pair links to position 1.
        ratios: One row per position pair with shared pairs: ``k, l``,
            ``ratio`` (examination(l) / examination(k), pooled), ``pairs`` (the
            (query, document) pairs shown at both), ``clicks_k, clicks_l``
            (their pooled, weighted clicks) and ``weight`` (inverse variance
            of the log-ratio).
    """

    curve: pd.Series
    ratios: pd.DataFrame


def harvest_examination(
    log: pd.DataFrame, max_position: int = 10, *, path: str | None = None
) -> HarvestedExamination:
    """Estimate examination by position from the log's interventions.

    Args:
        log: Impression log with ``session_id, qid, docid, position, click``.
        max_position: Positions 1..this are estimated; rows below are ignored.
        path: The log's source, named in errors.

    Raises:
        DataFormatError: The log is malformed (see
            :func:`~hybridrank.labels.validate_log`), or no two positions
            share shown (query, document) pairs with clicks at both (pooled
            over those pairs): the logging ranker never varied its order, and
            position and relevance cannot be told apart.
    """
    if max_position < 2:
        raise ValueError(f"max_position must be >= 2, got {max_position}")
    kept = validate_log(log, max_rank=max_position, path=path)
    counts = (
        kept.groupby([C.QID, C.DOCID, C.POSITION], sort=False, observed=True)[C.CLICK]
        .agg(["size", "sum"])
        .reset_index()
    )
    pair_id = pd.MultiIndex.from_frame(counts[[C.QID, C.DOCID]]).factorize()[0]
    position = counts[C.POSITION].to_numpy(dtype=np.int64) - 1
    n = np.zeros((pair_id.max(initial=-1) + 1, max_position))
    c = np.zeros_like(n)
    np.add.at(n, (pair_id, position), counts["size"].to_numpy(dtype=np.float64))
    np.add.at(c, (pair_id, position), counts["sum"].to_numpy(dtype=np.float64))

    rows = []
    for k in range(max_position - 1):
        nk, ck = n[:, k : k + 1], c[:, k : k + 1]
        nl, cl = n[:, k + 1 :], c[:, k + 1 :]
        both = (nk > 0) & (nl > 0)
        total = np.where(both, nk + nl, 1.0)
        # Mantel-Haenszel: E[c_l n_k / N] / E[c_k n_l / N] = exam(l) / exam(k) per pair.
        num = np.where(both, cl * nk / total, 0.0).sum(axis=0)
        den = np.where(both, ck * nl / total, 0.0).sum(axis=0)
        shared = both.sum(axis=0)
        for offset in np.flatnonzero((num > 0) & (den > 0)):
            rows.append(
                (k + 1, k + 2 + offset, num[offset] / den[offset], int(shared[offset]),
                 den[offset], num[offset], 1.0 / (1.0 / num[offset] + 1.0 / den[offset]))
            )  # fmt: skip
    ratios = pd.DataFrame(
        rows, columns=["k", "l", "ratio", "pairs", "clicks_k", "clicks_l", "weight"]
    )
    if ratios.empty:
        raise DataFormatError(
            "no two positions share shown (query, document) pairs with clicks at both: the "
            "logging ranker never varied its order, so examination cannot be told apart from "
            "relevance (swap results now and then, or use a click model)",
            path=path,
        )
    curve = _fit_curve(ratios, max_position)
    return HarvestedExamination(curve=curve, ratios=ratios)


def _fit_curve(ratios: pd.DataFrame, max_position: int) -> pd.Series:
    """Weighted least squares of log examination (position 1 = 0) on the pooled log-ratios."""
    linked = _linked_to_first(ratios, max_position)
    use = ratios[ratios["k"].isin(linked) & ratios["l"].isin(linked)]
    free = sorted(p for p in linked if p != 1)
    log_exam = np.zeros(max_position)
    if free:
        column = {p: i for i, p in enumerate(free)}
        A = np.zeros((len(use), len(free)))
        rows = np.arange(len(use))
        for side, sign in (("l", 1.0), ("k", -1.0)):
            pos = use[side].to_numpy()
            has = pos != 1
            A[rows[has], [column[p] for p in pos[has]]] = sign
        sw = np.sqrt(use["weight"].to_numpy())
        b = np.log(use["ratio"].to_numpy())
        solution, *_ = np.linalg.lstsq(A * sw[:, None], b * sw, rcond=None)
        log_exam[np.asarray(free) - 1] = solution
    exam = np.exp(log_exam)
    missing = [p for p in range(1, max_position + 1) if p not in linked]
    if missing:
        logger.warning(
            "no shown pair links positions %s to position 1: their examination is unknown (NaN)",
            missing,
        )
        exam[np.asarray(missing) - 1] = np.nan
    return pd.Series(
        exam,
        index=pd.RangeIndex(1, max_position + 1, name="position"),
        name="harvested_examination",
    )


def _linked_to_first(ratios: pd.DataFrame, max_position: int) -> set[int]:
    """Positions connected to position 1 through position pairs with shared documents."""
    neighbours: dict[int, set[int]] = {p: set() for p in range(1, max_position + 1)}
    for upper, lower in zip(ratios["k"], ratios["l"], strict=True):
        neighbours[int(upper)].add(int(lower))
        neighbours[int(lower)].add(int(upper))
    seen, todo = {1}, [1]
    while todo:
        for nxt in neighbours[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen
