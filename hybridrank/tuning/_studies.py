"""Study definitions (YAML under studies/) and the Optuna runner: run, resume, report."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hybridrank import columns as C
from hybridrank._config import config_from_dict, read_yaml_mapping
from hybridrank.errors import ConfigError

logger = logging.getLogger(__name__)

KINDS = ("stacker", "gbdt", "famol")


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
        n_jobs: Threads per trial (LightGBM ``num_threads``); 0 lets LightGBM
            use every core. The default 1 suits several workers per machine:
            OpenMP threads of parallel workers oversubscribe the cores.
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

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"study.kind must be one of {KINDS}, got {self.kind!r}")
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

    def open_storage(self, override: str | None = None) -> Any:
        """The Optuna storage of this study (``override`` replaces ``storage``)."""
        from hybridrank.tuning._storage import make_storage

        return make_storage(
            override or self.storage,
            Path(self.out),
            heartbeat_interval=self.heartbeat_interval,
            grace_period=self.grace_period,
            max_retry=self.max_retry,
        )

    @property
    def study_name(self) -> str:
        return self.name or f"hybridrank-{self.kind}"

    @classmethod
    def from_yaml(cls, path: str | Path) -> StudySpec:
        p = Path(path)
        raw = read_yaml_mapping(p, section="study")
        try:
            return config_from_dict(cls, raw, "study")
        except ConfigError as exc:
            raise ConfigError(f"{p}: {exc}") from None


def _space(spec: StudySpec, name: str, default: tuple[float, float]) -> tuple[float, float]:
    value = spec.space.get(name, default)
    if not isinstance(value, list | tuple) or len(value) != 2 or value[0] > value[1]:
        raise ConfigError(f"study.space.{name} must be [low, high], got {value!r}")
    return float(value[0]), float(value[1])


# ----------------------------------------------------------------- objectives


def _stacker_objective(spec: StudySpec, inputs: pd.DataFrame) -> Callable[[Any], float]:
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
    return lambda trial: data.value(suggest_gate(trial, cfg))


class _PruningCallback:
    """Reports validation NDCG@k per boosting round to the trial; raises TrialPruned when told."""

    def __init__(self, trial: Any, valid_name: str = "valid") -> None:
        self.trial = trial
        self.valid_name = valid_name

    def __call__(self, env: Any) -> None:
        import optuna

        for data_name, _metric, value, _higher in env.evaluation_result_list:
            if data_name == self.valid_name:
                self.trial.report(float(value), step=env.iteration)
                if self.trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at round {env.iteration}")
                return


def _gbdt_objective(
    spec: StudySpec, inputs: pd.DataFrame, features: list[str]
) -> Callable[[Any], float]:
    import lightgbm as lgb

    from hybridrank._grouping import offsets_from_qid
    from hybridrank.evaluate import ndcg_at_k

    train = inputs.loc[~inputs["tuning"].to_numpy() & inputs[C.Y_CLICK].notna().to_numpy()]
    valid = inputs.loc[inputs["tuning"].to_numpy()]
    dtrain = lgb.Dataset(
        train[features].to_numpy(np.float32),
        train[C.Y_CLICK],
        group=np.diff(offsets_from_qid(train[C.QID].to_numpy())),
        free_raw_data=False,
        # Trials change min_data_in_leaf on the one Dataset: no pre-filtering by the first value.
        params={"feature_pre_filter": False},
    )
    dvalid = lgb.Dataset(valid[features].to_numpy(np.float32), valid[C.Y_EXPERT], group=np.diff(offsets_from_qid(valid[C.QID].to_numpy())), reference=dtrain)  # fmt: skip

    def objective(trial: Any) -> float:
        params = {
            "objective": "lambdarank", "metric": "ndcg", "ndcg_eval_at": [10], "verbose": -1,
            "seed": spec.seed, "deterministic": True, "num_threads": spec.n_jobs,
            "learning_rate": trial.suggest_float("learning_rate", *_space(spec, "learning_rate", (0.01, 0.3)), log=True),
            "num_leaves": trial.suggest_int("num_leaves", *map(int, _space(spec, "num_leaves", (4, 64)))),
            "min_data_in_leaf": trial.suggest_int("min_data_in_leaf", *map(int, _space(spec, "min_data_in_leaf", (5, 100)))),
            "feature_fraction": trial.suggest_float("feature_fraction", *_space(spec, "feature_fraction", (0.4, 1.0))),
            "lambda_l2": trial.suggest_float("lambda_l2", *_space(spec, "lambda_l2", (1e-3, 10.0)), log=True),
        }  # fmt: skip
        booster = lgb.train(
            params, dtrain, num_boost_round=300, valid_sets=[dvalid], valid_names=["valid"],
            callbacks=[_PruningCallback(trial), lgb.early_stopping(30, verbose=False)],
        )  # fmt: skip
        trial.set_user_attr("best_round", int(booster.best_iteration))
        scores = booster.predict(
            valid[features].to_numpy(np.float32), num_iteration=booster.best_iteration
        )
        return float(
            np.nanmean(ndcg_at_k(scores, valid[C.Y_EXPERT], qid=valid[C.QID].to_numpy(), k=10))
        )

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
            centre=trial.suggest_float("centre", *_space(spec, "centre", (0.0, 5.0))),
            slope=trial.suggest_float("slope", *_space(spec, "slope", (0.0, 6.0))),
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
    objectives: dict[str, Callable[[], Callable[[Any], float]]] = {
        "stacker": lambda: _stacker_objective(spec, table),
        "gbdt": lambda: _gbdt_objective(spec, table, features),
        "famol": lambda: _famol_objective(spec, table, features),
    }
    inner = objectives[spec.kind]()
    me = worker_identity()

    def objective(trial: Any) -> float:
        for key, value in me.items():
            trial.set_user_attr(key, value)
        return inner(trial)

    study = optuna.create_study(
        study_name=spec.study_name,
        storage=store,
        sampler=make_sampler(spec.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=10),
        direction="maximize",
        load_if_exists=True,
    )
    counted = (TrialState.COMPLETE, TrialState.PRUNED)

    def reap(study: Any, _trial: Any) -> None:
        fail_orphaned_trials(study, max_retry=spec.max_retry)

    reap(study, None)
    if is_heartbeat_enabled(study._storage):
        optuna.storages.fail_stale_trials(study)
    done = len(study.get_trials(deepcopy=False, states=counted))
    remaining = max(target - done, 0)
    if remaining:
        # Other workers may finish trials meanwhile: MaxTrialsCallback stops this
        # worker as soon as the study holds `target` finished trials in all.
        study.optimize(
            objective,
            n_trials=remaining,
            callbacks=[MaxTrialsCallback(target, states=counted), reap],
            show_progress_bar=progress,
        )
    n_new = len(study.get_trials(deepcopy=False, states=counted)) - done
    return StudyResult(study=study, path=out, n_new=n_new)


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
    best = study.best_trial
    states = pd.Series([t.state.name for t in study.trials]).value_counts().to_dict()
    lines = [
        f"study {study.study_name}: {len(study.trials)} trials {states}",
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
    (out / "report.md").write_text(text + "\n")
    paths["markdown"] = out / "report.md"
    return text, paths


def _save(ax: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig = ax.get_figure()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close("all")
