"""Budgeted annotation: which pairs an LLM labels when it cannot label them all.

LLM labels matter most where clicks are few (on rare queries the LLM-supervised
model wins, on frequent ones the click-supervised one does), so a budget is
best spent on the tail. A :class:`SelectionStrategy` orders a candidate table's
pairs (most worth labelling first); :func:`select_pairs` takes the first ``n``
not yet labelled; :func:`annotate_with_budget` asks the judge for those pairs
only and records the choice in the dataset's ``llm_labels`` table
(``selected_by``, ``selection_round``), so a rerun extends the selection and
never asks a pair twice. :func:`budget_mask` applies the same choice to a fully
judged table (the experiment's budget curve: equivalent for a judge whose
answers are cached, since a pair's answer does not depend on which others
were asked).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from hybridrank import columns as C
from hybridrank.data import TUNING, Dataset
from hybridrank.errors import ConfigError, DataFormatError
from hybridrank.labels.llm import (
    LLM_SOFT,
    LLM_STATUS,
    AnnotateConfig,
    AnnotationStats,
    Annotator,
    AnswerCache,
    count_answered,
    pairs_from_candidates,
)
from hybridrank.pipelines._annotate import (
    LLM_JUDGE,
    LLM_LABEL_COLUMNS,
    DatasetLabels,
    annotate_dataset,
    judge_id,
    known_pairs,
)
from hybridrank.pipelines._tables import CLICK_ESTIMATE, SEMANTIC, TableOptions, build_table

logger = logging.getLogger(__name__)

#: ``llm_labels`` column: the strategy that chose the pair (``calibration``: a tuning-query
#: pair judged to calibrate a score-only judge; ``all``: labelled without a budget).
SELECTED_BY = "selected_by"
#: ``llm_labels`` column: the budgeted run (1, 2, ...) that chose the pair; 0 without a budget.
SELECTION_ROUND = "selection_round"
CALIBRATION_PAIRS = "calibration"
UNBUDGETED = "all"
#: ``selected_by`` of a pair the user named (``annotate --candidates FILE``).
CHOSEN_PAIRS = "candidates"

_IMPRESSIONS = "qd_impressions"


def _within_query_rank(table: pd.DataFrame, column: str, *, ascending: bool) -> np.ndarray:
    """Percentile rank (0..1] of ``column`` within each query; NaN stays NaN."""
    ranks = table.groupby(C.QID, sort=False)[column].rank(pct=True, ascending=ascending)
    return ranks.to_numpy(dtype=np.float64)


def _impressions(table: pd.DataFrame) -> np.ndarray:
    """Times each pair was shown (0 for never shown or without a log)."""
    if _IMPRESSIONS not in table.columns:
        return np.zeros(len(table))
    return np.nan_to_num(table[_IMPRESSIONS].to_numpy(dtype=np.float64))


def _text_order(table: pd.DataFrame) -> np.ndarray:
    """Higher for pairs the first stage ranks higher (BM25), 0 without a text score."""
    if C.BM25 in table.columns:
        return np.nan_to_num(_within_query_rank(table, C.BM25, ascending=True))
    return np.zeros(len(table))


class SelectionStrategy:
    """Orders a candidate table's pairs by how much an LLM label is worth on each.

    Subclasses implement :meth:`order`; a strategy reads only what the table
    holds before any LLM label exists (frequencies, click features and labels,
    first-stage scores), never the expert grades.
    """

    name: ClassVar[str] = ""

    def order(self, table: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
        """Row positions of ``table``, most worth labelling first."""
        raise NotImplementedError


class TailFirst(SelectionStrategy):
    """Queries with the fewest sessions first; within a query, the weakest click evidence first.

    Pairs are ordered by their query's frequency (ascending; ties between
    queries broken at random, seeded), then by the pair's impressions
    (never-shown pairs first), then by first-stage rank (top first: those
    decide NDCG@10).
    """

    name = "tail-first"

    def order(self, table: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
        qids = table[C.QID].astype(str).to_numpy()
        uniq, inverse = np.unique(qids, return_inverse=True)
        query_tie = rng.permutation(uniq.size)[inverse]
        freq = table[C.FREQ].to_numpy(dtype=np.float64)
        # np.lexsort: the last key is the primary one.
        return np.lexsort((-_text_order(table), _impressions(table), query_tie, freq))


class Uncertainty(SelectionStrategy):
    """Pairs whose click evidence is weakest or whose click and text signals disagree most.

    ``score = 1 / sqrt(1 + impressions) + |click rank - text rank|`` (both
    percentile ranks within the query; a never-shown pair has no click rank and
    counts 0.5 disagreement), highest first; ties go to rarer queries.
    """

    name = "uncertainty"

    def order(self, table: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
        evidence = 1.0 / np.sqrt(1.0 + _impressions(table))
        click_col = next(
            (c for c in (CLICK_ESTIMATE, "qd_debiased_ctr_smooth", C.Y_CLICK) if c in table.columns),
            None,
        )
        if click_col is None or not (_impressions(table) > 0).any():
            logger.warning(
                "strategy uncertainty: the dataset has no click evidence (no click log), so "
                "every pair is equally uncertain: the order is by query frequency, then random"
            )
            disagreement = np.full(len(table), 0.5)
        else:
            click = table[click_col].where(_impressions(table) > 0)
            click_rank = _within_query_rank(table.assign(_c=click), "_c", ascending=True)
            disagreement = np.where(
                np.isnan(click_rank), 0.5, np.abs(click_rank - _text_order(table))
            )
        score = evidence + disagreement
        tie = rng.random(len(table))
        freq = table[C.FREQ].to_numpy(dtype=np.float64)
        return np.lexsort((tie, freq, -np.round(score, 12)))


class RandomPairs(SelectionStrategy):
    """A seeded uniform draw of pairs (the baseline every strategy must beat)."""

    name = "random"

    def order(self, table: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
        return rng.permutation(len(table))


#: Selection strategies by name.
STRATEGIES: Mapping[str, SelectionStrategy] = {
    s.name: s for s in (TailFirst(), Uncertainty(), RandomPairs())
}


def get_strategy(name: str) -> SelectionStrategy:
    """The strategy called ``name``; a ConfigError listing the known ones otherwise."""
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ConfigError(
            f"unknown selection strategy {name!r}; choose from {sorted(STRATEGIES)}"
        ) from None


@dataclass(frozen=True)
class Budget:
    """How many pairs a budgeted run may label.

    Attributes:
        pairs: A number of new pairs for this run.
        share: A share (0, 1] of the selectable pairs labelled in total after
            this run (a rerun with a larger share extends the selection).
    """

    pairs: int | None = None
    share: float | None = None

    def __post_init__(self) -> None:
        if (self.pairs is None) == (self.share is None):
            raise ConfigError("a budget is either a number of pairs or a share of them")
        if self.pairs is not None and self.pairs < 1:
            raise ConfigError(f"budget must be at least 1 pair, got {self.pairs}")
        if self.share is not None and not 0 < self.share <= 1:
            raise ConfigError(f"budget share must be in (0, 1], got {self.share}")

    @classmethod
    def parse(cls, text: str | int | float) -> Budget:
        """``"5000"`` (new pairs), ``"0.3"`` or ``"30%"`` (share labelled in total)."""
        raw = str(text).strip()
        if re.fullmatch(r"\d+", raw):
            return cls(pairs=int(raw))
        match = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)\s*(%?)", raw)
        if match is None:
            raise ConfigError(
                f"budget {raw!r}: give a number of pairs (5000) or a share (0.3 or 30%)"
            )
        value = float(match.group(1)) / (100.0 if match.group(2) else 1.0)
        return cls(share=value)

    def new_pairs(self, n_selectable: int, n_selected: int) -> int:
        """Pairs this run may add, given the pool size and the pairs chosen before."""
        if self.pairs is not None:
            return min(self.pairs, n_selectable - n_selected)
        assert self.share is not None  # __post_init__
        return max(round(self.share * n_selectable) - n_selected, 0)


def select_pairs(
    table: pd.DataFrame,
    n: int,
    strategy: str | SelectionStrategy,
    *,
    exclude: pd.DataFrame | None = None,
    pool: np.ndarray | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """The ``n`` pairs a strategy labels next.

    Args:
        table: Candidate table (``qid, docid, freq`` and whatever the
            strategy reads: click features, ``click_estimate``, ``bm25``).
        n: Pairs to choose.
        strategy: A strategy or its name (:data:`STRATEGIES`).
        exclude: Pairs (``qid, docid``) chosen before; never chosen again.
        pool: Boolean row mask of selectable rows (default all).
        seed: Seed of the strategy's random tie-breaks.

    Returns:
        ``qid, docid`` of the chosen pairs, in the strategy's order.
    """
    strat = get_strategy(strategy) if isinstance(strategy, str) else strategy
    order = strat.order(table, np.random.default_rng(seed))
    ok = np.ones(len(table), dtype=bool) if pool is None else np.asarray(pool, dtype=bool).copy()
    if exclude is not None and len(exclude):
        keys = pd.MultiIndex.from_frame(table[[C.QID, C.DOCID]].astype(str))
        done = pd.MultiIndex.from_frame(exclude[[C.QID, C.DOCID]].astype(str))
        ok &= ~keys.isin(done)
    chosen = order[ok[order]][: max(n, 0)]
    return table.iloc[chosen][[C.QID, C.DOCID]].reset_index(drop=True)


def budget_mask(
    table: pd.DataFrame,
    share: float,
    strategy: str | SelectionStrategy,
    *,
    keep: np.ndarray | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Rows a budget of ``share`` of the selectable pairs labels under ``strategy``.

    Args:
        table: Candidate table.
        share: Share of the pool labelled, in (0, 1].
        strategy: Strategy or its name.
        keep: Rows labelled regardless and outside the pool (the labelled
            tuning queries, which calibrate a score-only judge).
        seed: Seed of the strategy.

    Returns:
        Boolean mask over ``table``'s rows: labelled (chosen or kept).
    """
    keep = np.zeros(len(table), dtype=bool) if keep is None else np.asarray(keep, dtype=bool)
    pool = ~keep
    Budget(share=share)  # checks the share
    n = round(float(share) * int(pool.sum()))
    strat = get_strategy(strategy) if isinstance(strategy, str) else strategy
    order = strat.order(table, np.random.default_rng(seed))
    chosen = order[pool[order]][:n]
    mask = keep.copy()
    mask[chosen] = True
    return mask


