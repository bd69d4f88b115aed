"""Graded click labels for LambdaMART from a click model (or raw CTR, the naive baseline)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from hybridrank import columns as C
from hybridrank._config import config_from_dict, config_to_dict
from hybridrank.errors import ConfigError
from hybridrank.labels._click_models import CLICK_MODELS, make_click_model

logger = logging.getLogger(__name__)

LABEL_SOURCES = ("click_model", "ctr")


@dataclass(frozen=True)
class ClickLabelConfig:
    """How click labels are derived.

    Attributes:
        source: ``click_model`` (relevance estimated by a fitted click model,
            position bias removed) or ``ctr`` (raw click-through rate, the naive
            baseline that ignores position bias).
        click_model: ``pbm``, ``dbn`` or ``cascade`` (for ``click_model``).
        click_model_params: Keyword arguments of the click model, for example
            the Beta prior ``{prior_alpha: 1, prior_beta: 4}``.
        thresholds: Increasing cut points on the estimate in [0, 1]; a pair
            gets grade ``g`` = the number of thresholds it reaches, so three
            thresholds give grades 0-3.
        min_impressions: Pairs shown fewer times get no click label (NaN).
    """

    source: str = "click_model"
    click_model: str = "pbm"
    click_model_params: Mapping[str, Any] = field(
        default_factory=lambda: {"prior_alpha": 1.0, "prior_beta": 4.0}
    )
    thresholds: tuple[float, ...] = (0.15, 0.35, 0.6)
    min_impressions: int = 1

    def __post_init__(self) -> None:
        if self.source not in LABEL_SOURCES:
            raise ConfigError(f"labels.source must be one of {LABEL_SOURCES}, got {self.source!r}")
        if self.click_model not in CLICK_MODELS:
            raise ConfigError(
                f"labels.click_model must be one of {sorted(CLICK_MODELS)}, got {self.click_model!r}"
            )
        if not self.thresholds or any(
            b <= a for a, b in zip(self.thresholds, self.thresholds[1:], strict=False)
        ):
            raise ConfigError(
                f"labels.thresholds must be increasing and non-empty, got {self.thresholds}"
            )
        if self.min_impressions < 1:
            raise ConfigError("labels.min_impressions must be >= 1")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> ClickLabelConfig:
        return config_from_dict(cls, values, "labels")

    def to_dict(self) -> dict[str, Any]:
        d = config_to_dict(self)
        d["click_model_params"] = dict(self.click_model_params)
        return d


@dataclass(frozen=True)
class ClickLabels:
    """Click labels of candidate rows.

    Attributes:
        grade: Graded label per candidate row; NaN where the pair was never
            shown (or shown fewer than ``min_impressions`` times).
        estimate: The underlying relevance estimate in [0, 1] (NaN likewise).
        impressions: Times each pair was shown.
        model: The fitted click model (None for ``ctr``).
    """

    grade: np.ndarray
    estimate: np.ndarray
    impressions: np.ndarray
    model: Any


def click_labels(
    candidates: pd.DataFrame, log: pd.DataFrame, config: ClickLabelConfig | None = None
) -> ClickLabels:
    """Derive graded click labels for the rows of a candidate table from a training log.

    A row never shown gets no label (NaN, not 0): the log says nothing about it.
    """
    config = config or ClickLabelConfig()
    shown = log.groupby([C.QID, C.DOCID], sort=False).agg(
        _imp=(C.CLICK, "size"), _clicks=(C.CLICK, "sum")
    )
    keys = pd.MultiIndex.from_arrays([candidates[C.QID], candidates[C.DOCID]])
    stats = shown.reindex(keys)
    impressions = stats["_imp"].fillna(0).to_numpy(dtype=np.float64)
    if config.source == "ctr":
        estimate = (stats["_clicks"] / stats["_imp"]).to_numpy(dtype=np.float64)
        model = None
    else:
        model = make_click_model(config.click_model, **dict(config.click_model_params)).fit(log)
        estimate = np.asarray(model.relevance(candidates[[C.QID, C.DOCID]]), dtype=np.float64)
    labelled = impressions >= config.min_impressions
    estimate = np.where(labelled, estimate, np.nan)
    grade = np.where(
        labelled,
        np.searchsorted(np.asarray(config.thresholds), np.nan_to_num(estimate), side="right"),
        np.nan,
    )
    logger.info(
        "click labels: %d of %d candidate rows labelled; grade counts %s",
        int(labelled.sum()),
        len(candidates),
        np.unique(grade[labelled], return_counts=True),
    )
    return ClickLabels(
        grade=grade.astype(np.float64), estimate=estimate, impressions=impressions, model=model
    )
