"""The stacker cross-fitted over its labelled tuning queries: an estimate of its quality
where the only grades are the ones it is tuned on.

A deployment has a few dozen expert-graded queries and uses every one of them to
tune the stacker, so none is left to say how good the tuned stacker is. The
cross-fit splits the graded queries into folds, tunes a stacker on the other
folds' queries and scores the held-out fold with it, so every graded query gets
a score from a stacker that never saw its grades. Its NDCG on those queries
estimates the quality of a stacker tuned on ``(k - 1) / k`` of them; the stacker
that ranks is still the one tuned on all of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from hybridrank.ensemble._oof import OOFScores
from hybridrank.ensemble._stacker import FrequencyGatedStacker, StackerConfig
from hybridrank.errors import ConfigError

#: Fewest graded queries a fold's stacker is tuned on.
MIN_CROSSFIT_QUERIES = 10


def query_folds(queries: npt.ArrayLike, k: int, seed: int) -> dict[str, int]:
    """``{query: fold}``: the graded queries dealt into ``k`` folds by a seeded permutation
    (the gold expert's cross-fit uses the same split for the same seed)."""
    unique = np.unique(np.asarray(queries).astype(str))
    folds = np.random.default_rng(seed).permutation(unique.size) % k
    return dict(zip(unique.tolist(), folds.tolist(), strict=True))


@dataclass(frozen=True)
class CrossFit:
    """Scores of the cross-fitted stacker.

    Attributes:
        scores: One per row: the score from the stacker tuned without the row's
            fold; NaN for rows outside the tuning set.
        fold: The fold of each row (-1 outside the tuning set).
        gates: Per fold, the kept gate's parameters, its anchor weights and the
            number of queries it was tuned on.
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
    head: tuple[float, float] | None = None,
    bucket: npt.ArrayLike | None = None,
    folds: int = 5,
    seed: int = 0,
) -> CrossFit:
    """Score every graded tuning query with a stacker tuned on the other folds' queries.

    Args:
        config: The stacker's config (each fold runs its full study).
        click, llm, anchors, freq, labels, head, bucket: As
            :meth:`FrequencyGatedStacker.fit`.
        rows: Mask of the tuning rows (whole queries); a query with no label
            is left out.
        folds: Folds of the cross-fit (>= 2).
        seed: Seed of the split (:func:`query_folds`).

    Raises:
        ConfigError: ``folds`` below 2, or a fold's tuning set below
            :data:`MIN_CROSSFIT_QUERIES` queries.
    """
    if folds < 2:
        raise ConfigError(f"the stacker cross-fit needs at least 2 folds, got {folds}")
    qid = click.qid.astype(str)
    y = np.asarray(labels, dtype=np.float64)
    tuning = np.asarray(rows, dtype=bool)
    queries = np.unique(qid[tuning & ~np.isnan(y)])
    graded = tuning & np.isin(qid, queries)  # whole queries, as the stacker is tuned on
    smallest = queries.size - int(np.ceil(queries.size / folds))
    if smallest < MIN_CROSSFIT_QUERIES:
        raise ConfigError(
            f"the stacker cross-fit over {folds} folds would tune on {smallest} of the "
            f"{queries.size} graded tuning queries (fewer than {MIN_CROSSFIT_QUERIES}); use "
            "fewer folds or more tuning queries"
        )
    fold_of = query_folds(queries, folds, seed)
    fold = np.array([fold_of.get(q, -1) for q in qid], dtype=np.int64)
    fold[~graded] = -1
    freq_ = np.asarray(freq, dtype=np.float64)
    scores = np.full(qid.shape[0], np.nan)
    gates = []
    for f in range(folds):
        held = fold == f
        fitted = FrequencyGatedStacker(config).fit(
            click, llm, freq=freq_, labels=y, rows=graded & ~held, anchors=anchors,
            head=head, bucket=bucket,
        )  # fmt: skip
        scores[held] = fitted.predict(
            click.scores[held], llm.scores[held], qid=qid[held], freq=freq_[held],
            anchors=[a.scores[held] for a in anchors],
        )  # fmt: skip
        gates.append(
            {
                "fold": f,
                "tuned_on": int(np.unique(qid[graded & ~held]).size),
                "scored": int(np.unique(qid[held]).size),
                "gate": fitted.gate_.params(),
                "anchor_weights": [float(w) for w in fitted.anchor_weights_],
                "tuning_ndcg": float(fitted.best_value_),
            }
        )
    return CrossFit(scores, fold, tuple(gates))


__all__ = ["MIN_CROSSFIT_QUERIES", "CrossFit", "crossfit_stacker", "query_folds"]
