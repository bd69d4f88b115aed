"""FAMOL: frequency-aware multi-objective LambdaMART (one model, both losses, weighted per query)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from hybridrank._config import config_from_dict, config_to_dict
from hybridrank._grouping import Padded, offsets_from_qid
from hybridrank.ensemble._gates import SigmoidGate
from hybridrank.ensemble._lambdarank import lambdarank_gradients
from hybridrank.gbdt import LambdaMARTConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FAMOLConfig:
    """Frequency-aware multi-objective learning.

    Attributes:
        centre: alpha(f) = sigmoid(slope * (log1p(f) - centre)) weights the click
            loss of a query with f sessions; 1 - alpha weights its LLM loss.
        slope: See ``centre``.
        mode: ``objective`` (a custom LightGBM objective summing the two
            weighted LambdaRank gradients) or ``label_mixing`` (the shortcut:
            one label per row, the alpha-weighted mix of both labels, rounded;
            the LLM label where no click label exists).
        sigma: LambdaRank sigmoid steepness.
        gbdt: Tree parameters (engine must be lightgbm for ``objective``).
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

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> FAMOLConfig:
        values = dict(values or {})
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


class FAMOLRanker:
    """One LambdaMART trained on click and LLM labels at once, weighted by query frequency.

    ``fit(X, y_click, y_llm, *, qid, freq)``: ``y_click`` may be NaN (rows never
    shown); such rows take part only in the LLM loss.
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
        import lightgbm as lgb

        cfg = self.config or FAMOLConfig()
        q = np.asarray(qid)
        offsets = offsets_from_qid(q)
        yc = np.asarray(y_click, dtype=np.float64)
        yl = np.asarray(y_llm, dtype=np.float64)
        a = self.alpha(freq)
        Xa = (
            X.to_numpy(dtype=np.float32)
            if isinstance(X, pd.DataFrame)
            else np.asarray(X, dtype=np.float32)
        )
        self.feature_names_ = (
            list(X.columns)
            if isinstance(X, pd.DataFrame)
            else [f"f{i}" for i in range(Xa.shape[1])]
        )
        g = cfg.gbdt
        params: dict[str, Any] = {
            "learning_rate": g.learning_rate,
            "num_leaves": g.num_leaves,
            "max_depth": g.max_depth,
            "min_data_in_leaf": g.min_child_samples,
            "feature_fraction": g.colsample,
            "bagging_fraction": g.subsample,
            "bagging_freq": 1 if g.subsample < 1 else 0,
            "lambda_l2": g.reg_lambda,
            "seed": g.seed,
            "deterministic": True,
            "verbose": -1,
            **({"num_threads": g.n_jobs} if g.n_jobs else {}),
            **dict(g.params),
        }
        if cfg.mode == "label_mixing":
            mixed = np.where(np.isnan(yc), yl, np.round(a * np.nan_to_num(yc) + (1 - a) * yl))
            keep = ~np.isnan(mixed)
            params.update(
                {"objective": "lambdarank", "label_gain": [float(2**i - 1) for i in range(32)]}
            )
            data = lgb.Dataset(
                Xa[keep], label=mixed[keep], group=np.diff(offsets_from_qid(q[keep]))
            )
        elif cfg.mode == "objective":
            pad = Padded.from_offsets(offsets)
            sigma = cfg.sigma

            def objective(preds: np.ndarray, _data: Any) -> tuple[np.ndarray, np.ndarray]:
                g_click, h_click = lambdarank_gradients(preds, yc, offsets, sigma=sigma, padded=pad)
                g_llm, h_llm = lambdarank_gradients(preds, yl, offsets, sigma=sigma, padded=pad)
                grad = a * g_click + (1 - a) * g_llm
                hess = a * h_click + (1 - a) * h_llm
                return grad, np.maximum(hess, 1e-9)

            params["objective"] = objective
            data = lgb.Dataset(Xa, label=np.nan_to_num(yl), group=np.diff(offsets))
        else:
            raise ValueError(f"famol.mode must be 'objective' or 'label_mixing', got {cfg.mode!r}")
        self.booster_ = lgb.train(params, data, num_boost_round=g.n_estimators)
        return self

    def predict(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        Xa = (
            X.to_numpy(dtype=np.float32)
            if isinstance(X, pd.DataFrame)
            else np.asarray(X, dtype=np.float32)
        )
        return np.asarray(self.booster_.predict(Xa), dtype=np.float64)
