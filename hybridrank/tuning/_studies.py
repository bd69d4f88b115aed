"""Study definitions (YAML under studies/) and the Optuna runner: run, resume, report."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hybridrank import columns as C
from hybridrank._atomic import save_figure, write_text
from hybridrank._config import config_from_dict, in_file, read_yaml_mapping
from hybridrank.ensemble import Gate, GateChoice, mean_ndcg, rise_ends
from hybridrank.errors import ConfigError

logger = logging.getLogger(__name__)

KINDS = ("stacker", "gbdt", "famol")
#: Objectives a study can have: validation NDCG@10 (maximised) and, for a gbdt study, a
#: serving cost (minimised): ``latency`` (p50 ms of ranking ``latency_docs`` documents,
#: one thread) or ``size`` (leaves summed over the trees kept, ~ trees x leaves).
OBJECTIVES = ("ndcg", "latency", "size")
SAMPLERS = ("tpe", "nsga2")
#: The search-space keys each kind of study reads (``space: {key: [low, high]}``).
#: A gbdt study searches LambdaMARTConfig fields (either engine), so a trial's parameters
#: paste into ``gbdt:`` of ``studies/gbdt.yaml``.
SPACE_KEYS: dict[str, tuple[str, ...]] = {
    "stacker": ("centre", "slope"),
    "gbdt": ("learning_rate", "num_leaves", "min_child_samples", "colsample", "reg_lambda"),
    "famol": ("centre", "slope"),
}
#: LightGBM's names, as earlier gbdt studies spelt the space: read as the field they set.
GBDT_SPACE_ALIASES: dict[str, str] = {
    "min_data_in_leaf": "min_child_samples",
    "feature_fraction": "colsample",
    "lambda_l2": "reg_lambda",
}
#: Default search ranges of a gbdt study; learning_rate and reg_lambda on a log scale.
GBDT_SPACE: dict[str, tuple[float, float]] = {
    "learning_rate": (0.01, 0.3),
    "num_leaves": (4, 64),
    "min_child_samples": (5, 100),
    "colsample": (0.4, 1.0),
    "reg_lambda": (1e-3, 10.0),
}
_LOG_SCALE = ("learning_rate", "reg_lambda")
#: Default search ranges of a famol study (alpha's sigmoid).
FAMOL_SPACE: dict[str, tuple[float, float]] = {"centre": (0.0, 5.0), "slope": (0.0, 6.0)}


@dataclass(frozen=True)
class StudySpec:
    """A tuning study (``studies/*_study.yaml``).

    Attributes:
        kind: What is tuned: ``stacker`` (the gate), ``gbdt`` (LambdaMART
            hyperparameters, pruned on validation NDCG@10), ``famol`` (alpha's
            centre and slope).
        name: Study name in the storage.
        n_trials: Trials the study should have in the end (a resumed study
            runs only the missing ones).
        seed: TPE sampler seed.
        storage: Storage (see :func:`make_storage`); None: SQLite in the run directory.
        out: Run directory.
        dataset: A dataset directory the study runs on (its folds, buckets
            and tuning set); None simulates the experiment's click world.
        experiment: An experiment config (``studies/paper.yaml`` form) whose
            first seed's world, labels and tuning queries the study uses.
        space: Search ranges per parameter, ``{name: [low, high]}``; defaults per kind.
        heartbeat_interval: Seconds between heartbeats of a running trial on a
            database storage (PostgreSQL, MySQL); None turns heartbeats off.
        grace_period: Seconds without a heartbeat after which a trial counts
            as dead: the next worker marks it FAIL and enqueues it again.
        max_retry: How often a trial whose worker died is run again.
        connect_timeout_s: Seconds a database server may take to accept a
            connection before the run stops with a StorageError (a server that
            accepts but never answers no longer hangs).
        n_jobs: Threads per trial (LightGBM ``num_threads``); 0 lets LightGBM
            use every core. The default 1 suits several workers per machine:
            OpenMP threads of parallel workers oversubscribe the cores.
        objectives: ``[ndcg]`` (default) or, for a gbdt study, ``[ndcg,
            latency]`` / ``[ndcg, size]``: a multi-objective study (Optuna's
            multi-objective TPE or NSGA-II; no pruning) whose result is a
            Pareto front. Every gbdt trial records both costs as user
            attributes (``p50_ms``, ``size``) whatever its objectives.
        sampler: ``tpe`` (seeded per trial) or ``nsga2`` (NSGA-II, seeded).
        latency_docs: Documents ranked per timed call (one query).
        latency_repeats: Timed calls per trial (the p50 is their median).
    """

    kind: str = "stacker"
    name: str | None = None
    n_trials: int = 100
    seed: int = 0
    storage: str | None = None
    out: str = "runs/study"
    dataset: str | None = None
    experiment: Mapping[str, Any] = field(default_factory=dict)
    space: Mapping[str, Any] = field(default_factory=dict)
    heartbeat_interval: int | None = 30
    grace_period: int = 90
    max_retry: int = 1
    n_jobs: int = 1
    connect_timeout_s: float = 10.0
    objectives: tuple[str, ...] = ("ndcg",)
    sampler: str = "tpe"
    latency_docs: int = 100
    latency_repeats: int = 50

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"study.kind must be one of {KINDS}, got {self.kind!r}")
        for name in ("experiment", "space"):  # an empty YAML key (`space:`) is the defaults
            value = getattr(self, name)
            if value is None:
                object.__setattr__(self, name, {})
            elif not isinstance(value, Mapping):
                raise ConfigError(
                    f"study.{name} must be a mapping, got {type(value).__name__} {value!r}"
                )
        objectives = tuple(self.objectives)
        if (
            not objectives
            or objectives[0] != "ndcg"
            or len(objectives) > 2
            or any(o not in OBJECTIVES for o in objectives)
            or len(set(objectives)) != len(objectives)
        ):
            raise ConfigError(
                f"study.objectives must be [ndcg] or [ndcg, latency|size], got {list(objectives)}"
            )
        if len(objectives) > 1 and self.kind != "gbdt":
            raise ConfigError(f"study.objectives: a {self.kind} study has one objective (ndcg)")
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"study.sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        if self.latency_docs < 1 or self.latency_repeats < 1:
            raise ConfigError("study.latency_docs and study.latency_repeats must be >= 1")
        if self.n_trials < 1:
            raise ConfigError("study.n_trials must be >= 1")
        if self.heartbeat_interval is not None and self.heartbeat_interval < 1:
            raise ConfigError("study.heartbeat_interval must be >= 1 second or null")
        beat = self.heartbeat_interval or 0
        if self.grace_period <= beat:
            raise ConfigError(
                f"study.grace_period ({self.grace_period}) must exceed heartbeat_interval ({beat})"
            )
        if self.max_retry < 0:
            raise ConfigError("study.max_retry must be >= 0")
        if self.n_jobs < 0:
            raise ConfigError("study.n_jobs must be >= 0")
        if self.connect_timeout_s <= 0:
            raise ConfigError("study.connect_timeout_s must be > 0")
        if self.kind == "gbdt" and any(k in GBDT_SPACE_ALIASES for k in self.space):
            renamed = {GBDT_SPACE_ALIASES.get(k, k): v for k, v in self.space.items()}
            if len(renamed) != len(self.space):
                raise ConfigError(
                    "study.space names a parameter twice (a LightGBM name and its field)"
                )
            logger.info(
                "study.space: LightGBM names read as LambdaMART fields (%s)",
                ", ".join(f"{k} -> {GBDT_SPACE_ALIASES[k]}" for k in self.space if k in GBDT_SPACE_ALIASES),
            )
            object.__setattr__(self, "space", renamed)
        self._check_space()

    def _check_space(self) -> None:
        """Every ``space`` key is one this kind reads, every range a [low, high] of numbers.

        Checked when the spec is read, before any input is built.
        """
        import difflib

        known = SPACE_KEYS[self.kind]
        if self.kind == "stacker" and self.space and self._stacker().gate != "sigmoid":
            raise ConfigError(
                f"study.space {sorted(self.space)}: the experiment's stacker gate is "
                f"{self._stacker().gate!r}, whose weights are searched over [0, 1]; centre "
                "and slope belong to the sigmoid gate"
            )
        for key, value in self.space.items():
            if key not in known:
                close = difflib.get_close_matches(str(key), known, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ConfigError(
                    f"study.space.{key}: not a parameter of a {self.kind} study{hint} "
                    f"(known: {list(known)})"
                )
            ok = (
                isinstance(value, list | tuple)
                and len(value) == 2
                and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
            )
            if not ok or value[0] > value[1]:
                raise ConfigError(f"study.space.{key} must be [low, high] with low <= high, got {value!r}")
            if key in _LOG_SCALE and value[0] <= 0:
                raise ConfigError(f"study.space.{key} is searched on a log scale: low must be > 0")
            self._check_bounds(key, value)

    def _check_bounds(self, key: str, value: Sequence[float]) -> None:
        """Both ends of a range are values the parameter may take (a gbdt study's as
        ``LambdaMARTConfig`` checks them; a gate's or FAMOL's ``centre``/``slope`` as the
        sigmoid does: finite, slope >= 0), so no trial fails on its own draw."""
        from hybridrank.ensemble import SigmoidGate
        from hybridrank.gbdt import LambdaMARTConfig

        for v in value:
            try:
                if self.kind == "gbdt":
                    # An integer parameter's range may be written 4.0 (a trial draws integers).
                    whole = isinstance(v, float) and v.is_integer()
                    LambdaMARTConfig.from_dict({key: int(v) if whole else v})
                else:
                    SigmoidGate(**{key: float(v)})
            except ConfigError as exc:
                raise ConfigError(f"study.space.{key}: {v} is out of range ({exc})") from None

    def open_storage(self, override: str | None = None) -> Any:
        """The Optuna storage of this study (``override`` replaces ``storage``)."""
        from hybridrank.tuning._storage import make_storage

        return make_storage(
            override or self.storage,
            Path(self.out),
            heartbeat_interval=self.heartbeat_interval,
            grace_period=self.grace_period,
            max_retry=self.max_retry,
            connect_timeout_s=self.connect_timeout_s,
        )

    @property
    def study_name(self) -> str:
        return self.name or f"hybridrank-{self.kind}"

    def search_space(self) -> dict[str, tuple[float, float]]:
        """Every parameter a trial draws, with its range: the ``space:`` entry where the
        spec has one, else the kind's default (see :meth:`describe_space`)."""
        if self.kind == "gbdt":
            defaults = dict(GBDT_SPACE)
        elif self.kind == "famol":
            defaults = dict(FAMOL_SPACE)
        else:
            base = self._stacker()
            if base.gate != "sigmoid":  # a bucket gate: one weight in [0, 1] per bucket
                return {f"w{i}": (0.0, 1.0) for i in range(len(base.bucket_edges) + 1)}
            defaults = {"centre": base.centre_range, "slope": base.slope_range}
        return {name: _space(self, name, default) for name, default in defaults.items()}

    def describe_space(self) -> str:
        """One line: each searched parameter's range, marked where it is the default
        (a parameter the spec leaves out is searched over its default range, not fixed)."""
        chosen = set(self.space)
        if self.kind == "stacker":  # the experiment's stacker block may set the ranges
            stacker = dict(self.experiment.get("stacker") or {})
            chosen |= {name for name in ("centre", "slope") if f"{name}_range" in stacker}
            chosen |= {n for n in self.search_space() if n.startswith("w")}  # always [0, 1]
        return ", ".join(
            f"{name} [{low:g}, {high:g}]" + ("" if name in chosen else " (default)")
            for name, (low, high) in self.search_space().items()
        )

    def _stacker(self) -> Any:
        from hybridrank.ensemble import StackerConfig

        return StackerConfig.from_dict(self.experiment.get("stacker"))

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    @property
    def directions(self) -> list[Any]:
        """Optuna directions, one per objective."""
        return ["maximize" if o == "ndcg" else "minimize" for o in self.objectives]

    @classmethod
    def from_yaml(cls, path: str | Path) -> StudySpec:
        p = Path(path)
        raw = read_yaml_mapping(p, section="study")
        return in_file(p, lambda: config_from_dict(cls, raw, "study"))


def _space(spec: StudySpec, name: str, default: tuple[float, float]) -> tuple[float, float]:
    value = spec.space.get(name, default)
    if not isinstance(value, list | tuple) or len(value) != 2 or value[0] > value[1]:
        raise ConfigError(f"study.space.{name} must be [low, high], got {value!r}")
    return float(value[0]), float(value[1])


# ----------------------------------------------------------------- objectives


def _stacker_objective(spec: StudySpec, inputs: pd.DataFrame) -> Callable[[Any], float]:
    """The stacker study's objective: the gate's NDCG@k on the tuning queries (the two
    experts' out-of-fold scores), recording each trial's per-query NDCG."""
    from hybridrank.ensemble import StackerConfig, prepare, suggest_gate

    base = StackerConfig.from_dict(spec.experiment.get("stacker"))
    cfg = replace(
        base,
        centre_range=_space(spec, "centre", base.centre_range),
        slope_range=_space(spec, "slope", base.slope_range),
    )
    tuning = inputs.loc[inputs["tuning"].to_numpy()]
    data = prepare(
        tuning["click_gbdt"], tuning["llm_model"], qid=tuning[C.QID].to_numpy(), freq=tuning[C.FREQ],
        labels=tuning[C.Y_EXPERT], normalisation=cfg.normalisation, k=cfg.k,
    )  # fmt: skip
    starts = data.offsets[:-1]  # one row per query
    buckets = tuning[C.BUCKET].to_numpy()[starts] if C.BUCKET in tuning.columns else None
    reference = list(rise_ends(data.row_freq[starts], cfg.bucket_edges, buckets))

    def objective(trial: Any) -> float:
        per_query = data.per_query(suggest_gate(trial, cfg))
        # What the gate selection needs (stacker_study_gate): NDCG per tuning query and
        # the frequencies the gate's rise is measured between.
        trial.set_user_attr(PER_QUERY_ATTR, [None if np.isnan(v) else float(v) for v in per_query])
        trial.set_user_attr(REFERENCE_ATTR, reference)
        return mean_ndcg(per_query)

    return objective


#: User attributes of a stacker study's trials: NDCG per tuning query, and the rare and
#: frequent end of the gate's rise.
PER_QUERY_ATTR = "per_query_ndcg"
REFERENCE_ATTR = "rise_between"


def stacker_study_gate(study: Any, spec: StudySpec) -> tuple[Gate, GateChoice | None, str]:
    """The gate a stacker study's finished trials give, by the experiment's
    ``stacker.selection`` rule (see :func:`hybridrank.ensemble.choose_trial`).

    Returns:
        The gate, the choice (None when the top trial is served without one) and a line
        saying which trial it is and why.
    """
    from optuna.trial import TrialState

    from hybridrank.ensemble import GateCandidate, StackerConfig, choose_trial, gate_from_params

    cfg = StackerConfig.from_dict(spec.experiment.get("stacker"))
    best = study.best_trial
    top = gate_from_params(best.params, cfg), None
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    unrecorded = [t.number for t in done
                  if PER_QUERY_ATTR not in t.user_attrs or REFERENCE_ATTR not in t.user_attrs]  # fmt: skip
    if unrecorded:
        return (*top, f"top trial #{best.number}; selection {cfg.selection} not applied: "
                      f"{len(unrecorded)} of {len(done)} trials were run before hybridrank "
                      "recorded their per-query NDCG")  # fmt: skip
    lengths = {len(t.user_attrs[PER_QUERY_ATTR]) for t in done}
    if len(lengths) > 1:
        return (*top, f"top trial #{best.number}; selection {cfg.selection} not applied: "
                      f"the trials scored different tuning sets ({sorted(lengths)} queries)")  # fmt: skip
    candidates = [
        GateCandidate(t.number, gate_from_params(t.params, cfg),
                      np.array([np.nan if v is None else v for v in t.user_attrs[PER_QUERY_ATTR]],
                               dtype=np.float64))
        for t in done
    ]  # fmt: skip
    low, high = (float(v) for v in best.user_attrs[REFERENCE_ATTR])
    choice = choose_trial(candidates, best.number, rule=cfg.selection, se=cfg.selection_se,
                          low_freq=low, high_freq=high)  # fmt: skip
    kept = next(c.gate for c in candidates if c.number == choice.trial)
    return kept, choice, choice.describe(cfg.selection_se)


def serving_costs(ranker: Any, sample: np.ndarray, *, repeats: int) -> dict[str, float]:
    """p50 latency (ms) of scoring ``sample`` (one query's documents) on one thread, and size.

    The model is timed as served: the trees up to its best iteration, one call
    per query. ``size`` is the number of leaves summed over those trees.

    Args:
        ranker: A fitted :class:`~hybridrank.gbdt.LambdaMARTRanker` (either engine).
    """
    n_iter = int(ranker.best_iteration_)
    booster = ranker.booster_
    predict: Callable[[], Any]
    if ranker.engine_ == "lightgbm":
        def predict() -> Any:
            return booster.predict(sample, num_iteration=n_iter, num_threads=1)

        trees = booster.dump_model(num_iteration=n_iter)["tree_info"]
        leaves = [int(t["num_leaves"]) for t in trees]
    else:
        booster.set_param({"nthread": 1})

        def predict() -> Any:
            return booster.inplace_predict(sample, iteration_range=(0, n_iter))

        dump = booster.get_dump()[:n_iter]
        leaves = [tree.count("leaf=") for tree in dump]
    predict()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        predict()
        times.append(time.perf_counter() - t0)
    return {
        "p50_ms": float(np.median(times) * 1000.0),
        "size": float(sum(leaves)),
        "n_trees": float(len(leaves)),
    }


def _suggest_gbdt(trial: Any, spec: StudySpec) -> dict[str, Any]:
    """The LambdaMARTConfig fields a trial proposes (names as in ``gbdt:`` of a train config)."""
    out: dict[str, Any] = {}
    for name, default in GBDT_SPACE.items():
        low, high = _space(spec, name, default)
        if name in ("num_leaves", "min_child_samples"):
            out[name] = trial.suggest_int(name, int(low), int(high))
        else:
            out[name] = trial.suggest_float(name, low, high, log=name in _LOG_SCALE)
    return out


#: A gbdt trial's rounds and early-stopping patience where ``experiment.gbdt`` names none.
GBDT_TRIAL_ROUNDS = 300
GBDT_TRIAL_PATIENCE = 30


def _gbdt_objective(
    spec: StudySpec, inputs: pd.DataFrame, features: list[str]
) -> Callable[[Any], float | tuple[float, float]]:
    """Train LambdaMART (the experiment's ``gbdt`` engine and settings) on click labels of
    the non-tuning queries; early stopping, pruning and the score on the tuning queries'
    expert grades."""
    import optuna

    from hybridrank.evaluate import ndcg_at_k
    from hybridrank.gbdt import LambdaMARTConfig, LambdaMARTRanker, local_trainer

    given = spec.experiment.get("gbdt") or {}
    base = LambdaMARTConfig.from_dict(given)
    # A trial's rounds: the block's when it names them, else 300 with early stopping at 30.
    rounds = {"n_estimators": given.get("n_estimators", GBDT_TRIAL_ROUNDS),
              "early_stopping_rounds": given.get("early_stopping_rounds", GBDT_TRIAL_PATIENCE)}  # fmt: skip
    train = inputs.loc[~inputs["tuning"].to_numpy() & inputs[C.Y_CLICK].notna().to_numpy()]
    valid = inputs.loc[inputs["tuning"].to_numpy()]
    X, y, q = train[features], train[C.Y_CLICK].to_numpy(), train[C.QID].to_numpy()
    Xv, yv, qv = valid[features], valid[C.Y_EXPERT].to_numpy(), valid[C.QID].to_numpy()

    # The timed call ranks one query's documents: the first `latency_docs` validation rows.
    rows = Xv.to_numpy(np.float32)
    sample = np.resize(rows, (spec.latency_docs, rows.shape[1])) if len(rows) else rows

    def objective(trial: Any) -> float | tuple[float, float]:
        cfg = replace(
            base, **_suggest_gbdt(trial, spec), **rounds,
            min_validation_queries=0, n_jobs=spec.n_jobs, seed=spec.seed,
        )  # fmt: skip

        def prune(step: int, value: float) -> None:
            trial.report(value, step=step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at round {step}")

        # Optuna cannot prune a multi-objective trial: only early stopping there.
        trainer = local_trainer(cfg.engine, on_round=None if spec.multi_objective else prune)
        ranker = LambdaMARTRanker(cfg).fit(
            X, y, qid=q, eval_set=(Xv, yv), eval_qid=qv, trainer=trainer
        )
        trial.set_user_attr("best_round", int(ranker.best_iteration_))
        trial.set_user_attr("engine", cfg.engine)
        costs = serving_costs(ranker, sample, repeats=spec.latency_repeats)
        for key, value in costs.items():
            trial.set_user_attr(key, value)
        ndcg = float(np.nanmean(ndcg_at_k(ranker.predict(Xv), yv, qid=qv, k=10)))
        if not spec.multi_objective:
            return ndcg
        return ndcg, costs["p50_ms" if spec.objectives[1] == "latency" else "size"]

    return objective


def _famol_objective(
    spec: StudySpec, inputs: pd.DataFrame, features: list[str]
) -> Callable[[Any], float]:
    from hybridrank.ensemble import FAMOLConfig, FAMOLRanker
    from hybridrank.evaluate import ndcg_at_k

    base = FAMOLConfig.from_dict(spec.experiment.get("famol"))
    train = inputs.loc[~inputs["tuning"].to_numpy()]
    valid = inputs.loc[inputs["tuning"].to_numpy()]

    def objective(trial: Any) -> float:
        cfg = replace(
            base,
            centre=trial.suggest_float("centre", *_space(spec, "centre", FAMOL_SPACE["centre"])),
            slope=trial.suggest_float("slope", *_space(spec, "slope", FAMOL_SPACE["slope"])),
        )
        model = FAMOLRanker(cfg).fit(
            train[features],
            train[C.Y_CLICK],
            train[C.Y_LLM],
            qid=train[C.QID].to_numpy(),
            freq=train[C.FREQ],
        )
        scores = model.predict(valid[features])
        return float(
            np.nanmean(ndcg_at_k(scores, valid[C.Y_EXPERT], qid=valid[C.QID].to_numpy(), k=10))
        )

    return objective


# --------------------------------------------------------------------- runner


@dataclass(frozen=True)
class StudyResult:
    """A finished (or resumed) study."""

    study: Any
    path: Path
    n_new: int  # trials finished since this run started, by this worker or others


def run_study(
    spec: StudySpec,
    inputs: Callable[[], tuple[pd.DataFrame, list[str]]],
    *,
    storage: str | None = None,
    n_trials: int | None = None,
    progress: bool = True,
) -> StudyResult:
    """Create or resume the study and run it until it has ``n_trials`` finished trials.

    Args:
        spec: The study.
        inputs: Builds (or reads) the table the objective works on and its
            feature columns (for the gbdt and famol objectives): the
            candidates with click features and labels, ``y_llm``, ``y_expert``,
            the ``tuning`` flag and, for the stacker, the out-of-fold scores
            ``click_gbdt`` and ``llm_model`` (``hybridrank.pipelines`` builds it
            from a dataset). Called after the storage is opened, so an
            unreachable server is reported before any long work.
    """
    import optuna
    from optuna.storages._heartbeat import is_heartbeat_enabled
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    from hybridrank.tuning._sampler import make_sampler
    from hybridrank.tuning._storage import fail_orphaned_trials, worker_identity

    out = Path(spec.out)
    out.mkdir(parents=True, exist_ok=True)
    target = n_trials or spec.n_trials
    # Open the storage before the (possibly long) input build: an unreachable
    # server is reported at once.
    store = spec.open_storage(storage)
    table, features = inputs()
    objectives: dict[str, Callable[[], Callable[[Any], float | tuple[float, float]]]] = {
        "stacker": lambda: _stacker_objective(spec, table),
        "gbdt": lambda: _gbdt_objective(spec, table, features),
        "famol": lambda: _famol_objective(spec, table, features),
    }
    inner = objectives[spec.kind]()
    me = worker_identity()

    def objective(trial: Any) -> float | tuple[float, float]:
        for key, value in me.items():
            trial.set_user_attr(key, value)
        return inner(trial)

    sampler = (
        optuna.samplers.NSGAIISampler(seed=spec.seed)
        if spec.sampler == "nsga2"
        else make_sampler(spec.seed)
    )
    pruner = (
        optuna.pruners.NopPruner()
        if spec.multi_objective
        else optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=10)
    )
    study = optuna.create_study(
        study_name=spec.study_name,
        storage=store,
        sampler=sampler,
        pruner=pruner,
        directions=spec.directions,
        load_if_exists=True,
    )
    if len(study.directions) != len(spec.directions):
        raise ConfigError(
            f"study {spec.study_name!r} in that storage has {len(study.directions)} objective(s), "
            f"the spec {len(spec.directions)}: give the multi-objective study another name"
        )
    recorded = study.user_attrs.get("objectives")
    scored = any(t.values for t in study.trials)  # failed or pruned trials hold no values
    if scored and recorded is not None and recorded != list(spec.objectives):
        # Its trials hold values of the other objectives (p50 ms against a leaf count):
        # TPE and the Pareto front would mix them.
        raise ConfigError(
            f"study {spec.study_name!r} in that storage was scored on objectives {recorded}, "
            f"the spec asks for {list(spec.objectives)}: give the study another name"
        )
    if recorded != list(spec.objectives):
        study.set_user_attr("objectives", list(spec.objectives))
    space = {name: list(bounds) for name, bounds in spec.search_space().items()}
    before = study.user_attrs.get("space")
    if isinstance(before, dict) and before != space:
        changes = ", ".join(
            f"{name} {before.get(name)} -> {space.get(name)}"
            for name in sorted(set(before) | set(space))
            if before.get(name) != space.get(name)
        )
        logger.warning(
            "study %s: the search space changed since its earlier trials (%s); they stay in "
            "the study, and its best trial may lie outside the new ranges",
            spec.study_name, changes,
        )  # fmt: skip
    if before != space:
        study.set_user_attr("space", space)
    counted = (TrialState.COMPLETE, TrialState.PRUNED)

    def reap(study: Any, _trial: Any) -> None:
        fail_orphaned_trials(
            study, max_retry=spec.max_retry, unrecorded_grace_s=float(spec.grace_period)
        )

    reap(study, None)
    if is_heartbeat_enabled(study._storage):
        optuna.storages.fail_stale_trials(study)
    done = len(study.get_trials(deepcopy=False, states=counted))
    remaining = max(target - done, 0)
    stopped = False
    if remaining:
        # Other workers may finish trials meanwhile: MaxTrialsCallback stops this
        # worker as soon as the study holds `target` finished trials in all.
        with first_interrupt_stops() as interrupted:

            def stop_if_interrupted(study: Any, _trial: Any) -> None:
                if interrupted[0]:
                    study.stop()

            study.optimize(
                objective,
                n_trials=remaining,
                callbacks=[MaxTrialsCallback(target, states=counted), reap, stop_if_interrupted],
                show_progress_bar=progress,
            )
        stopped = interrupted[0]
    n_new = len(study.get_trials(deepcopy=False, states=counted)) - done
    if stopped:  # every finished trial is stored: the CLI says so in one line
        raise KeyboardInterrupt
    return StudyResult(study=study, path=out, n_new=n_new)


@contextmanager
def first_interrupt_stops() -> Iterator[list[bool]]:
    """Within this block the first Ctrl-C (SIGINT) only turns the yielded one-item list
    to ``[True]``: a study's callback then stops it once the running trial is finished
    and stored. A second Ctrl-C interrupts at once.

    Optuna's own handling of a KeyboardInterrupt raised mid-trial can leave it in a
    bad state (an error of its own, a trial left RUNNING); a trial stopped at its end
    cannot. Outside the main thread (where signals cannot be caught), or where SIGINT
    is ignored, it changes nothing.
    """
    hit = [False]
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous is signal.SIG_IGN:
        yield hit
        return

    def stop(signum: int, frame: Any) -> None:
        if hit[0]:  # the second Ctrl-C: at once
            raise KeyboardInterrupt
        hit[0] = True
        print(
            "\nhybridrank: stopping once the running trial is stored (Ctrl-C again to stop "
            "at once)",
            file=sys.stderr,
            flush=True,
        )

    signal.signal(signal.SIGINT, stop)
    try:
        yield hit
    finally:
        # A handler set outside Python reads as None: Python's own is the nearest.
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)


def study_report(study: Any, out_dir: str | Path) -> tuple[str, dict[str, Path]]:
    """Best trial, parameter importances and Optuna's history and importance plots (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import optuna

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not finished:
        raise ConfigError(f"study {study.study_name!r} has no completed trial yet")
    if len(study.directions) > 1:
        from hybridrank.tuning._pareto import pareto_report

        return pareto_report(study, out)
    best = study.best_trial
    states = pd.Series([t.state.name for t in study.trials]).value_counts().to_dict()
    lines = [
        f"study {study.study_name}: {len(study.trials)} trials ("
        + ", ".join(f"{n:,} {str(state).lower()}" for state, n in states.items())
        + ")",
        f"best trial #{best.number}: value {best.value:.4f}",
        "best parameters:",
        *[
            f"  {k}: {v:.4g}" if isinstance(v, float) else f"  {k}: {v}"
            for k, v in best.params.items()
        ],
    ]
    paths = {}
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    ax = optuna.visualization.matplotlib.plot_optimization_history(study)
    paths["history"] = out / "history.png"
    _save(ax, paths["history"])
    if len(finished) >= 2 and len(best.params) >= 2:
        importances = optuna.importance.get_param_importances(study)
        lines += [
            "parameter importances (fANOVA):",
            *[f"  {k}: {v:.3f}" for k, v in importances.items()],
        ]
        ax = optuna.visualization.matplotlib.plot_param_importances(study)
        paths["importances"] = out / "importances.png"
        _save(ax, paths["importances"])
    text = "\n".join(lines)
    write_text(out / "report.md", text + "\n")
    paths["markdown"] = out / "report.md"
    return text, paths


def _save(ax: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig = ax.get_figure()
    save_figure(fig, path, dpi=110, bbox_inches="tight")
    plt.close("all")