def mask_llm_labels(table: pd.DataFrame, labelled: np.ndarray) -> pd.DataFrame:
    """``table`` with the judge's outputs (``y_llm``, its soft grade and raw score) removed where not labelled.

    A pair the budget did not choose was never shown to the judge: it has no
    label and no judge score (the ``semantic_similarity`` feature is missing).
    """
    out = table.copy()
    for column in (C.Y_LLM, LLM_SOFT, SEMANTIC):
        if column in out.columns:
            out[column] = out[column].where(labelled)
    return out


#: How a budget run fills the judge's score on the pairs it did not label.
BUDGET_FILLS = ("dense", "none")
#: Fewest pairs with both scores for :func:`fill_judge_score` to fit its map.
MIN_FILL_PAIRS = 50
#: Quantiles :func:`fill_judge_score` matches between the proxy and the judge's score.
FILL_QUANTILES = 1001


def fill_judge_score(table: pd.DataFrame, proxy: np.ndarray) -> pd.DataFrame:
    """``table`` with the judge's missing raw score estimated from a cheap local similarity.

    A pair outside the budget has no judge score (``semantic_similarity`` is
    missing), but a local model's similarity (``proxy``, e.g. the packaged
    MiniLM's cosine) costs nothing next to an LLM call and exists for every
    pair. Quantile mapping over the pairs that have both puts the proxy on the
    judge's scale: a missing score becomes the judge score at the quantile its
    proxy holds among those pairs' proxies (linear between quantiles). The map
    is increasing, so filled pairs keep the proxy's order; beyond the range of
    the fitted proxies they take the end values. Judge scores that exist are
    kept, the LLM labels stay missing (a label is what the budget pays for),
    and a table with fewer than :data:`MIN_FILL_PAIRS` pairs to fit on is
    returned as it is.
    """
    if SEMANTIC not in table.columns:
        return table
    proxy = np.asarray(proxy, dtype=np.float64)
    if proxy.shape != (len(table),):
        raise ValueError(f"proxy has {proxy.shape} values for {len(table)} rows")
    score = table[SEMANTIC].to_numpy(dtype=np.float64, copy=True)
    both = np.isfinite(score) & np.isfinite(proxy)
    todo = ~np.isfinite(score) & np.isfinite(proxy)
    if both.sum() < MIN_FILL_PAIRS or not todo.any():
        return table
    levels = np.linspace(0.0, 1.0, min(int(both.sum()), FILL_QUANTILES))
    xp, first = np.unique(np.quantile(proxy[both], levels), return_index=True)
    fp = np.quantile(score[both], levels)[first]
    out = table.copy()
    score[todo] = np.interp(proxy[todo], xp, fp)
    out[SEMANTIC] = score
    return out


