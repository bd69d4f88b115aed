"""The frequency-gated stacker and the learned meta-ranker, fitted on out-of-fold scores only."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from hybridrank._atomic import write_text
from hybridrank._config import as_mapping, config_from_dict, config_to_dict, read_json
from hybridrank._estimator import ConfigParams
from hybridrank._grouping import offsets_from_qid
from hybridrank.ensemble._gates import (
    GATES,
    TUNABLE_GATES,
    Gate,
    GateSpace,
    HeadGate,
    fuse,
    gate_from_dict,
)
from hybridrank.ensemble._normalize import NORMALISERS
from hybridrank.ensemble._oof import OOFScores
from hybridrank.ensemble._selection import (
    SELECTIONS,
    GateCandidate,
    GateChoice,
    choose_trial,
    mean_ndcg,
    rise_ends,
)
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
        anchors: Further experts mixed in with tuned weights for every query
            (``fused = sum_a m_a * norm(anchor_a) + (1 - sum_a m_a) * gated``);
            in the experiment the names of systems (``famol``, ``gold_gbdt``),
            empty for the two-expert stacker. ``fit(..., anchors=[OOFScores,
            ...])`` takes their scores. The key ``anchor`` (one name or null)
            is read as a one-name list.
        anchor_weight_range: Search range of the anchors' total weight
            ``sum_a m_a``; with several anchors a trial also draws each one's
            share of it (``anchor_share_0..``, each in [0, 1], normalised).
        selection: Which trial's gate to keep: ``rising`` (default; among the
            trials within ``selection_se`` standard errors of the top one on
            the tuning queries, the one whose click weight rises most from
            rare to frequent queries, see :mod:`hybridrank.ensemble._selection`)
            or ``best`` (the top trial).
        selection_se: Standard errors of the paired per-query difference a
            trial may fall below the top one and still be kept by ``rising``.
    """

    gate: str = "sigmoid"
    normalisation: str = "zscore"
    n_trials: int = 100
    k: int = 10
    bucket_edges: tuple[float, ...] = (2, 20)
    seed: int = 0
    centre_range: tuple[float, float] = (0.0, 5.0)
    slope_range: tuple[float, float] = (0.0, 8.0)
    anchors: tuple[str, ...] = ()
    anchor_weight_range: tuple[float, float] = (0.0, 1.0)
    selection: str = "rising"
    selection_se: float = 1.0

    def __post_init__(self) -> None:
        if self.selection not in SELECTIONS:
            raise ConfigError(
                f"stacker.selection must be one of {list(SELECTIONS)}, got {self.selection!r}"
            )
        se = self.selection_se
        if isinstance(se, bool) or not (isinstance(se, int | float) and 0 <= se < 10):
            raise ConfigError(
                f"stacker.selection_se must be a number in [0, 10), got {self.selection_se!r}"
            )
        if len(set(self.anchors)) != len(self.anchors):
            raise ConfigError(f"stacker.anchors name an expert twice: {list(self.anchors)}")
        low, high = self.anchor_weight_range
        if not 0 <= low <= high <= 1:
            raise ConfigError(
                f"stacker.anchor_weight_range must be [low, high] in [0, 1], got {[low, high]}"
            )
        if self.gate not in TUNABLE_GATES:
            raise ConfigError(
                f"stacker.gate must be one of {list(TUNABLE_GATES)}, got {self.gate!r}"
            )
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
        v = as_mapping(values, "stacker")
        if "anchor" in v:
            if "anchors" in v:
                raise ConfigError("stacker: give anchors or anchor (one name), not both")
            one = v.pop("anchor")
            v["anchors"] = [] if one is None else [one]
        return config_from_dict(cls, v, "stacker")

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
    anchors: tuple[np.ndarray, ...] = ()

    def fused(self, gate: Gate, anchor_weights: Sequence[float] = ()) -> np.ndarray:
        """``sum_a w_a * anchor_a + (1 - sum_a w_a) * gated``; no weights: the gated mix."""
        anchors = self.anchors if anchor_weights else ()
        return fuse(gate(self.row_freq), self.click, self.llm, anchors=anchors,
                    anchor_weights=tuple(anchor_weights))  # fmt: skip

    def per_query(self, gate: Gate, anchor_weights: Sequence[float] = ()) -> np.ndarray:
        """NDCG@k per query (NaN: no relevant candidate)."""
        return ndcg_at_k(
            self.fused(gate, anchor_weights), self.labels, offsets=self.offsets, k=self.k
        )

    def value(self, gate: Gate, anchor_weights: Sequence[float] = ()) -> float:
        return mean_ndcg(self.per_query(gate, anchor_weights))


