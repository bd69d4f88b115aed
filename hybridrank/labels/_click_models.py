"""Click models fitted on impression logs: PBM, cascade and DBN.

A click model explains the clicks of an impression log (one row per shown
result: ``session_id, qid, docid, position, click``; see
:mod:`hybridrank.columns`) by a per (query, document) parameter, the
document's *relevance* as users perceive it, and a model of how users
examine a result list. The relevance estimates are the click labels of the
rankers; the fitted models are compared by held-out log-likelihood and
perplexity (Chuklin, Markov and de Rijke, *Click Models for Web Search*,
2015, chapter 4).

Conventions shared by every model:

* Rows at positions above ``max_rank`` are dropped (the count is logged).
* Per-pair parameters are smoothed by a Beta(``prior_alpha``, ``prior_beta``)
  prior used as pseudo-counts, ``(prior_alpha + successes) / (prior_alpha +
  prior_beta + trials)``: the MAP estimate under Beta(alpha + 1, beta + 1), so
  no pair gets exactly 0 or 1, and a pair never seen gets the prior mean
  ``prior_alpha / (prior_alpha + prior_beta)`` (the DBN's relevance, a * s,
  gets the square of it: the value of a pair with no data).
* Cascade and DBN read a session top-down in position order; a gap in the
  positions of a session (a missing row) is closed, as if the rows were
  adjacent. PBM uses the positions as given.

Example:
    >>> model = make_click_model("pbm", n_iter=20).fit(train_log)  # doctest: +SKIP
    >>> evaluate_click_model(model, test_log)["perplexity"]  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from os import PathLike
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd

from hybridrank import columns as C
from hybridrank.errors import ConfigError, DataFormatError

logger = logging.getLogger(__name__)

LOG_COLUMNS: tuple[str, ...] = (C.SESSION_ID, C.QID, C.DOCID, C.POSITION, C.CLICK)
"""Columns of an impression log that the click models read."""

# Predicted click probabilities are clipped to [_EPS, 1 - _EPS] before taking
# logs, so a click the model calls impossible (a second click under the
# cascade) costs log(1e-6) instead of -inf.
_EPS = 1e-6


# --------------------------------------------------------------------------- log checks


def validate_log(
    log: pd.DataFrame, *, max_rank: int | None = None, path: str | PathLike[str] | None = None
) -> pd.DataFrame:
    """Check an impression log and drop rows below the modelled depth.

    Args:
        log: Impression log with at least ``session_id, qid, docid, position,
            click``.
        max_rank: Rows at ``position > max_rank`` are dropped (the count is
            logged); ``None`` keeps every row.
        path: Name of the log's source, used in error messages.

    Returns:
        The rows of ``log`` that are kept, in their order and with their index.

    Raises:
        DataFormatError: On a missing column, a missing id, position or click,
            a position that is not a whole number >= 1, a click not 0 or 1, two
            rows of a session at one position, or a session with more than one
            query. The message names the 0-based table row and the column.
    """
    _check_log(log, path)
    if max_rank is None:
        return log
    keep = log[C.POSITION].to_numpy(dtype=np.float64) <= max_rank
    n_dropped = int((~keep).sum())
    if n_dropped:
        logger.info("dropped %d of %d log rows at positions > %d", n_dropped, len(log), max_rank)
        return log.loc[keep]
    return log


def _first(bad: np.ndarray) -> int:
    return int(np.flatnonzero(bad)[0])


def _check_log(log: pd.DataFrame, path: str | PathLike[str] | None) -> None:
    if not isinstance(log, pd.DataFrame):
        raise DataFormatError(
            f"an impression log must be a pandas DataFrame, got {type(log).__name__}", path=path
        )
    missing = [c for c in LOG_COLUMNS if c not in log.columns]
    if missing:
        raise DataFormatError(
            f"impression log lacks columns {missing}; have {list(log.columns)}", path=path
        )
    for col in LOG_COLUMNS:
        na = log[col].isna().to_numpy()
        if na.any():
            raise DataFormatError("missing value", path=path, row=_first(na), column=col)
    raw_pos = log[C.POSITION]
    if pd.api.types.is_bool_dtype(raw_pos):
        raise DataFormatError(
            "positions must be whole numbers, got booleans", path=path, column=C.POSITION
        )
    pos = pd.to_numeric(raw_pos, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(pos) | (pos < 1) | (pos != np.floor(pos))
    if bad.any():
        row = _first(bad)
        raise DataFormatError(
            f"position must be a whole number >= 1 (1 = top), got {raw_pos.iloc[row]!r}",
            path=path,
            row=row,
            column=C.POSITION,
        )
    click = log[C.CLICK].to_numpy()
    bad = ~np.isin(click, [0, 1])
    if bad.any():
        row = _first(bad)
        raise DataFormatError(
            f"click must be 0 or 1, got {click[row]!r}", path=path, row=row, column=C.CLICK
        )
    dup = log.duplicated([C.SESSION_ID, C.POSITION]).to_numpy()
    if dup.any():
        row = _first(dup)
        raise DataFormatError(
            f"session {log[C.SESSION_ID].iloc[row]!r} has two rows at position {raw_pos.iloc[row]}",
            path=path,
            row=row,
            column=C.POSITION,
        )
    n_queries = log.groupby(C.SESSION_ID, sort=False)[C.QID].transform("nunique").to_numpy()
    bad = n_queries > 1
    if bad.any():
        row = _first(bad)
        raise DataFormatError(
            f"session {log[C.SESSION_ID].iloc[row]!r} shows results of {int(n_queries[row])} "
            "queries; a session holds the results of one query",
            path=path,
            row=row,
            column=C.QID,
        )


@dataclass(frozen=True)
class _LogArrays:
    """The kept rows of a log as flat arrays, sorted by session and position.

    Attributes:
        rows: Position of each sorted row in the original log, shape ``(n,)``.
        qid: Query id per row.
        docid: Document id per row.
        rank: ``position - 1`` per row, in ``[0, width)``.
        click: 0.0 / 1.0 per row.
        session: Session code per row, ``0..n_sessions - 1``, non-decreasing.
        slot: 0-based order of the row within its session (gaps closed).
        n_sessions: Number of sessions.
        width: ``max_rank``: the width of session grids.
    """

    rows: np.ndarray
    qid: np.ndarray
    docid: np.ndarray
    rank: np.ndarray
    click: np.ndarray
    session: np.ndarray
    slot: np.ndarray
    n_sessions: int
    width: int

    def grid(self, values: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """Row values laid out as a ``(n_sessions, width)`` grid by slot."""
        out = np.full((self.n_sessions, self.width), fill, dtype=np.float64)
        out[self.session, self.slot] = values
        return out

    def from_grid(self, grid: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`grid`: one value per sorted row."""
        return grid[self.session, self.slot]

    @property
    def mask(self) -> np.ndarray:
        """True where a grid cell holds a row; a prefix of each session's row."""
        return self.grid(np.ones(self.rows.shape[0]), fill=0.0) > 0