@dataclass(frozen=True)
class BudgetedLabels:
    """The result of :func:`annotate_with_budget`.

    Attributes:
        llm_labels: The dataset's whole ``llm_labels`` table after the run:
            earlier rows kept, new ones appended, with ``selected_by`` and
            ``selection_round``.
        new: ``qid, docid`` of the pairs this run chose (in the strategy's order).
        n_selectable: Pairs the budget draws from (the non-tuning pairs of a
            score-only judge, every pair of an LLM).
        n_selected: Pairs of the pool labelled after this run.
        stats: Counts of the judge run (None when nothing was asked).
        round: This run's selection round.
    """

    llm_labels: pd.DataFrame
    new: pd.DataFrame
    n_selectable: int
    n_selected: int
    stats: AnnotationStats | None
    round: int

    @property
    def share(self) -> float:
        return self.n_selected / self.n_selectable if self.n_selectable else 0.0


def annotate_with_budget(
    dataset: Dataset,
    annotator: Annotator,
    cache: AnswerCache,
    budget: Budget,
    strategy: str,
    config: AnnotateConfig | None = None,
    *,
    seed: int = 0,
    options: TableOptions | None = None,
    progress: bool = True,
) -> BudgetedLabels:
    """Label the pairs a strategy chooses within a budget; extend an earlier selection.

    Only the chosen pairs go to the judge (plus, for a score-only judge, the
    labelled tuning queries' pairs once: their expert grades calibrate its
    thresholds; they are outside the budget). Pairs already in the dataset's
    ``llm_labels`` are never chosen again; for a score-only judge they are
    re-graded (from the cache, no new calls) with the new calibration.

    Raises:
        DataFormatError: The dataset holds no texts.
        ConfigError: An unknown strategy.
    """
    strat = get_strategy(strategy)
    config = replace(config or AnnotateConfig(), budget=None)
    table, _ = build_table(dataset, options)
    table = table.drop(columns=[c for c in (C.Y_LLM, LLM_SOFT, SEMANTIC) if c in table.columns])
    existing = _with_selection_record(dataset.llm_labels)
    if not annotator.is_llm and existing is not None and len(existing):
        _check_same_judge(dataset, annotator, cache, existing)  # it regrades them below
    tuning = table[TUNING].to_numpy(dtype=bool)
    pool = np.ones(len(table), dtype=bool) if annotator.is_llm else ~tuning
    keys = pd.MultiIndex.from_frame(table[[C.QID, C.DOCID]].astype(str))
    done = (
        pd.MultiIndex.from_frame(existing[[C.QID, C.DOCID]].astype(str))
        if existing is not None
        else pd.MultiIndex.from_arrays([[], []])
    )
    n_selectable = int(pool.sum())
    n_before = int((pool & keys.isin(done)).sum())
    n_new = budget.new_pairs(n_selectable, n_before)
    new = select_pairs(table, n_new, strat, exclude=existing, pool=pool, seed=seed)
    round_ = int(existing[SELECTION_ROUND].max()) + 1 if existing is not None and len(existing) else 1
    calibration = pd.DataFrame(columns=[C.QID, C.DOCID])
    if not annotator.is_llm:
        calibration = table.loc[tuning & ~keys.isin(done), [C.QID, C.DOCID]]
    chosen = new.copy()
    chosen[SELECTED_BY] = strat.name
    calibration = calibration.copy()
    calibration[SELECTED_BY] = CALIBRATION_PAIRS
    new_rows = pd.concat([chosen, calibration], ignore_index=True)
    new_rows[SELECTION_ROUND] = round_
    if new_rows.empty:
        logger.info("budget: nothing new to label (%d of %d pairs labelled)", n_before, n_selectable)
        labels = existing if existing is not None else _empty_labels()
        return BudgetedLabels(labels, new, n_selectable, n_before, None, round_ - 1)
    # An LLM's grades stand alone: ask only the new pairs. A score-only judge is re-graded
    # as a whole so that every pair shares one calibration (earlier pairs come from the cache).
    ask = new_rows if annotator.is_llm or existing is None else pd.concat(
        [existing[[C.QID, C.DOCID, SELECTED_BY, SELECTION_ROUND]], new_rows], ignore_index=True
    )
    ask = _in_table_order(ask, table)
    result = annotate_dataset(
        dataset, annotator, cache, config, candidates=ask[[C.QID, C.DOCID]], progress=progress
    )
    judged = result.llm_labels.merge(
        ask[[C.QID, C.DOCID, SELECTED_BY, SELECTION_ROUND]], on=[C.QID, C.DOCID], how="left"
    )
    if annotator.is_llm and existing is not None:
        judged = pd.concat([existing, judged], ignore_index=True)
    judged = _in_table_order(judged, table)
    return BudgetedLabels(
        llm_labels=judged.reset_index(drop=True),
        new=new,
        n_selectable=n_selectable,
        n_selected=n_before + len(new),
        stats=result.stats,
        round=round_,
    )