def prepare(
    click: npt.ArrayLike,
    llm: npt.ArrayLike,
    *,
    qid: npt.ArrayLike,
    freq: npt.ArrayLike,
    labels: npt.ArrayLike | None = None,
    normalisation: str = "zscore",
    k: int = 10,
    anchors: Sequence[npt.ArrayLike] = (),
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
        anchors=tuple(norm(a, offsets=offsets) for a in anchors),
    )


def suggest_gate(trial: Any, config: StackerConfig) -> Gate:
    """The gate a trial proposes (sigmoid centre and slope, or one weight per bucket)."""
    return GATES[config.gate].suggest(trial, config.space)


def suggest_anchor_weights(trial: Any, config: StackerConfig, n_anchors: int) -> tuple[float, ...]:
    """The anchors' weights a trial proposes: a total in ``anchor_weight_range``, split
    between several anchors by shares drawn in [0, 1] (``anchor_share_<i>``)."""
    if n_anchors == 0:
        return ()
    trial.suggest_float("anchor_weight", *config.anchor_weight_range)
    if n_anchors > 1:
        for i in range(n_anchors):
            trial.suggest_float(f"anchor_share_{i}", 0.0, 1.0)
    return anchor_weights_from_params(trial.params, n_anchors)


def anchor_weights_from_params(params: Mapping[str, float], n_anchors: int) -> tuple[float, ...]:
    """Per-anchor weights from a study's ``anchor_weight`` and ``anchor_share_<i>``."""
    if n_anchors == 0:
        return ()
    total = float(params["anchor_weight"])
    if n_anchors == 1:
        return (total,)
    shares = np.array([float(params[f"anchor_share_{i}"]) for i in range(n_anchors)])
    if shares.sum() <= 0:
        shares = np.ones(n_anchors)
    return tuple(float(w) for w in total * shares / shares.sum())


