"""Data scheduling: staged training on the two label sources (GBDT continues boosting)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from hybridrank._config import as_mapping, config_from_dict, config_to_dict
from hybridrank._estimator import ConfigParams
from hybridrank.errors import ConfigError
from hybridrank.gbdt import LambdaMARTConfig, LambdaMARTRanker

ORDERS = ("llm_then_click", "click_then_llm")


@dataclass(frozen=True)
class SchedulingConfig:
    """Staged training.

    Attributes:
        order: ``llm_then_click`` (stage 1 on LLM labels of every query, stage 2
            continues on click labels) or ``click_then_llm``.
        click_min_freq: Only queries with at least this many sessions use their
            click labels in the click stage (rare queries' clicks are noise).
        stage1_rounds: Boosting rounds of the first stage.
        stage2_rounds: Rounds added by the second stage.
        gbdt: Tree parameters (its ``n_estimators`` and early stopping are
            replaced by the stage rounds).
    """

    order: str = "llm_then_click"
    click_min_freq: int = 3
    stage1_rounds: int = 100
    stage2_rounds: int = 100
    gbdt: LambdaMARTConfig = field(default_factory=LambdaMARTConfig)

    def __post_init__(self) -> None:
        if self.order not in ORDERS:
            raise ConfigError(f"scheduling.order must be one of {ORDERS}, got {self.order!r}")
        if self.stage1_rounds < 1 or self.stage2_rounds < 1:
            raise ConfigError("scheduling: stage rounds must be >= 1")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> SchedulingConfig:
        values = as_mapping(values, "scheduling")
        gbdt = LambdaMARTConfig.from_dict(values.pop("gbdt", None))
        base = config_from_dict(cls, values, "scheduling")
        return cls(**{**base.__dict__, "gbdt": gbdt})

    def to_dict(self) -> dict[str, Any]:
        d = config_to_dict(self)
        d["gbdt"] = self.gbdt.to_dict()
        return d


class DataSchedulingRanker(ConfigParams):
    """Stage 1 on one label source, stage 2 continues boosting on the other.

    ``fit(X, y_click, y_llm, *, qid, freq)``; rows without the stage's label
    (never-shown rows for click labels, rare queries in the click stage) sit
    that stage out.
    """

    def __init__(self, config: SchedulingConfig | None = None) -> None:
        self.config = config

    def fit(
        self,
        X: pd.DataFrame,
        y_click: npt.ArrayLike,
        y_llm: npt.ArrayLike,
        *,
        qid: npt.ArrayLike,
        freq: npt.ArrayLike,
    ) -> DataSchedulingRanker:
        cfg = self.config or SchedulingConfig()
        q = np.asarray(qid)
        yc = np.asarray(y_click, dtype=np.float64)
        yl = np.asarray(y_llm, dtype=np.float64)
        click_rows = ~np.isnan(yc) & (np.asarray(freq) >= cfg.click_min_freq)
        llm_rows = ~np.isnan(yl)
        stages = [(yl, llm_rows), (yc, click_rows)]
        if cfg.order == "click_then_llm":
            stages.reverse()
        model: LambdaMARTRanker | None = None
        for (y, rows), rounds in zip(stages, (cfg.stage1_rounds, cfg.stage2_rounds), strict=True):
            if not rows.any():
                continue
            stage_cfg = replace(cfg.gbdt, n_estimators=rounds, early_stopping_rounds=None)
            model = LambdaMARTRanker(stage_cfg).fit(X[rows], y[rows], qid=q[rows], init_model=model)
        if model is None:
            raise ValueError("data scheduling found no labelled rows in either stage")
        self.ranker_ = model
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        self.check_fitted("ranker_")
        return self.ranker_.predict(X)