def annotate_chosen(
    dataset: Dataset,
    annotator: Annotator,
    cache: AnswerCache,
    pairs: pd.DataFrame,
    config: AnnotateConfig | None = None,
    *,
    progress: bool = True,
) -> DatasetLabels:
    """Label the pairs a user names (``annotate --candidates``), extending the dataset's
    labels; returns the dataset's whole new ``llm_labels`` table.

    An LLM's grades stand alone: only ``pairs`` go to it, and their grades replace
    theirs among the earlier labels. A score-only judge's grades depend on its
    calibration (the tuning queries' expert grades) and on the other pairs of each
    query (within-query features), so as with a budget, the earlier pairs, the
    tuning queries' pairs and ``pairs`` are graded as a whole (earlier answers come
    from the cache): every label stays on one scale. ``selected_by`` and
    ``selection_round`` (where the labels keep them) are kept for earlier pairs;
    new pairs are ``candidates`` (named) or ``calibration``, round 0.

    Raises:
        DataFormatError: ``pairs`` names a pair that is no candidate of the dataset
            (its row in ``pairs``).
    """
    candidates = dataset.candidates[[C.QID, C.DOCID]].astype(str)
    wanted = known_pairs(pairs, candidates)
    existing = dataset.llm_labels
    if not annotator.is_llm and existing is not None and len(existing):
        _check_same_judge(dataset, annotator, cache, existing)
    ask = [pairs[[C.QID, C.DOCID]].astype(str)]
    if not annotator.is_llm:
        if existing is not None:
            ask.append(existing[[C.QID, C.DOCID]].astype(str))
        ask.append(candidates.loc[candidates[C.QID].isin(dataset.tuning_qids).to_numpy()])
    asked = _in_table_order(pd.concat(ask, ignore_index=True).drop_duplicates(), candidates)
    result = annotate_dataset(dataset, annotator, cache, config, candidates=asked, progress=progress)
    judged = result.llm_labels
    # Every label says how it was chosen: earlier ones keep their record (labels from
    # before any budget: `all`, round 0), named pairs are `candidates`, the tuning
    # queries' pairs a score-only judge needs are `calibration`; new ones round 0.
    existing = _with_selection_record(existing)
    if existing is not None:
        earlier = existing[[C.QID, C.DOCID, SELECTED_BY, SELECTION_ROUND]]
        judged = judged.merge(earlier, on=[C.QID, C.DOCID], how="left")
    else:
        judged = judged.assign(**{SELECTED_BY: np.nan, SELECTION_ROUND: np.nan})
    new = judged[SELECTED_BY].isna().to_numpy()
    named = pd.MultiIndex.from_frame(judged[[C.QID, C.DOCID]].astype(str)).isin(wanted)
    judged[SELECTED_BY] = judged[SELECTED_BY].astype(object)
    judged.loc[new, SELECTED_BY] = np.where(named[new], CHOSEN_PAIRS, CALIBRATION_PAIRS)
    judged.loc[new, SELECTION_ROUND] = 0
    judged[SELECTION_ROUND] = judged[SELECTION_ROUND].astype(np.int64)
    if annotator.is_llm and existing is not None:
        replaced = pd.MultiIndex.from_frame(existing[[C.QID, C.DOCID]].astype(str)).isin(wanted)
        judged = pd.concat([existing.loc[~replaced], judged], ignore_index=True)
    judged = _in_table_order(judged, candidates).reset_index(drop=True)
    return replace(result, llm_labels=judged)


