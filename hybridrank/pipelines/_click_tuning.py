"""The experiment's held-out click tuning of the head queries' click weight.

With ``experiment.click_tuning`` on, each run also holds out a share of the
log's sessions (the latest by time; a seeded draw where sessions carry no
usable timestamps), trains the stacker's experts and tunes its gate on the
other sessions as usual, and chooses the head queries' click weight on
the held-out clicks (:func:`~hybridrank.ensemble.tune_head_weight`). The run's
own models are then trained on the whole log, as a production model is
refitted after its settings were chosen, and its stacker is tuned on the
labelled queries with the head queries' weight fixed at that value (a
:class:`~hybridrank.ensemble.HeadGate`: the rarer queries take at most it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hybridrank import columns as C
from hybridrank._atomic import save_figure
from hybridrank._config import config_from_dict, config_to_dict
from hybridrank.data import Dataset
from hybridrank.ensemble import (
    HeadTuning,
    StackerConfig,
    make_gate,
    prepare,
    tune_head_weight,
)
from hybridrank.errors import ConfigError
from hybridrank.labels import make_click_model
from hybridrank.pipelines._click_eval import reach_positions
from hybridrank.pipelines._tables import anchor_scores

#: Click models whose examination curve can weight the click metric.
EXAMINATION_MODELS = ("pbm", "dbn")


@dataclass(frozen=True)
class ClickTuningConfig:
    """``experiment.click_tuning``: the head queries' click weight chosen on held-out clicks.

    Attributes:
        holdout: Share of the sessions held out of the tuning run's models.
        by_time: Hold out the latest sessions (else a seeded random draw,
            also the fallback when the log has no usable timestamps).
        seed: Seed of a random draw.
        min_frequency: Queries of at least this many sessions are head
            queries; None: the smallest frequency of the dataset's top bucket.
        grid: Head click weights tried, evenly spaced in [0, 1].
        min_sessions: Fewer clicked held-out sessions on head queries keep the tuned gate.
        max_p: The chosen weight must beat the tuned gate on the head queries'
            held-out clicks with p below this (sign-flip test over the head
            queries of the best weight of the grid, see
            :func:`~hybridrank.evaluate.max_gain_test`), else the tuned gate is
            kept; 1.0: any gain.
        click_model: The click model (``pbm`` or ``dbn``) fitted on the other
            sessions whose examination curve weights the click metric.
        k: Cut-off of the click metric (IPS-weighted DCG@k).
    """

    holdout: float = 0.2
    by_time: bool = True
    seed: int = 0
    min_frequency: float | None = None
    grid: int = 21
    min_sessions: int = 50
    max_p: float = 0.05
    click_model: str = "pbm"
    k: int = 10

    def __post_init__(self) -> None:
        if not 0 < self.holdout < 1:
            raise ConfigError(f"click_tuning.holdout must be in (0, 1), got {self.holdout}")
        if self.min_frequency is not None and not self.min_frequency >= 1:
            raise ConfigError(
                f"click_tuning.min_frequency must be >= 1 session or null, got {self.min_frequency}"
            )
        if self.grid < 2:
            raise ConfigError(f"click_tuning.grid must be >= 2, got {self.grid}")
        if self.min_sessions < 1:
            raise ConfigError(f"click_tuning.min_sessions must be >= 1, got {self.min_sessions}")
        if not 0 < self.max_p <= 1:
            raise ConfigError(f"click_tuning.max_p must be in (0, 1], got {self.max_p}")
        if self.click_model not in EXAMINATION_MODELS:
            raise ConfigError(
                f"click_tuning.click_model must be one of {list(EXAMINATION_MODELS)}, "
                f"got {self.click_model!r}"
            )
        if self.k < 1:
            raise ConfigError(f"click_tuning.k must be >= 1, got {self.k}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> ClickTuningConfig:
        return config_from_dict(cls, values, "click_tuning")

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)


def head_min_frequency(dataset: Dataset, config: ClickTuningConfig) -> float:
    """The configured head threshold, else the smallest frequency in the dataset's top bucket."""
    if config.min_frequency is not None:
        return float(config.min_frequency)
    splits = dataset.splits
    top = dataset.bucket_names[-1]
    freq = splits.loc[splits[C.BUCKET].astype(str) == top, C.FREQ]
    return max(float(freq.min()), 1.0) if len(freq) else float(splits[C.FREQ].max()) + 1.0


