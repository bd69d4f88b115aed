"""FAMOL: frequency-aware multi-objective LambdaMART (one model, both losses, weighted per query)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from hybridrank._config import as_mapping, config_from_dict, config_to_dict
from hybridrank._estimator import ConfigParams
from hybridrank._grouping import Padded, offsets_from_qid
from hybridrank.ensemble._gates import SigmoidGate
from hybridrank.ensemble._lambdarank import LambdaRankPairs
from hybridrank.errors import ConfigError
from hybridrank.gbdt import Gradients, LambdaMARTConfig, LambdaMARTRanker, Objective

logger = logging.getLogger(__name__)

MODES = ("objective", "label_mixing")


@dataclass(frozen=True)
class FAMOLConfig:
    """Frequency-aware multi-objective learning.

    Attributes:
        centre: alpha(f) = sigmoid(slope * (log1p(f) - centre)) weights the click
            loss of a query with f sessions; 1 - alpha weights its LLM loss.
        slope: See ``centre``.
        mode: ``objective`` (a custom objective summing the two weighted
            LambdaRank gradients) or ``label_mixing`` (the shortcut: one label
            per row, the alpha-weighted mix of both labels, rounded; the LLM
            label where no click label exists).
        sigma: LambdaRank sigmoid steepness.
        gbdt: The LambdaMART model (either engine; its early stopping and
            round selection score the mixed label).
    """

    centre: float = 2.0
    slope: float = 2.0
    mode: str = "objective"
    sigma: float = 1.0
    gbdt: LambdaMARTConfig = field(
        default_factory=lambda: LambdaMARTConfig(
            n_estimators=200, early_stopping_rounds=None, n_jobs=1
        )
    )

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"famol.mode must be one of {MODES}, got {self.mode!r}")
        if self.sigma <= 0:
            raise ConfigError(f"famol.sigma must be > 0, got {self.sigma}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> FAMOLConfig:
        values = as_mapping(values, "famol")
        gbdt = LambdaMARTConfig.from_dict(
            values.pop("gbdt", None)
            or {"n_estimators": 200, "early_stopping_rounds": None, "n_jobs": 1}
        )
        base = config_from_dict(cls, values, "famol")
        return cls(**{**base.__dict__, "gbdt": gbdt})

    def to_dict(self) -> dict[str, Any]:
        d = config_to_dict(self)
        d["gbdt"] = self.gbdt.to_dict()
        return d


class FAMOLRanker(ConfigParams):
    """One LambdaMART trained on click and LLM labels at once, weighted by query frequency.

    ``fit(X, y_click, y_llm, *, qid, freq)``: ``y_click`` may be NaN (rows never
    shown); such rows take part only in the LLM loss. Trained by
    :class:`~hybridrank.gbdt.LambdaMARTRanker` (``config.gbdt``: either
    engine, device, ``label_gain``, early stopping and round selection as for
    any ranker) through its custom-objective hook; early stopping and round
    selection score the per-query mix of both labels (the ``label_mixing``
    label).
    """

    def __init__(self, config: FAMOLConfig | None = None) -> None:
        self.config = config

    def alpha(self, freq: npt.ArrayLike) -> np.ndarray:
        cfg = self.config or FAMOLConfig()
        return SigmoidGate(cfg.centre, cfg.slope)(freq)

    def fit(
        self,
        X: pd.DataFrame | np.ndarray,
        y_click: npt.ArrayLike,
        y_llm: npt.ArrayLike,
        *,
        qid: npt.ArrayLike,
        freq: npt.ArrayLike,
    ) -> FAMOLRanker:
        cfg = self.config or FAMOLConfig()
        q = np.asarray(qid)
        yc = np.asarray(y_click, dtype=np.float64)
        yl = np.asarray(y_llm, dtype=np.float64)
        a = self.alpha(freq)
        if not yc.shape == yl.shape == q.shape == a.shape:
            raise ValueError(
                f"y_click, y_llm, qid and freq differ in length: {yc.shape}, {yl.shape}, "
                f"{q.shape}, {a.shape}"
            )
        mixed = mixed_labels(yc, yl, a)
        ranker = LambdaMARTRanker(cfg.gbdt)
        if cfg.mode == "label_mixing":
            keep = ~np.isnan(mixed)
            Xk = X[keep] if isinstance(X, pd.DataFrame) else np.asarray(X)[keep]
            ranker.fit(Xk, mixed[keep], qid=q[keep])
        else:
            gain = (
                np.asarray(cfg.gbdt.label_gain, dtype=np.float64)
                if cfg.gbdt.label_gain is not None
                else None
            )
            ranker.fit(
                X,
                np.nan_to_num(mixed),
                qid=q,
                objective=famol_objective(yc, yl, a, q, sigma=cfg.sigma, label_gain=gain),
            )
        self.ranker_ = ranker
        self.feature_names_ = ranker.feature_names_
        self.best_iteration_ = ranker.best_iteration_
        return self

    def predict(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        self.check_fitted("ranker_")
        return self.ranker_.predict(X)



def mixed_labels(y_click: np.ndarray, y_llm: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Per row: ``round(alpha * click + (1 - alpha) * llm)``; the one label a row has
    where the other is missing; NaN where it has neither."""
    both = np.round(alpha * np.nan_to_num(y_click) + (1 - alpha) * np.nan_to_num(y_llm))
    return np.where(
        np.isnan(y_click), y_llm, np.where(np.isnan(y_llm), y_click, both)
    )


def famol_objective(
    y_click: np.ndarray,
    y_llm: np.ndarray,
    alpha: np.ndarray,
    qid: np.ndarray,
    *,
    sigma: float = 1.0,
    label_gain: np.ndarray | None = None,
) -> Objective:
    """FAMOL's loss for ``LambdaMARTRanker.fit(objective=...)``: per row,
    ``alpha * grad(click LambdaRank) + (1 - alpha) * grad(LLM LambdaRank)``
    (Hessians likewise), over whichever rows the engine trains on."""

    def for_rows(rows: np.ndarray) -> Gradients:
        offsets = offsets_from_qid(qid[rows])
        pad = Padded.from_offsets(offsets)
        a = alpha[rows]
        # The labels are fixed: each source's pairs are listed once for all rounds.
        click_pairs, llm_pairs = (
            LambdaRankPairs.build(y[rows], offsets, padded=pad, label_gain=label_gain)
            for y in (y_click, y_llm)
        )

        def gradients(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            g_click, h_click = click_pairs.gradients(scores, sigma)
            g_llm, h_llm = llm_pairs.gradients(scores, sigma)
            grad = a * g_click + (1 - a) * g_llm
            hess = a * h_click + (1 - a) * h_llm
            return grad, np.maximum(hess, 1e-9)

        return gradients

    return for_rows
