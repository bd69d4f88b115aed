"""The frequency-gated stacker and the learned meta-ranker, fitted on out-of-fold scores only."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from hybridrank._atomic import write_text
from hybridrank._config import config_from_dict, config_to_dict, read_json
from hybridrank._estimator import ConfigParams
from hybridrank._grouping import offsets_from_qid
from hybridrank.ensemble._gates import GATES, Gate, GateSpace, fuse, gate_from_dict
from hybridrank.ensemble._normalize import NORMALISERS
from hybridrank.ensemble._oof import OOFScores
from hybridrank.errors import ConfigError, DataFormatError
from hybridrank.evaluate import ndcg_at_k

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StackerConfig:
    """The frequency-gated stacker.

    Attributes:
        gate: ``sigmoid`` (in log frequency: centre and slope) or ``bucket``
            (a free weight per frequency bucket).
        normalisation: ``zscore`` or ``rank``, applied per query to each model's scores.
        n_trials: Optuna trials tuning the gate (TPE, seeded).
        k: NDCG cut-off the gate is tuned for.
        bucket_edges: Bucket edges of the ``bucket`` gate.
        seed: Seed of the sampler.
        centre_range: Search range of the sigmoid centre (in log1p sessions).
        slope_range: Search range of the sigmoid slope.
        anchor: A third expert mixed in with one tuned weight for every query
            (``fused = m * norm(anchor) + (1 - m) * gated``); in the experiment
            the name of a system (``famol``), None for the two-expert stacker.
            ``fit(..., anchor=OOFScores)`` takes its scores.
        anchor_weight_range: Search range of that weight m.
    """

    gate: str = "sigmoid"
    normalisation: str = "zscore"
    n_trials: int = 100
    k: int = 10
    bucket_edges: tuple[float, ...] = (2, 20)
    seed: int = 0
    centre_range: tuple[float, float] = (0.0, 5.0)
    slope_range: tuple[float, float] = (0.0, 8.0)
    anchor: str | None = None
    anchor_weight_range: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self) -> None:
        low, high = self.anchor_weight_range
        if not 0 <= low <= high <= 1:
            raise ConfigError(
                f"stacker.anchor_weight_range must be [low, high] in [0, 1], got {[low, high]}"
            )
        if self.gate not in GATES:
            raise ConfigError(f"stacker.gate must be one of {sorted(GATES)}, got {self.gate!r}")
        if self.normalisation not in NORMALISERS:
            raise ConfigError(f"stacker.normalisation must be one of {sorted(NORMALISERS)}")
        if self.n_trials < 1:
            raise ConfigError("stacker.n_trials must be >= 1")

    @property
    def space(self) -> GateSpace:
        """Where the gate's parameters are searched."""
        return GateSpace(self.centre_range, self.slope_range, self.bucket_edges)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> StackerConfig:
        return config_from_dict(cls, values, "stacker")

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)


@dataclass
class StackerData:
    """Everything a trial needs, precomputed once: normalised scores, frequencies, labels.

    A trial only computes ``g * click + (1 - g) * llm`` and one NDCG pass.
    """

    click: np.ndarray
    llm: np.ndarray
    row_freq: np.ndarray
    labels: np.ndarray
    offsets: np.ndarray
    k: int = 10
    cache: dict[str, Any] = field(default_factory=dict)
    anchor: np.ndarray | None = None

    def fused(self, gate: Gate, anchor_weight: float = 0.0) -> np.ndarray:
        gated = fuse(gate(self.row_freq), self.click, self.llm)
        if self.anchor is None or anchor_weight == 0.0:
            return gated
        return anchor_weight * self.anchor + (1.0 - anchor_weight) * gated

    def value(self, gate: Gate, anchor_weight: float = 0.0) -> float:
        v = ndcg_at_k(
            self.fused(gate, anchor_weight), self.labels, offsets=self.offsets, k=self.k
        )
        return float(np.nanmean(v)) if np.any(~np.isnan(v)) else 0.0


def prepare(
    click: npt.ArrayLike,
    llm: npt.ArrayLike,
    *,
    qid: npt.ArrayLike,
    freq: npt.ArrayLike,
    labels: npt.ArrayLike | None = None,
    normalisation: str = "zscore",
    k: int = 10,
    anchor: npt.ArrayLike | None = None,
) -> StackerData:
    """Normalise the models' scores per query once (rows of a query contiguous)."""
    offsets = offsets_from_qid(np.asarray(qid))
    norm = NORMALISERS[normalisation]
    y = (
        np.zeros(np.asarray(click).shape[0])
        if labels is None
        else np.asarray(labels, dtype=np.float64)
    )
    return StackerData(
        click=norm(click, offsets=offsets),
        llm=norm(llm, offsets=offsets),
        row_freq=np.asarray(freq, dtype=np.float64),
        labels=y,
        offsets=offsets,
        k=k,
        anchor=None if anchor is None else norm(anchor, offsets=offsets),
    )


def suggest_gate(trial: Any, config: StackerConfig) -> Gate:
    """The gate a trial proposes (sigmoid centre and slope, or one weight per bucket)."""
    return GATES[config.gate].suggest(trial, config.space)