def _prepare(
    log: pd.DataFrame, max_rank: int, path: str | PathLike[str] | None = None
) -> _LogArrays:
    _check_log(log, path)
    position = log[C.POSITION].to_numpy(dtype=np.float64).astype(np.int64)
    kept = np.flatnonzero(position <= max_rank)
    n_dropped = len(log) - kept.shape[0]
    if n_dropped:
        logger.info("dropped %d of %d log rows at positions > %d", n_dropped, len(log), max_rank)
    session_code, _ = pd.factorize(log[C.SESSION_ID].to_numpy()[kept], sort=False)
    session_code = session_code.astype(np.int64)
    order = np.lexsort((position[kept], session_code))
    rows = kept[order]
    session = session_code[order]
    n = rows.shape[0]
    if n:
        starts = np.flatnonzero(np.r_[True, session[1:] != session[:-1]])
        lengths = np.diff(np.r_[starts, n])
        slot = np.arange(n, dtype=np.int64) - np.repeat(starts, lengths)
        # Sessions are re-coded in sorted order so that grid rows follow the log.
        session = np.repeat(np.arange(starts.shape[0], dtype=np.int64), lengths)
    else:
        starts = np.zeros(0, dtype=np.int64)
        slot = np.zeros(0, dtype=np.int64)
    return _LogArrays(
        rows=rows,
        qid=log[C.QID].to_numpy()[rows],
        docid=log[C.DOCID].to_numpy()[rows],
        rank=position[rows] - 1,
        click=log[C.CLICK].to_numpy()[rows].astype(np.float64),
        session=session,
        slot=slot,
        n_sessions=int(starts.shape[0]),
        width=max_rank,
    )