def _with_selection_record(labels: pd.DataFrame | None) -> pd.DataFrame | None:
    """A copy of ``labels`` whose rows say how they were chosen; labels from before any
    budget have no record: ``all``, round 0."""
    if labels is None:
        return None
    labels = labels.copy()
    if SELECTED_BY not in labels.columns:
        labels[SELECTED_BY] = UNBUDGETED
    if SELECTION_ROUND not in labels.columns:
        labels[SELECTION_ROUND] = 0
    return labels


def _check_same_judge(
    dataset: Dataset, annotator: Annotator, cache: AnswerCache, existing: pd.DataFrame
) -> None:
    """A score-only judge regrades the earlier labels: they must be its own answers (in
    ``cache``), or a paid LLM's grades would be replaced by the judge's without a word."""
    assert dataset.queries is not None and dataset.docs is not None
    if LLM_STATUS in existing.columns:  # pairs a budget left unasked have no answer to check
        existing = existing.loc[existing[LLM_STATUS].astype(str) != "not_run"]
    me = judge_id(annotator)
    if LLM_JUDGE in existing.columns:
        # The labels say which judge made them: the cache holding this judge's answers for
        # the same texts (an earlier run of it) does not make another judge's labels its own.
        made_by = existing[LLM_JUDGE]
        others = made_by.notna() & (made_by.astype(str) != me)
        if others.any():
            judges = sorted(made_by[others].astype(str).unique())
            raise ConfigError(
                f"{int(others.sum())} of the dataset's {len(existing)} earlier LLM labels were "
                f"made by {judges[:3]}, not this judge ({me}): grading with it would regrade "
                "them all on its scale. Label the new pairs with the backend that made the "
                "earlier labels, or run `annotate` without --candidates or --budget to "
                "relabel every pair with this judge"
            )
        existing = existing.loc[made_by.isna()]  # labels from before the column: the cache says
    earlier = pairs_from_candidates(
        existing[[C.QID, C.DOCID]].astype(str), dataset.queries, dataset.docs
    )
    missing = len(earlier) - count_answered(annotator, earlier, cache)
    if missing:
        raise ConfigError(
            f"{missing} of the dataset's {len(earlier)} earlier LLM labels are not answers of "
            f"this judge ({annotator.backend}, {annotator.model}) in the cache {cache.path}: "
            "they came from another judge (or cache). Grading the named pairs with it would "
            "regrade them all on its scale: label the named pairs with the backend that made "
            "the earlier labels, or run `annotate` without --candidates to relabel every pair"
        )


