"""Unbiased LambdaMART on raw clicks: the shown position, and the position biases the engines learn.

XGBoost (``lambdarank_unbiased``, Hu et al., WWW 2019) learns, for every
position, a bias of clicked (``ti+``) and of unclicked (``tj-``) documents and
stores them in the booster's JSON config; the position is the row's index
within its query group, so the rows of a group must be ordered by shown
position. ``ti+`` normalised to position 1 estimates examination(p) /
examination(1).

LightGBM (>= 4.1, ``Dataset(position=...)``) learns an additive score bias per
position id (regularised by ``lambdarank_position_bias_regularization``) and
does not expose it through its API: it only writes it to its debug log. The
ranker reads that log during training; ``exp(b_p - b_1)`` is reported as a
*derived* examination ratio (the biases live on the pairwise-logit scale).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from hybridrank.errors import DataFormatError

logger = logging.getLogger(__name__)

#: XGBoost's defaults for unbiased LambdaMART here (``gbdt.params`` overrides them):
#: every clicked row is paired with one sampled row of its group (``mean``), not only
#: with the current model's top k, and the paper's L2-style bias norm (estimates
#: are ``sqrt`` of the loss ratios).
XGBOOST_UNBIASED: dict[str, Any] = {
    "lambdarank_unbiased": True,
    "lambdarank_pair_method": "mean",
    "lambdarank_num_pair_per_sample": 1,
    "lambdarank_bias_norm": 1.0,
}
XGBOOST_SOURCE = "xgboost ti+ (lambdarank_unbiased), normalised to position 1"
LIGHTGBM_SOURCE = (
    "lightgbm additive position bias b_p (debug log), shown as exp(b_p - b_1): derived, "
    "not an examination probability the engine estimates"
)


def positions(position: npt.ArrayLike, n_rows: int) -> np.ndarray:
    """Shown positions as int64 >= 1, shape ``(n_rows,)``."""
    arr = np.asarray(position)
    if arr.shape != (n_rows,):
        raise ValueError(f"position has shape {arr.shape}; expected ({n_rows},)")
    as_float = arr.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(as_float) | (as_float < 1) | (as_float != np.round(as_float)))
    if bad.size:
        raise DataFormatError(
            f"{bad.size} shown positions are not integers >= 1 (first {arr[bad[0]]!r})",
            row=int(bad[0]),
            column="position",
        )
    return as_float.astype(np.int64)


def order_by_position(offsets: np.ndarray, position: np.ndarray) -> np.ndarray:
    """Row order putting each group's rows by shown position (stable), groups kept in place."""
    group = np.repeat(np.arange(offsets.shape[0] - 1), np.diff(offsets))
    return np.lexsort((position, group))


def gapped_groups(offsets: np.ndarray, position: np.ndarray) -> int:
    """Groups whose sorted positions are not 1..n (XGBoost would misplace their rows)."""
    index = np.arange(position.shape[0]) - np.repeat(offsets[:-1], np.diff(offsets)) + 1
    wrong = position != index
    group = np.repeat(np.arange(offsets.shape[0] - 1), np.diff(offsets))
    return int(np.unique(group[wrong]).size)


def xgboost_position_bias(booster: Any, max_position: int) -> pd.Series | None:
    """``ti+`` of an unbiased XGBoost booster for positions 1..max_position, position 1 = 1."""
    objective = json.loads(booster.save_config())["learner"]["objective"]
    raw = objective.get("ti+")
    if not raw:
        return None
    ti = np.asarray(raw, dtype=np.float64)[:max_position]
    if ti[0] <= 0:
        return None
    return pd.Series(
        ti / ti[0], index=pd.RangeIndex(1, ti.shape[0] + 1, name="position"), name="xgboost"
    )


class _LogCapture:
    """A LightGBM logger keeping every line (LightGBM routes its C++ log here)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, msg: str) -> None:
        self.lines.append(msg)

    def warning(self, msg: str) -> None:
        self.lines.append(msg)
        logger.debug("lightgbm: %s", msg.strip())


@contextlib.contextmanager
def lightgbm_log() -> Iterator[_LogCapture]:
    """Capture LightGBM's log for one training, then restore the logger registered before.

    ``lightgbm.register_logger`` is process-wide: a LightGBM training in another
    thread meanwhile would log here too.
    """
    import lightgbm as lgb
    from lightgbm import basic

    before = (
        getattr(basic, "_LOGGER", None),
        getattr(basic, "_INFO_METHOD_NAME", "info"),
        getattr(basic, "_WARNING_METHOD_NAME", "warning"),
    )
    capture = _LogCapture()
    lgb.register_logger(capture)
    try:
        yield capture
    finally:
        if before[0] is not None:
            lgb.register_logger(
                before[0], info_method_name=before[1], warning_method_name=before[2]
            )


_BIAS_LINE = re.compile(r"^\s*(\d+)\s+(-?[0-9.eE+-]+)\s*$")


def lightgbm_position_bias(lines: list[str], max_position: int) -> pd.Series | None:
    """``exp(b_p - b_1)`` from the last position-bias table in LightGBM's debug log.

    Position ids are the 0-based positions the ranker passed (shown position - 1).
    """
    text = [line.replace("[LightGBM] [Debug]", "") for line in lines]
    heads = [i for i, line in enumerate(text) if "bias_factor" in line]
    if not heads:
        return None
    values: dict[int, float] = {}
    for line in text[heads[-1] + 1 :]:
        match = _BIAS_LINE.match(line)
        if match is None:
            break
        values[int(match.group(1))] = float(match.group(2))
    if 0 not in values:
        return None
    ids = [p for p in sorted(values) if p < max_position]
    b = np.array([values[p] for p in ids])
    return pd.Series(
        np.exp(b - values[0]),
        index=pd.Index([p + 1 for p in ids], name="position"),
        name="lightgbm",
    )