def examination_curve(log: pd.DataFrame, held: pd.DataFrame, click_model: str) -> np.ndarray:
    """The examination curve of ``click_model`` fitted on ``log``, long enough for ``held``.

    Positions deeper than the fitted curve take its last value.
    """
    curve = np.asarray(make_click_model(click_model).fit(log).examination_, dtype=np.float64)
    return reach_positions(curve, held)


def tune_on_held_out(
    scored: pd.DataFrame,
    run_info: Mapping[str, Any],
    held: pd.DataFrame,
    examination: np.ndarray,
    *,
    config: ClickTuningConfig,
    stacker: StackerConfig,
    min_frequency: float,
) -> HeadTuning:
    """The head click weight for the stacker a tuning run fitted (its gate and anchors in
    ``run_info``), scored on that run's out-of-fold expert scores ``scored``."""
    base = make_gate(run_info["gate_kind"], run_info["gate"])
    anchors: Mapping[str, float] = run_info.get("anchors", {})
    qid = scored[C.QID].to_numpy()
    data = prepare(
        scored["click_gbdt"].to_numpy(),
        scored[run_info["llm_model"]].to_numpy(),
        qid=qid,
        freq=scored[C.FREQ].to_numpy(),
        normalisation=stacker.normalisation,
        anchors=[anchor_scores(scored, name) for name in anchors],
    )
    return tune_head_weight(
        base, data, qid=qid, docid=scored[C.DOCID].to_numpy(), log=held,
        examination=examination, min_frequency=min_frequency,
        anchor_weights=tuple(anchors.values()), grid=config.grid, k=config.k,
        min_sessions=config.min_sessions, max_p=config.max_p,
    )  # fmt: skip


def curve_table(runs: Mapping[int, Mapping[str, Any]]) -> pd.DataFrame:
    """The click metric against the head weight, one row per (seed, weight).

    ``runs``: per seed, a run's ``click_tuning`` record (:meth:`HeadTuning.summary`
    plus ``curve``, the curve as ``{column: values}``).
    """
    frames = [pd.DataFrame(r["curve"]).assign(seed=seed) for seed, r in runs.items()]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame()
    out = pd.concat(frames, ignore_index=True)
    return out[["seed", *[c for c in out.columns if c != "seed"]]]


def summary_table(runs: Mapping[int, Mapping[str, Any]]) -> pd.DataFrame:
    """One row per seed: the head threshold, the chosen weight and the click metric."""
    rows = []
    for seed, r in runs.items():
        rows.append({"seed": seed, "head min sessions": r["min_frequency"],
                     "head queries": r["head_queries"],
                     "their clicked held-out sessions": r["held_out_sessions"],
                     "head weight set": r["weight"],
                     "click metric, tuned gate": r["base_value"],
                     "best weight": r.get("best_weight"), "its click metric": r["best_value"],
                     "p": r.get("p_value"),
                     "kept tuned gate because": r["kept_base"] or ""})  # fmt: skip
    return pd.DataFrame(rows)


def plot_click_tuning(runs: Mapping[int, Mapping[str, Any]], path: Path) -> None:
    """The click metric against the head queries' weight, one curve per seed, the chosen
    weight marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for seed, r in runs.items():
        curve = pd.DataFrame(r["curve"])
        if curve.empty:
            continue
        metric = curve.columns[1]
        (line,) = ax.plot(curve["weight"], curve[metric], label=f"seed {seed}")
        ax.axhline(r["base_value"], color=line.get_color(), ls=":", lw=1)
        if r["weight"] is not None:
            ax.plot([r["weight"]], [r["best_value"]], "o", color=line.get_color())
        elif r.get("best_weight") is not None:
            ax.plot([r["best_weight"]], [r["best_value"]], "o", mfc="none", color=line.get_color())
        ax.set_ylabel(f"{metric}, held-out sessions")
    ax.set_xlabel("click weight of the head queries")
    ax.set_title("head queries' held-out click metric by their click weight\n(dotted: the "
                 "label-tuned gate; dot: weight kept; ring: best, not significant)",
                 fontsize=8)  # fmt: skip
    if ax.get_legend_handles_labels()[0]:  # no seed had held-out clicks enough: no lines
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


__all__ = [
    "ClickTuningConfig",
    "curve_table",
    "examination_curve",
    "head_min_frequency",
    "plot_click_tuning",
    "summary_table",
    "tune_on_held_out",
]