class FrequencyGatedStacker(ConfigParams):
    """Per-query normalised click-model and LLM-model scores mixed by g(freq).

    ``fused = g(freq) * norm(click) + (1 - g(freq)) * norm(llm)``, with the gate's
    parameters tuned by an Optuna study (TPE, seeded) for NDCG@k on labelled
    tuning queries. ``fit`` accepts :class:`OOFScores` only and checks them, so
    in-fold predictions cannot reach it.

    Attributes (after ``fit``):
        gate_: The tuned gate.
        best_value_: NDCG@k of the tuned gate on the tuning rows.
        study_: The Optuna study.
    """

    def __init__(self, config: StackerConfig | None = None) -> None:
        self.config = config

    def fit(
        self,
        click: OOFScores,
        llm: OOFScores,
        *,
        freq: npt.ArrayLike,
        labels: npt.ArrayLike,
        rows: npt.ArrayLike | None = None,
        storage: str | None = None,
        study_name: str | None = None,
        anchor: OOFScores | None = None,
    ) -> FrequencyGatedStacker:
        """Tune the gate on the given rows (default all) of out-of-fold scores.

        Args:
            click: Out-of-fold scores of the click-supervised model.
            llm: Out-of-fold scores of the LLM-supervised model (same rows).
            freq: Query frequency per row.
            labels: Graded labels of the tuning rows.
            rows: Boolean mask of tuning rows (whole queries).
            storage: Optuna storage URL to keep the study in (resumable).
            study_name: Study name in that storage.
            anchor: Out-of-fold scores of a third expert mixed in with one
                tuned weight (``config.anchor_weight_range``).
        """
        import optuna

        for oof in (click, llm) if anchor is None else (click, llm, anchor):
            if not isinstance(oof, OOFScores):
                raise TypeError("the stacker is fitted on OOFScores only (out-of-fold predictions)")
            oof.check()
        if not np.array_equal(click.qid, llm.qid) or (
            anchor is not None and not np.array_equal(click.qid, anchor.qid)
        ):
            raise ValueError("the experts' scores are not aligned on the same rows")
        cfg = self.config or StackerConfig()
        mask = (
            np.ones(click.qid.shape[0], dtype=bool)
            if rows is None
            else np.asarray(rows, dtype=bool)
        )
        data = prepare(
            click.scores[mask],
            llm.scores[mask],
            qid=click.qid[mask],
            freq=np.asarray(freq)[mask],
            labels=np.asarray(labels)[mask],
            normalisation=cfg.normalisation,
            k=cfg.k,
            anchor=None if anchor is None else anchor.scores[mask],
        )
        sampler = optuna.samplers.TPESampler(seed=cfg.seed)
        study = optuna.create_study(
            direction="maximize",
            sampler=sampler,
            storage=storage,
            study_name=study_name,
            load_if_exists=storage is not None,
        )
        remaining = cfg.n_trials - len([t for t in study.trials if t.state.is_finished()])
        def objective(trial: Any) -> float:
            gate = suggest_gate(trial, cfg)
            if anchor is None:
                return data.value(gate)
            return data.value(gate, trial.suggest_float("anchor_weight", *cfg.anchor_weight_range))

        if remaining > 0:
            study.optimize(objective, n_trials=remaining)
        self.gate_ = gate_from_params(study.best_params, cfg)
        self.anchor_weight_: float | None = (
            None if anchor is None else float(study.best_params["anchor_weight"])
        )
        self.best_value_ = float(study.best_value)
        self.study_ = study
        logger.info(
            "stacker: %s gate %s, tuning NDCG@%d %.4f",
            cfg.gate,
            self.gate_.params(),
            cfg.k,
            self.best_value_,
        )
        return self

    def save(self, path: str | Path) -> None:
        """Write the config and the tuned gate as JSON, whole or not at all."""
        self.check_fitted("gate_")
        cfg = self.config or StackerConfig()
        payload = {"config": cfg.to_dict(), "gate": self.gate_.to_dict(),
                   "anchor_weight": self.anchor_weight_, "best_value": self.best_value_}  # fmt: skip
        write_text(path, json.dumps(payload, indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> FrequencyGatedStacker:
        """A stacker saved by :meth:`save`, ready to predict (no study attached)."""
        p = Path(path)
        payload = read_json(p, "stacker")
        if not isinstance(payload, dict) or not {"config", "gate"} <= set(payload):
            raise DataFormatError("a saved stacker needs 'config' and 'gate'", path=p)
        stacker = cls(StackerConfig.from_dict(payload["config"]))
        stacker.gate_ = gate_from_dict(payload["gate"], source=f"{p}: gate")
        weight = payload.get("anchor_weight")
        stacker.anchor_weight_ = None if weight is None else float(weight)
        stacker.best_value_ = float(payload.get("best_value", float("nan")))
        return stacker

    def predict(
        self,
        click: npt.ArrayLike,
        llm: npt.ArrayLike,
        *,
        qid: npt.ArrayLike,
        freq: npt.ArrayLike,
        anchor: npt.ArrayLike | None = None,
    ) -> np.ndarray:
        """Fused scores; ``anchor`` (the third expert's scores) exactly when fitted with one."""
        self.check_fitted("gate_")
        weight = getattr(self, "anchor_weight_", None)
        if (weight is None) != (anchor is None):
            raise ValueError(
                "this stacker was fitted with an anchor expert: pass its scores as anchor="
                if weight is not None
                else "this stacker was fitted without an anchor expert; drop anchor="
            )
        cfg = self.config or StackerConfig()
        data = prepare(
            click, llm, qid=qid, freq=freq, normalisation=cfg.normalisation, anchor=anchor
        )
        return data.fused(self.gate_, weight or 0.0)


def gate_from_params(params: Mapping[str, float], config: StackerConfig) -> Gate:
    """The gate a stacker study's best parameters describe (``centre``/``slope`` or ``w0..``)."""
    return GATES[config.gate].from_params(params, config.space)