def _code_pairs(qid: np.ndarray, docid: np.ndarray) -> tuple[np.ndarray, pd.DataFrame]:
    """Integer code per (qid, docid) row and the table of distinct pairs."""
    q_code, q_uniques = pd.factorize(qid, sort=False)
    d_code, d_uniques = pd.factorize(docid, sort=False)
    n_docs = max(len(d_uniques), 1)
    key = q_code.astype(np.int64) * n_docs + d_code.astype(np.int64)
    keys, pair = np.unique(key, return_inverse=True)
    table = pd.DataFrame(
        {
            C.QID: np.asarray(q_uniques, dtype=object)[keys // n_docs],
            C.DOCID: np.asarray(d_uniques, dtype=object)[keys % n_docs],
        }
    )
    return pair.astype(np.int64), table


def _smoothed(successes: np.ndarray, trials: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    return (alpha + successes) / (alpha + beta + trials)


def _mean_by_rank(values: np.ndarray, rank: np.ndarray, width: int) -> np.ndarray:
    """Mean of ``values`` per rank, NaN at ranks without rows, shape ``(width,)``."""
    total = np.bincount(rank, weights=values, minlength=width)
    count = np.bincount(rank, minlength=width)
    out = np.full(width, np.nan)
    seen = count > 0
    out[seen] = total[seen] / count[seen]
    return out


def _chain_probabilities(
    attractiveness: np.ndarray,
    satisfaction: np.ndarray,
    gamma: float,
    clicks: np.ndarray,
    *,
    conditional: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Click and examination probabilities of a top-down model (DBN; cascade is a special case).

    Args:
        attractiveness: ``(n_sessions, width)`` grid of a(q, d) by slot.
        satisfaction: Same shape, s(q, d); all ones for the cascade.
        gamma: Chance to go on to the next result when not satisfied; 1 for the cascade.
        clicks: Same shape, the observed clicks (used when ``conditional``).
        conditional: Condition each rank on the session's clicks above it
            (for log-likelihood) or not (marginals, for perplexity).

    Returns:
        ``(click, examination)`` grids: P(C_r = 1 | ...) and P(E_r = 1 | ...).
    """
    n_sessions, width = attractiveness.shape
    click = np.zeros((n_sessions, width))
    exam = np.zeros((n_sessions, width))
    e = np.ones(n_sessions)
    for r in range(width):
        a = attractiveness[:, r]
        exam[:, r] = e
        click[:, r] = e * a
        if conditional:
            skipped = e * (1.0 - a) / np.maximum(1.0 - e * a, 1e-300)
            e = gamma * np.where(clicks[:, r] > 0, 1.0 - satisfaction[:, r], skipped)
        else:
            e = e * gamma * (1.0 - a * satisfaction[:, r])
    return click, exam


def _log2_likelihood(click: np.ndarray, prob: np.ndarray) -> np.ndarray:
    p = np.clip(prob, _EPS, 1.0 - _EPS)
    return np.where(click > 0, np.log2(p), np.log2(1.0 - p))


# --------------------------------------------------------------------------- models


class ClickModel(ABC):
    """Base of the click models: fit on a log, then relevance per pair and click probabilities.

    Subclasses store their keyword arguments in ``__init__`` and set, in
    :meth:`fit`, ``attractiveness_`` (a DataFrame with ``qid, docid,
    attractiveness`` and model-specific columns, one row per training pair),
    ``pair_stats_`` (a DataFrame ``qid, docid, impressions, clicks,
    relevance`` over the same pairs), ``examination_`` (shape
    ``(max_rank,)``), ``log_likelihood_`` and ``perplexity_`` (on the training
    log), and ``n_sessions_``.
    """

    name: ClassVar[str]
    max_rank: int
    prior_alpha: float
    prior_beta: float

    attractiveness_: pd.DataFrame
    pair_stats_: pd.DataFrame
    examination_: np.ndarray
    log_likelihood_: float
    perplexity_: float
    n_sessions_: int

    @abstractmethod
    def fit(self, log: pd.DataFrame) -> Self:
        """Fit the model on an impression log; returns ``self``."""

    @abstractmethod
    def _click_grid(self, data: _LogArrays, pair: np.ndarray, *, conditional: bool) -> np.ndarray:
        """P(click) per sorted row of ``data``; ``pair`` indexes ``pair_stats_`` (-1: unseen)."""

    # ----------------------------------------------------------------- shared

    @property
    def prior_mean(self) -> float:
        """Mean of the Beta prior: the attractiveness of a pair never seen."""
        return float(self.prior_alpha / (self.prior_alpha + self.prior_beta))

    @property
    def prior_relevance(self) -> float:
        """Relevance of a pair never seen in training."""
        return self.prior_mean

    def _check_params(self) -> None:
        if isinstance(self.max_rank, bool) or not isinstance(self.max_rank, int | np.integer):
            raise ConfigError(f"{self.name}.max_rank must be a whole number, got {self.max_rank!r}")
        if self.max_rank < 1:
            raise ConfigError(f"{self.name}.max_rank must be >= 1, got {self.max_rank}")
        if not (self.prior_alpha > 0 and self.prior_beta > 0):
            raise ConfigError(
                f"{self.name}: prior_alpha and prior_beta must be > 0, "
                f"got {self.prior_alpha} and {self.prior_beta}"
            )

    def _check_fitted(self) -> None:
        if not hasattr(self, "pair_stats_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit first")

    def _prepare_fit(self, log: pd.DataFrame) -> tuple[_LogArrays, np.ndarray, pd.DataFrame]:
        self._check_params()
        data = _prepare(log, self.max_rank)
        if data.rows.shape[0] == 0:
            raise DataFormatError(
                f"impression log has no rows at positions 1..{self.max_rank}; nothing to fit"
            )
        pair, table = _code_pairs(data.qid, data.docid)
        n_pairs = len(table)
        table["impressions"] = np.bincount(pair, minlength=n_pairs).astype(np.int64)
        table["clicks"] = np.bincount(pair, weights=data.click, minlength=n_pairs).astype(np.int64)
        self.n_sessions_ = data.n_sessions
        return data, pair, table

    def _finish_fit(self, data: _LogArrays, pair: np.ndarray, relevance: np.ndarray) -> None:
        stats = self.pair_stats_
        stats["relevance"] = relevance
        self._pair_index = pd.MultiIndex.from_frame(stats[[C.QID, C.DOCID]])
        probs = self._click_grid(data, pair, conditional=True)
        self.log_likelihood_ = float(np.mean(_log2_likelihood(data.click, probs)) * np.log(2.0))
        marginal = self._click_grid(data, pair, conditional=False)
        self.perplexity_ = float(np.nanmean(self._perplexity(data, marginal)))

    def _lookup(self, qid: np.ndarray, docid: np.ndarray) -> np.ndarray:
        target = pd.MultiIndex.from_arrays(
            [np.asarray(qid, dtype=object), np.asarray(docid, dtype=object)]
        )
        return np.asarray(self._pair_index.get_indexer(target), dtype=np.int64)

    def relevance(self, pairs: pd.DataFrame) -> np.ndarray:
        """Relevance estimate per row of ``pairs`` (columns ``qid, docid``).

        PBM and cascade: the attractiveness; DBN: attractiveness x satisfaction.
        Pairs not seen in training get :attr:`prior_relevance`.

        Returns:
            Float array of shape ``(len(pairs),)``.
        """
        self._check_fitted()
        missing = [c for c in (C.QID, C.DOCID) if c not in pairs.columns]
        if missing:
            raise DataFormatError(f"pairs lack columns {missing}; have {list(pairs.columns)}")
        idx = self._lookup(pairs[C.QID].to_numpy(), pairs[C.DOCID].to_numpy())
        fitted = self.pair_stats_["relevance"].to_numpy(dtype=np.float64)
        return np.where(idx >= 0, fitted[idx], self.prior_relevance)

    def click_probabilities(self, log: pd.DataFrame, *, conditional: bool = True) -> np.ndarray:
        """Predicted click probability per row of ``log``.

        Args:
            log: Impression log (checked like :func:`validate_log`).
            conditional: For cascade and DBN, condition each row on the clicks
                above it in its session (the factors of the session's
                likelihood); ``False`` gives the marginal P(click), which
                perplexity uses. PBM's clicks are independent: both agree.

        Returns:
            Float array of shape ``(len(log),)`` in the log's row order; NaN at
            rows with ``position > max_rank``. Unseen pairs use the prior mean.
        """
        self._check_fitted()
        data = _prepare(log, self.max_rank)
        pair = self._lookup(data.qid, data.docid)
        out = np.full(len(log), np.nan)
        out[data.rows] = self._click_grid(data, pair, conditional=conditional)
        return out

    def _evaluable(self, log: pd.DataFrame) -> tuple[_LogArrays, np.ndarray]:
        self._check_fitted()
        data = _prepare(log, self.max_rank)
        if data.rows.shape[0] == 0:
            raise DataFormatError(f"impression log has no rows at positions 1..{self.max_rank}")
        return data, self._lookup(data.qid, data.docid)

    def log_likelihood(self, log: pd.DataFrame) -> float:
        """Mean natural-log likelihood per row of the observed clicks (higher is better).

        Each row's factor is conditioned on the clicks above it in its session,
        so the sum over a session is the log of the session's probability.
        """
        data, pair = self._evaluable(log)
        probs = self._click_grid(data, pair, conditional=True)
        return float(np.mean(_log2_likelihood(data.click, probs)) * np.log(2.0))

    def _perplexity(self, data: _LogArrays, marginal: np.ndarray) -> np.ndarray:
        mean_log2 = _mean_by_rank(_log2_likelihood(data.click, marginal), data.rank, data.width)
        return np.asarray(2.0 ** (-mean_log2), dtype=np.float64)

    def perplexity(self, log: pd.DataFrame) -> np.ndarray:
        """Click perplexity by rank, ``2 ** -mean(log2 P(observed click at r))``.

        Uses the marginal click probabilities (Chuklin et al., 2015, sec. 4.2):
        1 is perfect, 2 is a coin flip. The overall perplexity is the mean over
        ranks (see :func:`evaluate_click_model`).

        Returns:
            Shape ``(max_rank,)``; NaN at ranks without rows in ``log``.
        """
        data, pair = self._evaluable(log)
        return self._perplexity(data, self._click_grid(data, pair, conditional=False))


class PositionBasedModel(ClickModel):
    """Position-based model: P(click) = exam(rank) x attr(q, d), fitted by EM.

    Both factors are hidden; EM alternates posterior examination and
    attractiveness per row with their smoothed means, all with ``np.bincount``
    over ranks and integer-coded pairs. PBM's likelihood is unchanged when
    exam is multiplied by k and attr divided by k, so after EM examination is
    normalised to 1 at rank 1 and attractiveness multiplied by the old
    exam(1); both are then clipped to [0, 1]. Attractiveness is thus the CTR
    the document would have at rank 1.

    Attributes:
        examination_: Examination by rank 1..max_rank, ``examination_[0] == 1``.
        attractiveness_: DataFrame ``qid, docid, attractiveness, impressions,
            clicks``, one row per training pair.
        pair_stats_: ``qid, docid, impressions, clicks, relevance``.
        n_iter_: EM iterations run.
        converged_: Whether the largest parameter change fell below ``tol``.
    """

    name = "pbm"

    def __init__(
        self,
        *,
        max_rank: int = 10,
        n_iter: int = 50,
        tol: float = 1e-6,
        prior_alpha: float = 1.0,
        prior_beta: float = 1.0,
    ) -> None:
        self.max_rank = max_rank
        self.n_iter = n_iter
        self.tol = tol
        self.prior_alpha = prior_alpha
        self.prior_beta = prior_beta

    def fit(self, log: pd.DataFrame) -> Self:
        """Fit examination and attractiveness by EM on an impression log."""
        if self.n_iter < 1 or self.tol < 0:
            raise ConfigError(
                f"pbm: n_iter must be >= 1 and tol >= 0, got {self.n_iter}, {self.tol}"
            )
        data, pair, table = self._prepare_fit(log)
        alpha, beta = self.prior_alpha, self.prior_beta
        n_pairs, width = len(table), self.max_rank
        rank, click = data.rank, data.click
        clicked = click > 0
        pair_n = table["impressions"].to_numpy(dtype=np.float64)
        rank_n = np.bincount(rank, minlength=width).astype(np.float64)

        # Start from the CTR curve (scaled below 1, since exam = 1 is a fixed
        # point where a skip never blames attractiveness) and smoothed pair CTR.
        rank_ctr = _smoothed(np.bincount(rank, weights=click, minlength=width), rank_n, alpha, beta)
        exam = np.clip(0.9 * rank_ctr / rank_ctr.max(), 0.01, 0.9)
        attr = _smoothed(table["clicks"].to_numpy(dtype=np.float64), pair_n, alpha, beta)

        self.converged_ = False
        for it in range(1, self.n_iter + 1):
            e, a = exam[rank], attr[pair]
            no_click = np.maximum(1.0 - e * a, 1e-300)
            post_exam = np.where(clicked, 1.0, e * (1.0 - a) / no_click)
            post_attr = np.where(clicked, 1.0, (1.0 - e) * a / no_click)
            new_attr = _smoothed(np.bincount(pair, post_attr, n_pairs), pair_n, alpha, beta)
            new_exam = _smoothed(np.bincount(rank, post_exam, width), rank_n, alpha, beta)
            change = max(np.abs(new_attr - attr).max(), np.abs(new_exam - exam).max())
            attr, exam = new_attr, new_exam
            self.n_iter_ = it
            logger.debug("pbm EM iteration %d: max parameter change %.3g", it, change)
            if change < self.tol:
                self.converged_ = True
                break

        if rank_n[0] > 0:
            attr = attr * exam[0]
            exam = exam / exam[0]
        else:
            logger.warning("pbm: no impressions at rank 1; examination is not normalised")
        self.examination_ = np.clip(exam, 0.0, 1.0)
        attr = np.clip(attr, 0.0, 1.0)
        self._attr = attr
        table["attractiveness"] = attr
        self.attractiveness_ = table[
            [C.QID, C.DOCID, "attractiveness", "impressions", "clicks"]
        ].copy()
        self.pair_stats_ = table[[C.QID, C.DOCID, "impressions", "clicks"]].copy()
        self._finish_fit(data, pair, attr)
        logger.info(
            "pbm: %d sessions, %d pairs, %d EM iterations (converged: %s), train perplexity %.4f",
            data.n_sessions,
            n_pairs,
            self.n_iter_,
            self.converged_,
            self.perplexity_,
        )
        return self

    def _click_grid(self, data: _LogArrays, pair: np.ndarray, *, conditional: bool) -> np.ndarray:
        attr = np.where(pair >= 0, self._attr[pair], self.prior_mean)
        return np.asarray(self.examination_[data.rank] * attr, dtype=np.float64)


class CascadeModel(ClickModel):
    """Cascade model: users scan top-down and stop at the first click.

    Closed-form MLE, smoothed by the prior: attr(q, d) = clicks / examinations,
    where a result is examined when it is at or above the session's first
    click (every result of a session without clicks). Sessions with more than
    one click violate the cascade; they are counted in
    ``n_multi_click_sessions_`` and only their first click is used.

    Attributes:
        attractiveness_: DataFrame ``qid, docid, attractiveness, impressions,
            clicks, examined`` (``clicks`` counts first clicks only).
        examination_: Mean model-implied examination, prod over results above
            of (1 - attr), by rank 1..max_rank on the training log.
        n_multi_click_sessions_: Training sessions with two or more clicks.
        pair_stats_: ``qid, docid, impressions, clicks, relevance`` (all clicks).
    """

    name = "cascade"

    def __init__(
        self, *, max_rank: int = 10, prior_alpha: float = 1.0, prior_beta: float = 1.0
    ) -> None:
        self.max_rank = max_rank
        self.prior_alpha = prior_alpha
        self.prior_beta = prior_beta

    def fit(self, log: pd.DataFrame) -> Self:
        """Count examinations and first clicks per pair on an impression log."""
        data, pair, table = self._prepare_fit(log)
        n_pairs = len(table)
        session, slot, clicked = data.session, data.slot, data.click > 0
        clicks_per_session = np.bincount(session, weights=data.click, minlength=data.n_sessions)
        self.n_multi_click_sessions_ = int((clicks_per_session > 1).sum())
        if self.n_multi_click_sessions_:
            logger.info(
                "cascade: %d of %d sessions have more than one click; only first clicks are used",
                self.n_multi_click_sessions_,
                data.n_sessions,
            )
        # Last examined slot per session: the first click, or the last row.
        last = np.bincount(session, minlength=data.n_sessions) - 1
        clicked_sessions, first_row = np.unique(session[clicked], return_index=True)
        last[clicked_sessions] = slot[clicked][first_row]
        examined = slot <= last[session]
        first_click = clicked & (slot == last[session])
        n_examined = np.bincount(pair, weights=examined, minlength=n_pairs)
        n_first = np.bincount(pair, weights=first_click, minlength=n_pairs)
        attr = _smoothed(n_first, n_examined, self.prior_alpha, self.prior_beta)
        self._attr = attr

        table["attractiveness"] = attr
        table["first_clicks"] = n_first.astype(np.int64)
        table["examined"] = n_examined.astype(np.int64)
        self.attractiveness_ = table[
            [C.QID, C.DOCID, "attractiveness", "impressions", "first_clicks", "examined"]
        ].rename(columns={"first_clicks": "clicks"})
        self.pair_stats_ = table[[C.QID, C.DOCID, "impressions", "clicks"]].copy()
        ones = np.ones((data.n_sessions, data.width))
        _, exam = _chain_probabilities(
            data.grid(attr[pair]), ones, 1.0, data.grid(data.click), conditional=False
        )
        self.examination_ = _mean_by_rank(data.from_grid(exam), data.rank, data.width)
        self._finish_fit(data, pair, attr)
        logger.info(
            "cascade: %d sessions, %d pairs, train perplexity %.4f",
            data.n_sessions,
            n_pairs,
            self.perplexity_,
        )
        return self

    def _click_grid(self, data: _LogArrays, pair: np.ndarray, *, conditional: bool) -> np.ndarray:
        attr = np.where(pair >= 0, self._attr[pair], self.prior_mean)
        ones = np.ones((data.n_sessions, data.width))
        click, _ = _chain_probabilities(
            data.grid(attr), ones, 1.0, data.grid(data.click), conditional=conditional
        )
        return data.from_grid(click)


class DynamicBayesianNetworkModel(ClickModel):
    """Dynamic Bayesian network (Chapelle and Zhang, 2009), fitted by EM.

    A user examines rank 1; an examined result is clicked with probability
    a(q, d); after a click the user is satisfied and stops with probability
    s(q, d); an unsatisfied user examines the next result with probability
    ``gamma``. The E-step runs forward-backward over ranks on
    ``(n_sessions, max_rank)`` grids, all sessions at once. ``gamma`` is
    fixed (the usual choice) unless ``fit_gamma``, which estimates one global
    continuation probability. Relevance is a x s; a pair never seen gets the
    square of the prior mean (a and s both at the prior mean).

    Attributes:
        attractiveness_: DataFrame ``qid, docid, attractiveness,
            satisfaction, relevance, impressions, clicks``.
        gamma_: The continuation probability used (fitted or given).
        examination_: Mean model-implied (marginal) examination by rank
            1..max_rank on the training log.
        pair_stats_: ``qid, docid, impressions, clicks, relevance``.
        n_iter_: EM iterations run.
        converged_: Whether the largest parameter change fell below ``tol``.
    """

    name = "dbn"

    def __init__(
        self,
        *,
        max_rank: int = 10,
        gamma: float = 0.9,
        fit_gamma: bool = False,
        n_iter: int = 50,
        tol: float = 1e-6,
        prior_alpha: float = 1.0,
        prior_beta: float = 1.0,
    ) -> None:
        self.max_rank = max_rank
        self.gamma = gamma
        self.fit_gamma = fit_gamma
        self.n_iter = n_iter
        self.tol = tol
        self.prior_alpha = prior_alpha
        self.prior_beta = prior_beta

    @property
    def prior_relevance(self) -> float:
        """Relevance a x s of a pair never seen: the prior mean squared."""
        return self.prior_mean**2

    def fit(self, log: pd.DataFrame) -> Self:
        """Fit attractiveness, satisfaction (and optionally gamma) by EM."""
        if not 0 < self.gamma <= 1:
            raise ConfigError(f"dbn.gamma must be in (0, 1], got {self.gamma}")
        if self.n_iter < 1 or self.tol < 0:
            raise ConfigError(
                f"dbn: n_iter must be >= 1 and tol >= 0, got {self.n_iter}, {self.tol}"
            )
        data, pair, table = self._prepare_fit(log)
        alpha, beta = self.prior_alpha, self.prior_beta
        n_pairs = len(table)
        click = data.click
        pair_n = table["impressions"].to_numpy(dtype=np.float64)
        pair_clicks = table["clicks"].to_numpy(dtype=np.float64)
        mask = data.mask
        click_grid = data.grid(click)

        attr = _smoothed(pair_clicks, pair_n, alpha, beta)
        sat = np.full(n_pairs, 0.5)
        gamma = float(self.gamma)
        self.converged_ = False
        for it in range(1, self.n_iter + 1):
            post_attr, post_sat, gamma_new = _dbn_e_step(
                data.grid(attr[pair]), data.grid(sat[pair]), gamma, click_grid, mask
            )
            new_attr = _smoothed(
                np.bincount(pair, data.from_grid(post_attr), n_pairs), pair_n, alpha, beta
            )
            new_sat = _smoothed(
                np.bincount(pair, data.from_grid(post_sat) * click, n_pairs),
                pair_clicks,
                alpha,
                beta,
            )
            change = max(np.abs(new_attr - attr).max(), np.abs(new_sat - sat).max())
            if self.fit_gamma:
                gamma_new = float(np.clip(gamma_new, _EPS, 1.0))
                change = max(change, abs(gamma_new - gamma))
                gamma = gamma_new
            attr, sat = new_attr, new_sat
            self.n_iter_ = it
            logger.debug("dbn EM iteration %d: max parameter change %.3g", it, change)
            if change < self.tol:
                self.converged_ = True
                break

        self.gamma_ = gamma
        self._attr, self._sat = attr, sat
        table["attractiveness"] = attr
        table["satisfaction"] = sat
        table["relevance"] = attr * sat
        self.attractiveness_ = table[
            [C.QID, C.DOCID, "attractiveness", "satisfaction", "relevance", "impressions", "clicks"]
        ].copy()
        self.pair_stats_ = table[[C.QID, C.DOCID, "impressions", "clicks"]].copy()
        _, exam = _chain_probabilities(
            data.grid(attr[pair]), data.grid(sat[pair]), gamma, click_grid, conditional=False
        )
        self.examination_ = _mean_by_rank(data.from_grid(exam), data.rank, data.width)
        self._finish_fit(data, pair, attr * sat)
        logger.info(
            "dbn: %d sessions, %d pairs, gamma %.3f, %d EM iterations (converged: %s), "
            "train perplexity %.4f",
            data.n_sessions,
            n_pairs,
            gamma,
            self.n_iter_,
            self.converged_,
            self.perplexity_,
        )
        return self

    def _click_grid(self, data: _LogArrays, pair: np.ndarray, *, conditional: bool) -> np.ndarray:
        seen = pair >= 0
        attr = np.where(seen, self._attr[pair], self.prior_mean)
        sat = np.where(seen, self._sat[pair], self.prior_mean)
        click, _ = _chain_probabilities(
            data.grid(attr),
            data.grid(sat),
            self.gamma_,
            data.grid(data.click),
            conditional=conditional,
        )
        return data.from_grid(click)


def _dbn_e_step(
    attr: np.ndarray, sat: np.ndarray, gamma: float, clicks: np.ndarray, mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float]:
    """Forward-backward over the hidden examination E_r of every session at once.

    Args:
        attr: ``(n_sessions, width)`` grid of a(q, d) by slot.
        sat: Same shape, s(q, d).
        gamma: Continuation probability.
        clicks: Same shape, observed clicks (0 in padding).
        mask: Same shape, True where a cell holds a row (a prefix per session).

    Returns:
        Posterior P(A_r = 1 | clicks) grid, posterior P(S_r = 1 | clicks) grid
        (meaningful at clicked cells) and gamma's M-step value.
    """
    n_sessions, width = attr.shape
    clicked = clicks > 0
    # P(C_r = c_r, E_{r+1} = 1 | E_r = 1) and P(C_r = c_r, E_{r+1} = 0 | E_r = 1).
    go_on = np.where(clicked, attr * gamma * (1.0 - sat), (1.0 - attr) * gamma)
    stop = np.where(clicked, attr * (1.0 - gamma * (1.0 - sat)), (1.0 - attr) * (1.0 - gamma))
    # Forward: joint of the clicks above r and E_r; backward: clicks from r on given E_r.
    fwd1 = np.zeros((n_sessions, width + 1))
    fwd0 = np.zeros((n_sessions, width + 1))
    fwd1[:, 0] = 1.0
    for r in range(width):
        m = mask[:, r]
        fwd1[:, r + 1] = np.where(m, fwd1[:, r] * go_on[:, r], fwd1[:, r])
        fwd0[:, r + 1] = np.where(
            m, fwd0[:, r] * ~clicked[:, r] + fwd1[:, r] * stop[:, r], fwd0[:, r]
        )
    bwd1 = np.ones((n_sessions, width + 1))
    bwd0 = np.ones((n_sessions, width + 1))
    for r in range(width - 1, -1, -1):
        m = mask[:, r]
        bwd1[:, r] = np.where(m, go_on[:, r] * bwd1[:, r + 1] + stop[:, r] * bwd0[:, r + 1], 1.0)
        bwd0[:, r] = np.where(m, ~clicked[:, r] * bwd0[:, r + 1], 1.0)
    evidence = np.maximum(bwd1[:, 0], 1e-300)[:, None]
    exam1 = fwd1[:, :width] * bwd1[:, :width] / evidence
    exam0 = np.clip(1.0 - exam1, 0.0, 1.0)
    post_attr = np.where(clicked, 1.0, exam0 * attr)

    next1, next0 = bwd1[:, 1:], bwd0[:, 1:]
    stay = gamma * next1 + (1.0 - gamma) * next0
    satisfied = sat * next0
    post_sat = satisfied / np.maximum(satisfied + (1.0 - sat) * stay, 1e-300)

    # Gamma: expected continuations over expected unsatisfied examinations
    # that have a next result to go on to.
    has_next = np.zeros_like(mask)
    has_next[:, :-1] = mask[:, 1:]
    unsatisfied = np.where(clicked, attr * (1.0 - sat), 1.0 - attr)
    weight = np.where(has_next, fwd1[:, :width] * unsatisfied / evidence, 0.0)
    denominator = float((weight * stay).sum())
    gamma_new = float((weight * gamma * next1).sum()) / denominator if denominator > 0 else gamma
    return post_attr, post_sat, gamma_new


# --------------------------------------------------------------------------- registry, helpers

CLICK_MODELS: dict[str, type[ClickModel]] = {
    PositionBasedModel.name: PositionBasedModel,
    CascadeModel.name: CascadeModel,
    DynamicBayesianNetworkModel.name: DynamicBayesianNetworkModel,
}


def make_click_model(name: str, **params: Any) -> ClickModel:
    """Build a click model by registry name (``pbm``, ``cascade``, ``dbn``).

    Raises:
        ConfigError: On an unknown name (the message lists the known ones) or
            a parameter the model does not take.
    """
    try:
        cls = CLICK_MODELS[name]
    except KeyError:
        raise ConfigError(
            f"unknown click model {name!r}; choose from {sorted(CLICK_MODELS)}"
        ) from None
    try:
        return cls(**params)
    except TypeError as exc:
        raise ConfigError(f"click model {name!r}: {exc}") from None


def evaluate_click_model(model: ClickModel, log: pd.DataFrame) -> dict[str, Any]:
    """Held-out quality of a fitted click model.

    Returns:
        ``log_likelihood`` (mean per row, natural log, higher is better),
        ``perplexity`` (mean over ranks with rows, >= 1, lower is better) and
        ``perplexity_by_rank`` (list of ``max_rank`` floats, NaN where no rows).
    """
    by_rank = model.perplexity(log)
    return {
        "log_likelihood": model.log_likelihood(log),
        "perplexity": float(np.nanmean(by_rank)),
        "perplexity_by_rank": [float(v) for v in by_rank],
    }


def split_sessions(
    log: pd.DataFrame, test_size: float = 0.2, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split an impression log into train and test by session, seeded.

    Args:
        log: Impression log with ``session_id``.
        test_size: Fraction of sessions in the test part, in (0, 1).
        seed: Seed of the session shuffle.

    Returns:
        ``(train, test)``: the rows of each part in the log's order.
    """
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be in (0, 1), got {test_size}")
    if C.SESSION_ID not in log.columns:
        raise DataFormatError(f"impression log lacks column {C.SESSION_ID!r}")
    sessions = pd.unique(log[C.SESSION_ID].to_numpy())
    rng = np.random.default_rng(seed)
    n_test = round(test_size * sessions.shape[0])
    test_sessions = sessions[rng.permutation(sessions.shape[0])[:n_test]]
    in_test = log[C.SESSION_ID].isin(test_sessions).to_numpy()
    return log.loc[~in_test], log.loc[in_test]


__all__ = [
    "CLICK_MODELS",
    "LOG_COLUMNS",
    "CascadeModel",
    "ClickModel",
    "DynamicBayesianNetworkModel",
    "PositionBasedModel",
    "evaluate_click_model",
    "make_click_model",
    "split_sessions",
    "validate_log",
]
