"""Click features and click labels from disjoint parts of the log.

A click label derived from the same sessions as the click features is a
threshold of the top feature: a model trained on both learns to read the
label back from the feature (validation NDCG near 1 after one round) and
nothing about relevance. With a split, training rows take their click
features from the *feature window* (the earlier sessions by time, or a seeded
half of the sessions) and their click labels from the *label window* (the
rest); scoring and serving use features from the whole log, as a model
trained at the cut and deployed later would.

A candidate the label window never showed gets label 0 when its query was
searched in that window (``unshown: zero``: the production ranker kept it off
the page; without it the model never sees a never-shown pair, and ranks the
pairs it has no click evidence for anywhere), or no label (``missing``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from hybridrank import columns as C
from hybridrank._config import config_from_dict, config_to_dict
from hybridrank.errors import ConfigError
from hybridrank.labels import split_sessions

logger = logging.getLogger(__name__)

#: Prefix of a click-feature column computed from the feature window (training rows use it).
TRAIN_PREFIX = "train:"
SPLIT_MODES = ("none", "time", "session")
UNSHOWN = ("zero", "missing")


@dataclass(frozen=True)
class ClickSplitConfig:
    """Which sessions give the click features and which the click labels.

    Attributes:
        mode: ``time`` (features from the earlier sessions, labels from the
            later ones; a seeded session split where the log has no usable
            timestamps), ``session`` (a seeded random half each), or ``none``
            (both from the whole log: the label leaks into the features).
        label_share: Share of the sessions in the label window.
        seed: Seed of a session split.
        unshown: Label of a candidate its query's label-window sessions never
            showed: ``zero`` or ``missing`` (no label, left out of training).
    """

    mode: str = "none"
    label_share: float = 0.5
    seed: int = 0
    unshown: str = "zero"

    def __post_init__(self) -> None:
        if self.mode not in SPLIT_MODES:
            raise ConfigError(f"click_split.mode must be one of {SPLIT_MODES}, got {self.mode!r}")
        if not 0 < self.label_share < 1:
            raise ConfigError(f"click_split.label_share must be in (0, 1), got {self.label_share}")
        if self.unshown not in UNSHOWN:
            raise ConfigError(f"click_split.unshown must be one of {UNSHOWN}, got {self.unshown!r}")

    @property
    def enabled(self) -> bool:
        return self.mode != "none"

    @classmethod
    def from_dict(cls, values: Any) -> ClickSplitConfig:
        return config_from_dict(cls, values, "click_split")

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)


def split_windows(
    log: pd.DataFrame, share_later: float, *, by_time: bool, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """(earlier, later, how): whole sessions, ``share_later`` of them in ``later``.

    By time where the sessions' first timestamps order them, else (or without
    ``by_time``) a seeded random split of the sessions.
    """
    if by_time and C.TS in log.columns:
        start = log.groupby(C.SESSION_ID, sort=False)[C.TS].min()
        if start.notna().all() and start.nunique() > 1:
            order = start.sort_values(kind="stable")
            n_later = round(share_later * len(order))
            late_sessions = set(order.index[len(order) - n_later :])
            mask = log[C.SESSION_ID].isin(late_sessions).to_numpy()
            return log.loc[~mask], log.loc[mask], "latest sessions by time"
        logger.warning("the log's timestamps cannot order its sessions: a seeded random split")
    earlier, later = split_sessions(log, test_size=share_later, seed=seed)
    return earlier, later, f"random sessions (seed {seed})"


def label_unshown(
    labels: np.ndarray, table: pd.DataFrame, label_log: pd.DataFrame, config: ClickSplitConfig
) -> np.ndarray:
    """``labels`` with 0 for never-shown candidates of queries searched in ``label_log``."""
    if config.unshown == "missing":
        return labels
    searched = table[C.QID].isin(pd.unique(label_log[C.QID])).to_numpy()
    out = labels.astype(np.float64, copy=True)
    out[np.isnan(out) & searched] = 0.0
    return out


def training_view(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` as a model trains on them: each click feature from the feature window.

    Without a split (no ``train:`` columns) the rows are returned unchanged.
    """
    prefixed = [c for c in rows.columns if c.startswith(TRAIN_PREFIX)]
    if not prefixed:
        return rows
    plain = {c: c[len(TRAIN_PREFIX) :] for c in prefixed}
    return rows.drop(columns=[p for p in plain.values() if p in rows.columns]).rename(
        columns=plain
    )
