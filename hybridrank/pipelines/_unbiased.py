"""Unbiased LambdaMART on raw clicks (``train gbdt`` with ``label: clicks``).

The model trains on the impression rows themselves: one group per session
(the result list as it was shown), the click (0/1) as the label. Two ways to
take the position bias out (``unbiased.propensity``):

- ``harvest`` (default): examination by position is estimated from the log's
  own interventions (pairs the logging ranker showed at more than one
  position; :func:`~hybridrank.labels.harvest_examination`), then LambdaMART
  trains with each click's gain divided by its position's examination
  (propensity-weighted LambdaRank through the ranker's custom-objective hook,
  either engine).
- ``engine``: the shown position goes to the engine, which learns the biases
  inside training (XGBoost ``lambdarank_unbiased``; LightGBM's position
  column). Its estimates move with the model's current scores and the pairs
  sampled in the last round.
- ``none``: the same LambdaRank over sessions with every click's gain 1: no
  position correction, the baseline the other two are measured against.

Each session's NDCG is normalised by its own ideal DCG, so in a session
with one click the click's weight divides back out: the propensities weigh
clicks against each other within a session (a click at position 5 counts
more than one at position 1 beside it). Normalising by the clicks' unweighted
ideal DCG instead (the plain inverse-propensity estimate) ranked far worse
on the NFCorpus world (0.507 against 0.585 NDCG@10): a handful of clicks low
on the page, weighted up to 1 / min_propensity, dominate the gradients.

Features are joined per (qid, docid) from the candidate table.

Click features are left out by default: an impression row's own click is
inside every click aggregate of its (query, document) pair, so a model given
``qd_ctr`` learns to read its label back (and explains the clicks with the
CTR feature, which carries the position bias in it, instead of with the
position). ``unbiased.click_features: true`` keeps them, knowingly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hybridrank import columns as C
from hybridrank._config import config_from_dict, config_to_dict
from hybridrank._grouping import Padded, offsets_from_qid
from hybridrank.data import Dataset
from hybridrank.ensemble import LambdaRankPairs
from hybridrank.errors import ConfigError, DataFormatError
from hybridrank.features import CLICK_FEATURES
from hybridrank.gbdt import Gradients, LambdaMARTConfig, LambdaMARTRanker, Objective
from hybridrank.labels import harvest_examination, make_click_model

logger = logging.getLogger(__name__)

#: The score column of unbiased LambdaMART in reports.
UNBIASED_SYSTEM = "gbdt_unbiased"
#: How the position bias is taken out: see the module docstring.
PROPENSITIES = ("harvest", "engine", "none")
#: The column of harvested examination in position-bias tables.
HARVESTED = "harvested"
HARVEST_SOURCE = (
    "examination harvested from the log's interventions (pairs shown at several positions), "
    "position 1 = 1; the clicks' propensities in training"
)


@dataclass(frozen=True)
class UnbiasedConfig:
    """Unbiased LambdaMART on raw clicks (``label: clicks``).

    Attributes:
        max_position: Impressions shown below this position are left out of
            training (counted and logged); the learned biases cover 1..this.
        click_features: Keep the click features (``click`` group) as model
            inputs. They contain each training row's own click (a label
            leak); off by default.
        propensity: ``harvest`` (examination from the log's interventions,
            clicks weighted by its inverse), ``engine`` (the engine learns
            the biases inside training) or ``none`` (no correction).
        min_propensity: ``harvest`` only: propensities are clipped from
            below at this value, bounding any one click's weight.
    """

    max_position: int = 10
    click_features: bool = False
    propensity: str = "harvest"
    min_propensity: float = 0.05

    def __post_init__(self) -> None:
        if self.max_position < 1:
            raise ConfigError(f"unbiased.max_position must be >= 1, got {self.max_position}")
        if self.propensity not in PROPENSITIES:
            raise ConfigError(
                f"unbiased.propensity must be one of {PROPENSITIES}, got {self.propensity!r}"
            )
        if not 0 < self.min_propensity <= 1:
            raise ConfigError(
                f"unbiased.min_propensity must be in (0, 1], got {self.min_propensity}"
            )
        if self.propensity == "harvest" and self.max_position < 2:
            raise ConfigError("unbiased.propensity harvest needs unbiased.max_position >= 2")

    @classmethod
    def from_dict(cls, values: Any) -> UnbiasedConfig:
        return config_from_dict(cls, values, "unbiased")

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)


def unbiased_features(features: list[str], config: UnbiasedConfig) -> list[str]:
    """``features`` without the click features (unless ``config.click_features``)."""
    if config.click_features:
        return features
    kept = [f for f in features if f not in CLICK_FEATURES]
    dropped = len(features) - len(kept)
    if dropped:
        logger.info(
            "label clicks: %d click features left out (they hold the label's own click; "
            "unbiased.click_features: true keeps them)",
            dropped,
        )
    if not kept:
        raise DataFormatError(
            "label clicks: no features left once the click features are left out; add "
            "non-click features (text, dataset, semantic) or set unbiased.click_features: true"
        )
    return kept


def impression_rows(
    dataset: Dataset, table: pd.DataFrame, features: list[str], config: UnbiasedConfig
) -> pd.DataFrame:
    """The log's impressions with the candidates' features, by session then position.

    Columns: ``session_id, qid, docid, position, click`` and ``features``.
    Rows below ``max_position`` are dropped and counted; a shown pair that is
    not a candidate is an error.
    """
    log = dataset.impressions
    if log is None:
        raise DataFormatError(
            "label clicks trains on the impression log; the dataset has none",
            path=dataset.path,
        )
    keep = log[[C.SESSION_ID, C.QID, C.DOCID, C.POSITION, C.CLICK]]
    below = int((keep[C.POSITION] > config.max_position).sum())
    if below:
        logger.info(
            "label clicks: %d of %d impressions shown below position %d left out",
            below,
            len(keep),
            config.max_position,
        )
        keep = keep[keep[C.POSITION] <= config.max_position]
    cand = table[[C.QID, C.DOCID, *features]]
    rows = keep.merge(cand, on=[C.QID, C.DOCID], how="left", validate="m:1", indicator=True)
    missing = rows["_merge"] != "both"
    if missing.any():
        first = rows.loc[missing].iloc[0]
        raise DataFormatError(
            f"{int(missing.sum())} impressions show a pair that is not a candidate "
            f"(first: qid {first[C.QID]!r}, docid {first[C.DOCID]!r})",
            path=dataset.path,
        )
    rows = rows.drop(columns="_merge")
    return rows.sort_values([C.SESSION_ID, C.POSITION], kind="stable").reset_index(drop=True)


def fit_unbiased(
    rows: pd.DataFrame,
    features: list[str],
    config: LambdaMARTConfig,
    options: UnbiasedConfig | None = None,
) -> LambdaMARTRanker:
    """Unbiased LambdaMART on impression rows: groups are sessions, labels clicks.

    ``rows`` as :func:`impression_rows` gives them (sessions contiguous, by
    position). With ``options.propensity == "harvest"`` the examination curve
    is estimated from ``rows`` themselves, so a fold's model never sees the
    clicks of another fold. The ranker's ``position_bias_`` is the curve it
    corrected for (a position no shown pair links to position 1 takes the
    estimate above it), before clipping at ``min_propensity``.

    With ``harvest`` and ``none`` the loss is the custom LambdaRank over
    sessions, so ``gbdt.objective`` and ``gbdt.label_gain`` do not apply
    (a warning says so when they are set).
    """
    options = options or UnbiasedConfig()
    click = rows[C.CLICK].to_numpy(dtype=np.int32)
    session = rows[C.SESSION_ID].to_numpy()
    if options.propensity == "engine":
        return LambdaMARTRanker(config).fit(
            rows[features], click, qid=session, position=rows[C.POSITION].to_numpy()
        )
    ignored = [name for name in ("objective", "label_gain") if getattr(config, name) is not None]
    if ignored:
        logger.warning(
            "unbiased.propensity %s trains its own LambdaRank over sessions: gbdt.%s ignored "
            "(propensity: engine uses the engine's objective)",
            options.propensity, " and gbdt.".join(ignored),
        )  # fmt: skip
    curve: pd.Series | None = None
    gain = click.astype(np.float64)
    if options.propensity == "harvest":
        try:
            harvested = harvest_examination(rows, options.max_position).curve
        except DataFormatError as err:
            raise DataFormatError(
                f"{err.reason}; or set unbiased.propensity: engine (the engine learns the "
                f"biases) or none (no correction)",
                path=err.path,
                row=err.row,
                column=err.column,
            ) from err
        # A position no shown pair links to position 1 takes the nearest estimate above it.
        curve = harvested.ffill().fillna(1.0)
        position = np.minimum(rows[C.POSITION].to_numpy(dtype=np.int64), curve.shape[0])
        gain = click / np.maximum(curve.to_numpy()[position - 1], options.min_propensity)
    ranker = LambdaMARTRanker(config).fit(
        rows[features], click, qid=session, objective=propensity_objective(session, click, gain)
    )
    ranker.position_bias_ = None if curve is None else curve.rename(HARVESTED)
    ranker.position_bias_source_ = None if curve is None else HARVEST_SOURCE
    return ranker


def propensity_objective(session: np.ndarray, click: np.ndarray, gain: np.ndarray) -> Objective:
    """LambdaRank over sessions with each click's gain given (click / propensity).

    Pairs are (clicked, unclicked) rows of a session; each pair's weight is
    the change of the session's propensity-weighted NDCG when the two swap.
    """

    def objective(index: np.ndarray) -> Gradients:
        offsets = offsets_from_qid(session[index])
        padded = Padded.from_offsets(offsets)
        labels = click[index].astype(np.float64)
        gains = gain[index]

        pairs = LambdaRankPairs.build(labels, offsets, gain=gains, padded=padded)

        def gradients(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            grad, hess = pairs.gradients(scores)
            # Rows in no pair (sessions without a click) have no curvature.
            return grad, np.maximum(hess, 1e-9)

        return gradients

    return objective


def pbm_examination(log: pd.DataFrame, max_position: int) -> pd.Series:
    """Examination by position of a PBM fitted by EM on ``log``, position 1 = 1; NaN at a
    position the log never shows (EM leaves its starting value there, not an estimate)."""
    model = make_click_model("pbm").fit(log[log[C.POSITION] <= max_position])
    exam = np.asarray(model.examination_, dtype=np.float64)[:max_position]
    exam = exam / exam[0] if exam[0] > 0 else exam
    shown = np.zeros(exam.shape[0], dtype=bool)
    positions = log[C.POSITION].to_numpy()
    shown[np.unique(positions[(positions >= 1) & (positions <= exam.shape[0])]) - 1] = True
    exam = np.where(shown, exam, np.nan)
    return pd.Series(
        exam, index=pd.RangeIndex(1, exam.shape[0] + 1, name="position"), name="pbm_examination"
    )


def position_bias_table(
    learned: dict[str, pd.Series | None],
    pbm: pd.Series | None = None,
    true: tuple[float, ...] | None = None,
) -> pd.DataFrame:
    """Learned position biases beside the PBM's examination curve (and a known true curve).

    Returns:
        One row per position: a column per engine (``xgboost``, ``lightgbm``),
        ``pbm_examination``, ``true_examination`` when given; every curve
        normalised to position 1.
    """
    columns = {name: s for name, s in learned.items() if s is not None}
    if pbm is not None:
        columns["pbm_examination"] = pbm
    if true is not None:
        t = np.asarray(true, dtype=np.float64)
        columns["true_examination"] = pd.Series(
            t / t[0], index=pd.RangeIndex(1, t.shape[0] + 1, name="position")
        )
    frame = pd.DataFrame(columns)
    frame.index.name = "position"
    return frame


def write_position_bias(frame: pd.DataFrame, directory: Path, title: str) -> None:
    """``position_bias.csv``, ``position_bias.md`` and ``position_bias.png`` in ``directory``."""
    frame.to_csv(directory / "position_bias.csv", float_format="%.4f")
    (directory / "position_bias.md").write_text(
        f"{title}\n\n" + frame.to_markdown(floatfmt=".3f") + "\n"
    )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name in frame.columns:
        style = "--" if "examination" in name else "-o"
        ax.plot(frame.index, frame[name], style, label=name, markersize=4)
    ax.set_xlabel("shown position")
    ax.set_ylabel("bias / examination (position 1 = 1)")
    ax.set_title(title, fontsize=9)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(directory / "position_bias.png", dpi=110)
    plt.close(fig)
