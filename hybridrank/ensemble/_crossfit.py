"""The stacker cross-fitted over its labelled tuning queries: an estimate of its quality
where the only grades are the ones it is tuned on.

A deployment has a few dozen expert-graded queries and uses every one of them to
tune the stacker, so none is left to say how good the tuned stacker is. The
cross-fit splits the graded queries into folds, tunes a stacker on the other
folds' queries and scores the held-out fold with it. An expert that learned
from those grades itself (the gold expert) is retrained inside each fold on the
other folds' grades only (``refit``), so no grade of a held-out query reaches
the stacker that scores it. Its NDCG on those queries estimates the quality of
a stacker tuned on ``(k - 1) / k`` of them; the stacker that ranks is still the
one tuned on all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from hybridrank.ensemble._oof import OOFScores
from hybridrank.ensemble._stacker import FrequencyGatedStacker, StackerConfig
from hybridrank.errors import ConfigError

#: Fewest graded queries a fold's stacker is tuned on.
MIN_CROSSFIT_QUERIES = 10

#: Retrains an anchor expert on the graded tuning rows given (a boolean mask) and returns
#: its scores for every row: out of fold on those rows, from the model trained on all of
#: them elsewhere.
Refit = Callable[[np.ndarray], OOFScores]


def query_folds(queries: npt.ArrayLike, k: int, seed: int) -> dict[str, int]:
    """``{query: fold}``: the graded queries dealt into ``k`` folds by a seeded permutation
    of the sorted query ids (the gold expert deals its own cross-fit the same way)."""
    unique = np.unique(np.asarray(queries).astype(str))
    folds = np.random.default_rng(seed).permutation(unique.size) % k
    return dict(zip(unique.tolist(), folds.tolist(), strict=True))


def crossfit_shortfall(n_queries: int, folds: int) -> str | None:
    """Why ``n_queries`` graded tuning queries cannot be cross-fitted over ``folds`` folds,
    or None when they can (every fold's stacker tuned on at least
    :data:`MIN_CROSSFIT_QUERIES` queries)."""
    if folds < 2:
        return f"the stacker cross-fit needs at least 2 folds, got {folds}"
    k = min(folds, n_queries)
    smallest = n_queries - int(np.ceil(n_queries / k)) if k else 0
    if smallest < MIN_CROSSFIT_QUERIES:
        return (
            f"the stacker cross-fit over {k} folds would tune on {smallest} of the "
            f"{n_queries} graded tuning queries (fewer than {MIN_CROSSFIT_QUERIES}); use "
            "fewer folds or more tuning queries"
        )
    return None


@dataclass(frozen=True)
class CrossFit:
    """Scores of the cross-fitted stacker.

    Attributes:
        scores: One per row: the score from the stacker tuned without the row's
            fold; NaN for rows outside the tuning set.
        fold: The fold of each row (-1 outside the tuning set).
        gates: Per fold, the kept gate's parameters, its anchor weights, the
            number of queries it was tuned on and scored, and the anchors
            retrained for it.
    """

    scores: np.ndarray
    fold: np.ndarray
    gates: tuple[dict[str, Any], ...]

    def to_dict(self) -> dict[str, Any]:
        return {"folds": len(self.gates), "per_fold": list(self.gates)}


def crossfit_stacker(
    config: StackerConfig,
    click: OOFScores,
    llm: OOFScores,
    *,
    freq: npt.ArrayLike,
    labels: npt.ArrayLike,
    rows: npt.ArrayLike,
    anchors: Sequence[OOFScores] = (),
    refit: Mapping[str, Refit] | None = None,
    head: tuple[float, float] | None = None,
    bucket: npt.ArrayLike | None = None,
    folds: int = 5,
    seed: int = 0,
) -> CrossFit:
    """Score every graded tuning query with a stacker tuned on the other folds' queries.

    Args:
        config: The stacker's config (each fold runs its full study).
        click, llm, anchors, freq, head, bucket: As
            :meth:`FrequencyGatedStacker.fit`.
        labels: Graded labels (NaN: ungraded).
        rows: Mask of the tuning rows (whole queries); a query with no grade
            is left out.
        refit: Anchors that learned from these grades, by name: each fold
            retrains them on the other folds' graded rows and uses those
            scores, for its tuning and for the fold it scores.
        folds: Folds of the cross-fit (>= 2; at most one per query).
        seed: Seed of the split (:func:`query_folds`).

    Raises:
        ConfigError: Fewer than 2 folds, or a fold's stacker would be tuned on
            fewer than :data:`MIN_CROSSFIT_QUERIES` queries
            (:func:`crossfit_shortfall`); a ``refit`` name that is no anchor.
    """
    refit = dict(refit or {})
    unknown = sorted(set(refit) - {a.name for a in anchors})
    if unknown:
        raise ConfigError(f"refit names {unknown}, which are not among the anchors")
    qid = click.qid.astype(str)
    y = np.asarray(labels, dtype=np.float64)
    tuning = np.asarray(rows, dtype=bool)
    queries = np.unique(qid[tuning & ~np.isnan(y)])
    why = crossfit_shortfall(queries.size, folds)
    if why is not None:
        raise ConfigError(why)
    k = min(folds, queries.size)
    graded = tuning & np.isin(qid, queries)  # whole queries, as the stacker is tuned on
    fold_of = pd.Series(query_folds(queries, k, seed))
    fold = pd.Series(qid).map(fold_of).fillna(-1).to_numpy(dtype=np.int64)
    fold[~graded] = -1
    freq_ = np.asarray(freq, dtype=np.float64)
    scores = np.full(qid.shape[0], np.nan)
    gates = []
    for f in range(k):
        held = fold == f
        train = graded & ~held
        experts = [refit[a.name](train) if a.name in refit else a for a in anchors]
        fitted = FrequencyGatedStacker(config).fit(
            click, llm, freq=freq_, labels=y, rows=train, anchors=experts, head=head,
            bucket=bucket,
        )  # fmt: skip
        scores[held] = fitted.predict(
            click.scores[held], llm.scores[held], qid=qid[held], freq=freq_[held],
            anchors=[a.scores[held] for a in experts],
        )  # fmt: skip
        gates.append(
            {
                "fold": f,
                "tuned_on": int(np.unique(qid[train]).size),
                "scored": int(np.unique(qid[held]).size),
                "gate": fitted.gate_.params(),
                "anchor_weights": [float(w) for w in fitted.anchor_weights_],
                "refitted": sorted(refit),
                "tuning_ndcg": float(fitted.best_value_),
            }
        )
    return CrossFit(scores, fold, tuple(gates))


__all__ = [
    "MIN_CROSSFIT_QUERIES",
    "CrossFit",
    "Refit",
    "crossfit_shortfall",
    "crossfit_stacker",
    "query_folds",
]