def _empty_labels() -> pd.DataFrame:
    return pd.DataFrame(columns=[*LLM_LABEL_COLUMNS, SELECTED_BY, SELECTION_ROUND])


def _in_table_order(pairs: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """``pairs`` sorted as the candidate table (rows of a query contiguous)."""
    position = pd.Series(
        np.arange(len(table)),
        index=pd.MultiIndex.from_frame(table[[C.QID, C.DOCID]].astype(str)),
    )
    where = position.reindex(pd.MultiIndex.from_frame(pairs[[C.QID, C.DOCID]].astype(str)))
    if where.isna().any():
        q, d = where.index[int(np.flatnonzero(where.isna().to_numpy())[0])]
        raise DataFormatError(f"labelled pair ({q!r}, {d!r}) is not a candidate of the dataset")
    return pairs.iloc[np.argsort(where.to_numpy(), kind="stable")].reset_index(drop=True)


# ------------------------------------------------------------- the budget curve

#: Columns of the budget curve's per-query frame.
CURVE_KEYS = ("seed", "strategy", "budget", "share", "system")


def per_query_values(
    table: pd.DataFrame, systems: list[str], metric: str, keys: Mapping[str, object]
) -> pd.DataFrame:
    """One row per (system, evaluated query): ``keys``, ``system, qid, bucket, value``.

    The labelled tuning queries are left out, as in every evaluation.
    """
    from hybridrank.evaluate import per_query_metric

    evaluated = table.loc[~table[TUNING].to_numpy(dtype=bool)]
    bucket = evaluated.groupby(C.QID, sort=False)[C.BUCKET].first()
    frames = []
    for system in systems:
        values = per_query_metric(evaluated, system, C.Y_EXPERT, metric=metric)
        frames.append(
            pd.DataFrame(
                {
                    **{k: v for k, v in keys.items()},
                    "system": system,
                    C.QID: values.index.astype(str),
                    C.BUCKET: bucket.reindex(values.index).astype(str).to_numpy(),
                    "value": values.to_numpy(),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def budget_curve_summary(per_query: pd.DataFrame, bucket_order: list[str]) -> pd.DataFrame:
    """Mean metric per (strategy, budget, system, bucket) and overall, seeds pooled.

    Returns:
        Columns ``strategy, budget, share, system, bucket, value, n`` (``n``:
        queries with a relevant candidate).
    """
    rows = []
    for (strategy, budget, system), group in per_query.groupby(
        ["strategy", "budget", "system"], sort=False
    ):
        share = float(group["share"].mean())
        for bucket in [*bucket_order, "all"]:
            part = group if bucket == "all" else group[group[C.BUCKET] == bucket]
            values = part["value"].dropna()
            rows.append({"strategy": strategy, "budget": budget, "share": share, "system": system,
                         C.BUCKET: bucket, "value": float(values.mean()) if len(values) else np.nan,
                         "n": int(values.size)})  # fmt: skip
    return pd.DataFrame(rows)


def budget_significance(per_query: pd.DataFrame, *, baseline: str = "random") -> pd.DataFrame:
    """Each strategy against ``baseline`` at each budget below 1, per system, over all queries.

    A paired randomisation test over the queries (seeds pooled).

    Returns:
        Columns ``budget, system, strategy, value, baseline_value, diff, p_value``.
    """
    from hybridrank.evaluate import randomization_test

    rows = []
    partial = per_query[per_query["budget"] < 1.0]
    for (budget, system), group in partial.groupby(["budget", "system"], sort=True):
        wide = group.pivot_table(index=["seed", C.QID], columns="strategy", values="value")
        if baseline not in wide.columns:
            continue
        for strategy in (s for s in wide.columns if s != baseline):
            pair = wide[[strategy, baseline]].dropna()
            test = randomization_test(pair[strategy].to_numpy(), pair[baseline].to_numpy())
            rows.append({"budget": budget, "system": system, "strategy": strategy,
                         "value": float(pair[strategy].mean()),
                         "baseline_value": float(pair[baseline].mean()),
                         "diff": float(pair[strategy].mean() - pair[baseline].mean()),
                         "p_value": float(test.p_value)})  # fmt: skip
    return pd.DataFrame(rows)


def budget_curve_markdown(summary: pd.DataFrame, significance: pd.DataFrame, metric: str) -> str:
    """The curve as markdown: one table per system (rows strategy x budget, columns buckets)."""
    lines = [f"{metric} against the share of pairs with an LLM label (tuning queries left out)"]
    for system, part in summary.groupby("system", sort=False):
        wide = part.pivot_table(
            index=["strategy", "budget", "share"], columns=C.BUCKET, values="value", sort=False
        )
        # A bucket with no evaluated query (all values NaN) stays, as an empty column.
        wide = wide.reindex(columns=list(part[C.BUCKET].drop_duplicates()))
        lines += ["", f"### {system}", "", wide.reset_index().to_markdown(index=False, floatfmt=".4f")]
    if len(significance):
        lines += ["", "### against the random strategy (paired randomisation test, all queries)", "",
                  significance.to_markdown(index=False, floatfmt=".4f")]  # fmt: skip
    return "\n".join(lines)


def plot_budget_curve(summary: pd.DataFrame, metric: str, path: str | Path) -> None:
    """One panel per bucket: metric against the labelled share, a line per system and strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hybridrank._atomic import save_figure

    buckets = list(summary[C.BUCKET].drop_duplicates())
    fig, axes = plt.subplots(1, len(buckets), figsize=(4 * len(buckets), 3.8), sharey=True)
    axes = np.atleast_1d(axes)
    styles = {"tail-first": "-", "uncertainty": "--", "random": ":"}
    for ax, bucket in zip(axes, buckets, strict=True):
        part = summary[summary[C.BUCKET] == bucket]
        for (system, strategy), line in part.groupby(["system", "strategy"], sort=False):
            line = line.sort_values("share")
            ax.plot(line["share"], line["value"], marker="o", linestyle=styles.get(str(strategy), "-"),
                    label=f"{system} / {strategy}")  # fmt: skip
        ax.set_title(bucket)
        ax.set_xlabel("share of pairs with an LLM label")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(metric)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="lower center", ncols=min(len(labels), 4))
    fig.suptitle(f"{metric} by LLM-label budget and selection strategy")
    fig.tight_layout(rect=(0, 0.2, 1, 1))
    save_figure(fig, Path(path), dpi=110)


__all__ = [
    "CALIBRATION_PAIRS",
    "CHOSEN_PAIRS",
    "CURVE_KEYS",
    "SELECTED_BY",
    "SELECTION_ROUND",
    "STRATEGIES",
    "Budget",
    "BudgetedLabels",
    "RandomPairs",
    "SelectionStrategy",
    "TailFirst",
    "Uncertainty",
    "annotate_chosen",
    "annotate_with_budget",
    "budget_curve_markdown",
    "budget_curve_summary",
    "budget_mask",
    "budget_significance",
    "get_strategy",
    "mask_llm_labels",
    "per_query_values",
    "plot_budget_curve",
    "select_pairs",
]