class FrequencyGatedStacker(ConfigParams):
    """Per-query normalised click-model and LLM-model scores mixed by g(freq).

    ``fused = g(freq) * norm(click) + (1 - g(freq)) * norm(llm)``, with the gate's
    parameters tuned by an Optuna study (TPE, seeded) for NDCG@k on labelled
    tuning queries. ``fit`` accepts :class:`OOFScores` only and checks them, so
    in-fold predictions cannot reach it.

    Attributes (after ``fit``):
        gate_: The tuned gate (the trial ``config.selection`` kept).
        anchor_weights_: The kept trial's anchor weights.
        best_value_: NDCG@k of the kept gate on the tuning rows.
        selection_: :class:`GateChoice`: the kept trial and the top one.
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
        anchors: Sequence[OOFScores] = (),
        head: tuple[float, float] | None = None,
        bucket: npt.ArrayLike | None = None,
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
            anchors: Out-of-fold scores of further experts mixed in with
                tuned weights (``config.anchor_weight_range``, see
                :class:`StackerConfig`).
            head: ``(min_frequency, weight)``: the head queries' click weight,
                fixed (chosen on held-out clicks, see
                :func:`~hybridrank.ensemble.tune_head_weight`); every trial's
                gate is ``HeadGate(gate, min_frequency, weight)``, so the study
                tunes the rest of the gate and the anchors around it. A study
                resumed from ``storage`` must have been run with the same head.
            bucket: The frequency bucket of each row (the dataset's). The gate
                selection then measures the rise between the tuning queries of
                the rarest and the most frequent bucket, as the report does;
                without it, at ``config.bucket_edges``.
        """
        import optuna

        anchors = tuple(anchors)
        for oof in (click, llm, *anchors):
            if not isinstance(oof, OOFScores):
                raise TypeError("the stacker is fitted on OOFScores only (out-of-fold predictions)")
            oof.check()
        if any(not np.array_equal(click.qid, o.qid) for o in (llm, *anchors)):
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
            anchors=[a.scores[mask] for a in anchors],
        )
        sampler = optuna.samplers.TPESampler(seed=cfg.seed)
        study = optuna.create_study(
            direction="maximize",
            sampler=sampler,
            storage=storage,
            study_name=study_name,
            load_if_exists=storage is not None,
        )
        # A resumed study must have scored its trials with the same fixed head weight.
        head_attr = None if head is None else [float(head[0]), float(head[1])]
        finished = [t for t in study.trials if t.state.is_finished()]
        if finished and study.user_attrs.get("head") != head_attr:
            raise ConfigError(
                f"stacker study {study.study_name!r}: its trials were scored with head weight "
                f"{study.user_attrs.get('head')} (min_frequency, weight), this fit asks for "
                f"{head_attr}; use another study name"
            )
        study.set_user_attr("head", head_attr)
        # ... and with the same gate kind and anchors: every finished trial is rebuilt for
        # the gate selection, and a trial of another shape has other parameters.
        shape = {"gate": cfg.gate, "anchors": len(anchors)}
        if finished and study.user_attrs.get("shape", shape) != shape:
            raise ConfigError(
                f"stacker study {study.study_name!r}: its trials tuned a {study.user_attrs['shape']} "
                f"stacker (gate kind, number of anchors), this fit asks for {shape}; use "
                "another study name"
            )
        study.set_user_attr("shape", shape)
        remaining = cfg.n_trials - len(finished)

        def with_head(gate: Gate) -> Gate:
            return gate if head is None else HeadGate(gate, *head)

        scored: dict[int, np.ndarray] = {}  # per-query NDCG of this run's trials, for the selection

        def objective(trial: Any) -> float:
            gate = with_head(suggest_gate(trial, cfg))
            per_query = data.per_query(gate, suggest_anchor_weights(trial, cfg, len(anchors)))
            scored[trial.number] = per_query
            return mean_ndcg(per_query)

        if remaining > 0:
            study.optimize(objective, n_trials=remaining)
        trials = {
            t.number: t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE
        }

        def trial_of(params: Mapping[str, Any]) -> tuple[Gate, tuple[float, ...]]:
            gate = with_head(gate_from_params(params, cfg))
            return gate, anchor_weights_from_params(params, len(anchors))

        candidates = []
        for number, t in trials.items():
            gate, weights = trial_of(t.params)
            # A trial of an earlier run of a resumed study is scored again.
            per_query = scored[number] if number in scored else data.per_query(gate, weights)
            candidates.append(GateCandidate(number, gate, per_query))
        starts = data.offsets[:-1]  # one row per query
        low, high = rise_ends(
            data.row_freq[starts], cfg.bucket_edges,
            None if bucket is None else np.asarray(bucket)[mask][starts],
        )  # fmt: skip
        self.selection_: GateChoice = choose_trial(
            candidates, study.best_trial.number, rule=cfg.selection, se=cfg.selection_se,
            low_freq=low, high_freq=high,
        )  # fmt: skip
        self.gate_, self.anchor_weights_ = trial_of(trials[self.selection_.trial].params)
        self.best_value_ = self.selection_.value
        self.study_ = study
        choice = self.selection_
        logger.info(
            "stacker: %s gate %s, tuning NDCG@%d (%s)",
            self.gate_.kind, self.gate_.params(), cfg.k, choice.describe(cfg.selection_se),
        )  # fmt: skip
        return self

    def save(self, path: str | Path) -> None:
        """Write the config and the tuned gate as JSON, whole or not at all."""
        self.check_fitted("gate_")
        cfg = self.config or StackerConfig()
        payload = {"config": cfg.to_dict(), "gate": self.gate_.to_dict(),
                   "anchor_weights": list(self.anchor_weights_),
                   "best_value": self.best_value_}  # fmt: skip
        if getattr(self, "selection_", None) is not None:
            payload["selection"] = self.selection_.to_dict()
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
        if "anchor_weights" in payload:
            weights = payload["anchor_weights"]
        else:  # saved before several anchors: one weight or null
            one = payload.get("anchor_weight")
            weights = [] if one is None else [one]
        if not isinstance(weights, list) or not all(
            isinstance(w, int | float) and 0 <= w <= 1 for w in weights
        ):
            raise DataFormatError(
                f"a saved stacker's anchor_weights must be a list of weights in [0, 1], "
                f"got {weights!r}",
                path=p,
            )
        stacker.anchor_weights_ = tuple(float(w) for w in weights)
        stacker.best_value_ = float(payload.get("best_value", float("nan")))
        if "selection" in payload:  # saved before the selection: none recorded
            try:
                stacker.selection_ = GateChoice.from_dict(payload["selection"], source="selection")
            except ConfigError as exc:
                raise DataFormatError(str(exc), path=p) from None
        return stacker

    def predict(
        self,
        click: npt.ArrayLike,
        llm: npt.ArrayLike,
        *,
        qid: npt.ArrayLike,
        freq: npt.ArrayLike,
        anchors: Sequence[npt.ArrayLike] = (),
    ) -> np.ndarray:
        """Fused scores; ``anchors``: the anchor experts' scores, as many and in the order
        they were fitted with."""
        self.check_fitted("gate_")
        weights = getattr(self, "anchor_weights_", ())
        if len(anchors) != len(weights):
            raise ValueError(
                f"this stacker was fitted with {len(weights)} anchor experts; pass their "
                f"scores as anchors= (got {len(anchors)})"
            )
        cfg = self.config or StackerConfig()
        data = prepare(
            click, llm, qid=qid, freq=freq, normalisation=cfg.normalisation, anchors=anchors
        )
        return data.fused(self.gate_, weights)


def gate_from_params(params: Mapping[str, float], config: StackerConfig) -> Gate:
    """The gate a stacker study trial's parameters describe (``centre``/``slope`` or ``w0..``)."""
    return GATES[config.gate].from_params(params, config.space)
