"""LambdaMART rankers over LightGBM and XGBoost, scikit-learn style."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, cast

import numpy as np
import numpy.typing as npt
import pandas as pd

from hybridrank._atomic import staged_directory, write_text
from hybridrank._config import config_from_dict, config_to_dict
from hybridrank._estimator import SklearnTags
from hybridrank._grouping import offsets_from_qid, qid_codes
from hybridrank.errors import ConfigError, DataFormatError, MissingInputError, NotFittedError
from hybridrank.gbdt._device import DEVICES, resolve_device
from hybridrank.gbdt._params import canonical_name, check_params, engine_errors, override
from hybridrank.gbdt._position import (
    LIGHTGBM_SOURCE,
    XGBOOST_SOURCE,
    XGBOOST_UNBIASED,
    gapped_groups,
    lightgbm_log,
    lightgbm_position_bias,
    order_by_position,
    positions,
    xgboost_position_bias,
)

logger = logging.getLogger(__name__)
#: Whether the "too few queries to choose the rounds" warning was given in this process.
_FEW_QUERIES_WARNED = False

ENGINES = ("lightgbm", "xgboost")
OBJECTIVES: dict[str, tuple[str, ...]] = {
    "lightgbm": ("lambdarank", "rank_xendcg"),
    "xgboost": ("rank:ndcg", "rank:pairwise", "rank:map"),
}
#: Rows one query may hold: LightGBM's lambdarank refuses larger groups.
MAX_GROUP_SIZE: dict[str, int | None] = {"lightgbm": 10_000, "xgboost": None}

#: Training rows as a trainer gets them: ``(X, y, qid, sample_weight or None)``;
#: ``X`` float32 ``(n_rows, n_features)``, the rest ``(n_rows,)``, rows of a query contiguous.
Data = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]
#: Validation rows ``(X, y, qid)`` for early stopping, or None.
Valid = tuple[np.ndarray, np.ndarray, np.ndarray] | None
#: What a trainer returns: ``(booster, best_iteration, evals_result)``.
Result = tuple[Any, int, dict[str, dict[str, list[float]]]]


@dataclass(frozen=True)
class LambdaMARTConfig:
    """A LambdaMART model.

    Attributes:
        engine: ``lightgbm`` or ``xgboost``.
        objective: ``lambdarank`` / ``rank_xendcg`` (LightGBM),
            ``rank:ndcg`` / ``rank:pairwise`` / ``rank:map`` (XGBoost).
        n_estimators: Boosting rounds (the most; early stopping may stop sooner).
        learning_rate: Shrinkage.
        num_leaves: Leaves per tree (LightGBM; XGBoost uses ``max_depth``).
        max_depth: Tree depth limit; -1 none (LightGBM), default 6 for XGBoost.
        min_child_samples: Rows per leaf at least (LightGBM ``min_data_in_leaf``).
        subsample: Row sampling per round (1.0 off).
        colsample: Feature sampling per tree (1.0 off).
        reg_lambda: L2 regularisation of leaf values.
        eval_at: The k of NDCG@k used for validation and early stopping.
        early_stopping_rounds: Stop after this many rounds without a gain on
            the validation NDCG@k; None trains all rounds.
        validation_fraction: Share of training queries held out for early
            stopping when ``fit`` gets no ``eval_set``.
        min_validation_queries: A holdout of fewer queries than this is too
            small to choose the round count on (a few queries stop boosting
            after a handful of rounds): the rounds are then chosen by
            ``cv_folds``-fold cross-validation over every training query (the
            round maximising the mean validation NDCG@k), and the model is
            refit on all of them for that many rounds. 0: always the holdout.
        cv_folds: Folds of that cross-validation.
        label_gain: Gain of each integer label (default 2^label - 1). XGBoost
            supports only the exponential or the linear gain.
        device: ``cpu``, ``cuda`` or ``auto``.
        n_jobs: Threads; 0 lets the engine decide.
        seed: Seed of every random choice (sampling, validation split).
        params: Further engine parameters, passed through unchanged; every
            key must be a parameter (or alias) of the engine: a misspelt key
            is a ConfigError naming the closest known name.
        monotone: Monotone constraints by feature name: ``1`` (the score may
            only rise with the feature), ``-1`` (only fall). Both engines'
            ``monotone_constraints``. A name the model does not have is
            skipped with a warning (one config serves models whose feature
            sets differ).
    """

    engine: str = "lightgbm"
    objective: str | None = None
    n_estimators: int = 500
    learning_rate: float = 0.05
    num_leaves: int = 31
    max_depth: int = -1
    min_child_samples: int = 20
    subsample: float = 1.0
    colsample: float = 1.0
    reg_lambda: float = 0.0
    eval_at: int = 10
    early_stopping_rounds: int | None = 50
    validation_fraction: float = 0.1
    min_validation_queries: int = 30
    cv_folds: int = 5
    label_gain: tuple[float, ...] | None = None
    device: str = "cpu"
    n_jobs: int = 0
    seed: int = 0
    params: Mapping[str, Any] = field(default_factory=dict)
    monotone: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ConfigError(f"gbdt.engine must be one of {ENGINES}, got {self.engine!r}")
        if self.objective is not None and self.objective not in OBJECTIVES[self.engine]:
            raise ConfigError(
                f"gbdt.objective {self.objective!r} is not a ranking objective of {self.engine}; "
                f"choose from {OBJECTIVES[self.engine]}"
            )
        checks: list[tuple[str, bool, str]] = [
            ("n_estimators", self.n_estimators >= 1, ">= 1"),
            ("seed", self.seed >= 0, ">= 0"),
            ("learning_rate", self.learning_rate > 0, "> 0"),
            ("num_leaves", self.num_leaves >= 2, ">= 2"),
            ("max_depth", self.max_depth == -1 or self.max_depth >= 1, "-1 (no limit) or >= 1"),
            ("min_child_samples", self.min_child_samples >= 0, ">= 0"),
            ("subsample", 0 < self.subsample <= 1, "in (0, 1]"),
            ("colsample", 0 < self.colsample <= 1, "in (0, 1]"),
            ("reg_lambda", self.reg_lambda >= 0, ">= 0"),
            ("eval_at", self.eval_at >= 1, ">= 1"),
            (
                "early_stopping_rounds",
                self.early_stopping_rounds is None or self.early_stopping_rounds >= 1,
                "null (off) or >= 1",
            ),
            ("validation_fraction", 0 < self.validation_fraction < 1, "in (0, 1)"),
            ("min_validation_queries", self.min_validation_queries >= 0, ">= 0"),
            ("cv_folds", self.cv_folds >= 2, ">= 2"),
            ("n_jobs", self.n_jobs >= 0, ">= 0 (0: the engine decides)"),
            (
                "label_gain",
                self.label_gain is None or all(g >= 0 for g in self.label_gain),
                "null or gains >= 0",
            ),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise ConfigError(f"gbdt.{name} must be {rule}, got {getattr(self, name)!r}")
        if self.device not in DEVICES:
            raise ConfigError(f"gbdt.device must be one of {DEVICES}, got {self.device!r}")
        if not isinstance(self.params, Mapping):
            raise ConfigError(f"gbdt.params must be a mapping, got {type(self.params).__name__}")
        check_params(self.engine, self.resolved_objective, self.params)
        if not isinstance(self.monotone, Mapping):
            raise ConfigError(
                f"gbdt.monotone must be a mapping of feature name to 1 or -1, got "
                f"{type(self.monotone).__name__}"
            )
        for name, direction in self.monotone.items():
            if direction not in (1, -1) or isinstance(direction, bool):
                raise ConfigError(
                    f"gbdt.monotone.{name} must be 1 (rising) or -1 (falling), got {direction!r}"
                )
        if self.monotone and any(
            canonical_name(self.engine, key) == "monotone_constraints" for key in self.params
        ):
            raise ConfigError("set gbdt.monotone or gbdt.params.monotone_constraints, not both")

    def monotone_constraints(self, names: Sequence[str]) -> list[int] | None:
        """The engines' ``monotone_constraints`` for features ``names`` (None: no constraint)."""
        if not self.monotone:
            return None
        missing = sorted(set(self.monotone) - set(names))
        if missing:
            logger.warning(
                "gbdt.monotone: %s not among the model's features %s; skipped",
                missing, list(names),
            )  # fmt: skip
        constraints = [int(self.monotone.get(name, 0)) for name in names]
        return constraints if any(constraints) else None

    @property
    def resolved_objective(self) -> str:
        return self.objective or OBJECTIVES[self.engine][0]

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> LambdaMARTConfig:
        return config_from_dict(cls, values, "gbdt")

    def to_dict(self) -> dict[str, Any]:
        d = config_to_dict(self)
        d["params"] = dict(self.params)
        d["monotone"] = dict(self.monotone)
        return d


#: Trains one booster: ``trainer(config, device, feature_names, train, valid, init_model)``
#: returns ``(booster, best_iteration, evals_result)``. The local trainers (one per
#: engine) train in this process; ``hybridrank.distributed.dask_trainer(engine, client)``
#: returns one that trains on a Dask cluster. ``LambdaMARTRanker.fit(trainer=...)`` takes one.
Trainer = Callable[[LambdaMARTConfig, str, Sequence[str], Data, Valid, Any], Result]

#: Gradients of a custom loss: ``gradients(scores) -> (grad, hess)`` per training row.
Gradients = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
#: Called after each boosting round with ``(round, validation NDCG@k)`` (see :func:`local_trainer`).
OnRound = Callable[[int, float], None]
#: A custom objective for ``LambdaMARTRanker.fit(objective=...)``: called with the indices
#: (into the rows given to ``fit``) of the rows the engine trains on, in the engine's row
#: order (the early-stopping holdout and cross-validation folds take rows out), it returns
#: the :data:`Gradients` over exactly those rows.
Objective = Callable[[np.ndarray], Gradients]


class LambdaMARTRanker(SklearnTags):
    """LambdaMART through LightGBM or XGBoost with one query key, ``qid``.

    Rows of a query must be contiguous. Query groups, label gains, early
    stopping on validation NDCG@k and the device are handled inside.

    Example:
        >>> ranker = LambdaMARTRanker(engine="lightgbm", n_estimators=50)
        >>> ranker.fit(X, y, qid=qid).predict(X_test)  # doctest: +SKIP

    Attributes (after ``fit``):
        booster_: The engine's booster.
        best_iteration_: Rounds used by ``predict`` (the best on validation).
        evals_result_: Training curves: ``{"train"|"valid": {metric: [values]}}``.
        feature_names_: Feature names (from a DataFrame, or ``f0, f1, ...``).
        device_: The device actually used.
        position_bias_: After ``fit(..., position=...)``: the learned bias of
            each shown position, position 1 = 1 (``pd.Series`` indexed by
            position); None without positions or where the engine did not
            report them. See :mod:`hybridrank.gbdt._position` for what each
            engine's numbers are.
        position_bias_source_: What ``position_bias_`` is, in words.
        round_selection_: How the round count was chosen (``holdout``,
            ``all rounds``, or the cross-validation used when the holdout
            would hold fewer than ``min_validation_queries`` queries).
        cv_curve_: That cross-validation's mean validation NDCG@k per round
            (None without it).
    """

    _config_fields: ClassVar[tuple[str, ...]] = tuple(LambdaMARTConfig.__dataclass_fields__)

    def __init__(self, config: LambdaMARTConfig | None = None, **params: Any) -> None:
        self.config = config
        self.params = params

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's arguments (scikit-learn style): ``config`` and any field overrides."""
        return {"config": self.config, **self.params}

    def set_params(self, **params: Any) -> LambdaMARTRanker:
        """Set ``config`` or any :class:`LambdaMARTConfig` field; an unknown name is a ConfigError."""
        unknown = sorted(set(params) - {"config", *self._config_fields})
        if unknown:
            raise ConfigError(
                f"LambdaMARTRanker has no parameters {unknown}; known: config and the fields of "
                "LambdaMARTConfig"
            )
        if "config" in params:
            self.config = params.pop("config")
        self.params = {**self.params, **params}
        self.get_config()  # validates the new values now, not at fit
        return self

    def get_config(self) -> LambdaMARTConfig:
        base = self.config or LambdaMARTConfig()
        if not self.params:
            return base
        merged = {**base.to_dict(), **self.params}
        return LambdaMARTConfig.from_dict(merged)

    # ------------------------------------------------------------------ fit

    def fit(
        self,
        X: pd.DataFrame | npt.ArrayLike,
        y: npt.ArrayLike,
        *,
        qid: npt.ArrayLike,
        sample_weight: npt.ArrayLike | None = None,
        position: npt.ArrayLike | None = None,
        eval_set: tuple[Any, Any] | None = None,
        eval_qid: npt.ArrayLike | None = None,
        init_model: Any | None = None,
        trainer: Trainer | None = None,
        objective: Objective | None = None,
    ) -> LambdaMARTRanker:
        """Train on rows grouped by ``qid``.

        Args:
            X: Features, shape ``(n_rows, n_features)``; NaN is missing.
            y: Integer relevance labels >= 0.
            qid: Query id per row; rows of a query contiguous.
            sample_weight: Weight per row (LightGBM); XGBoost takes one weight
                per query, so the rows of a query must share it.
            eval_set: ``(X_valid, y_valid)`` for early stopping; without it and
                with early stopping on, ``validation_fraction`` of the training
                queries is held out.
            eval_qid: Query ids of ``eval_set``.
            init_model: A booster (or fitted ranker) to continue boosting from.
            trainer: What trains the booster once the rows, holdout and device
                are settled (see :data:`Trainer`); None trains in this process
                with the engine's own trainer. For a Dask cluster pass
                ``hybridrank.distributed.dask_trainer(engine, client)`` (same
                parameters and holdout; the engine must match ``engine``).

            objective: A custom loss in place of the engine's (see
                :data:`Objective`), for both engines; ``y`` then only scores
                the validation NDCG@k of early stopping and round selection.
                Trains in this process.

        Raises:
            WorkerLostError: With the Dask trainer, a worker died during
                training; nothing was trained.

        Example:
            >>> from hybridrank.distributed import dask_trainer  # doctest: +SKIP
            >>> LambdaMARTRanker(engine="xgboost").fit(
            ...     X, y, qid=qid, trainer=dask_trainer("xgboost", client)
            ... )  # doctest: +SKIP
        """
        cfg = self.get_config()
        names, Xa = _matrix(X)
        ya = _labels(y)
        q = np.asarray(qid)
        if Xa.shape[0] != ya.shape[0] or q.shape[0] != ya.shape[0]:
            raise ValueError(
                f"X, y and qid differ in length: {Xa.shape[0]}, {ya.shape[0]}, {q.shape[0]}"
            )
        w = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        offsets = offsets_from_qid(q)
        _check_group_sizes(q, offsets, cfg.engine)
        pos = None if position is None else positions(position, ya.shape[0])
        if pos is not None and trainer is not None:
            raise ConfigError(
                "position (unbiased LambdaMART) trains in one process; drop the Dask trainer"
            )
        if objective is not None and (trainer is not None or pos is not None):
            raise ConfigError(
                "a custom objective trains in one process, without positions; drop the Dask "
                "trainer and position"
            )
        rows = np.arange(ya.shape[0])

        self.device_ = resolve_device(cfg.device, cfg.engine)
        self.round_selection_ = "all rounds" if cfg.early_stopping_rounds is None else "holdout"
        self.cv_curve_: np.ndarray | None = None
        n_queries = offsets.shape[0] - 1
        small = max(1, round(n_queries * cfg.validation_fraction)) < cfg.min_validation_queries
        if (
            eval_set is None
            and cfg.early_stopping_rounds is not None
            and small
            and pos is None
            and init_model is None
        ):
            rounds = self._cv_rounds(cfg, names, (Xa, ya, q, w), offsets, trainer, objective)
            if rounds is not None:
                cfg = replace(cfg, n_estimators=rounds, early_stopping_rounds=None)
        if eval_set is None and cfg.early_stopping_rounds is not None:
            train_rows, valid_rows = _holdout(offsets, cfg.validation_fraction, cfg.seed)
            Xv, yv, qv = Xa[valid_rows], ya[valid_rows], q[valid_rows]
            Xa, ya, q = Xa[train_rows], ya[train_rows], q[train_rows]
            rows = rows[train_rows]
            w = None if w is None else w[train_rows]
            pos = None if pos is None else pos[train_rows]
        elif eval_set is not None:
            if eval_qid is None:
                raise ValueError("eval_set needs eval_qid")
            Xv, yv, qv = _matrix(eval_set[0])[1], _labels(eval_set[1]), np.asarray(eval_qid)
        else:
            Xv = yv = qv = None

        self.feature_names_ = names
        self.n_features_in_ = Xa.shape[1]
        booster: Any = (
            getattr(init_model, "booster_", None)
            if isinstance(init_model, LambdaMARTRanker)
            else init_model
        )
        sink: dict[str, Any] = {}
        train: Trainer
        if trainer is not None:
            train = trainer
        elif objective is not None:
            train = functools.partial(_LOCAL_TRAINERS[cfg.engine], gradients=objective(rows))
        elif pos is None:
            train = _TRAINERS[cfg.engine]
        else:
            train = functools.partial(_LOCAL_TRAINERS[cfg.engine], position=pos, sink=sink)
        self.booster_, self.best_iteration_, self.evals_result_ = train(
            cfg, self.device_, names, (Xa, ya, q, w), None if Xv is None else (Xv, yv, qv), booster
        )
        self.engine_ = cfg.engine
        self.position_bias_: pd.Series | None = sink.get("bias")
        self.position_bias_source_: str | None = sink.get("source")
        return self

    def _cv_rounds(
        self,
        cfg: LambdaMARTConfig,
        names: Sequence[str],
        data: Data,
        offsets: np.ndarray,
        trainer: Trainer | None,
        objective: Objective | None = None,
    ) -> int | None:
        """Rounds maximising the mean validation NDCG@k over ``cfg.cv_folds`` query folds.

        Returns None (train on a holdout as usual) when there are too few
        queries to cross-validate.
        """
        X, y, q, w = data
        n_q = offsets.shape[0] - 1
        k = min(cfg.cv_folds, n_q)
        if k < 2:
            return None
        fold_of_query = np.random.default_rng(cfg.seed).permutation(n_q) % k
        fold = np.repeat(fold_of_query, np.diff(offsets))
        curves = []
        for f in range(k):
            tr, va = fold != f, fold == f
            train: Trainer = trainer if trainer is not None else _TRAINERS[cfg.engine]
            if objective is not None:
                train = functools.partial(
                    _LOCAL_TRAINERS[cfg.engine], gradients=objective(np.flatnonzero(tr))
                )
            _, _, record = train(
                cfg, self.device_, names,
                (X[tr], y[tr], q[tr], None if w is None else w[tr]), (X[va], y[va], q[va]), None,
            )  # fmt: skip
            valid = record.get("valid", {})
            if not valid:
                return None
            curves.append(np.asarray(next(iter(valid.values())), dtype=np.float64))
        longest = max(c.shape[0] for c in curves)
        # A fold that stopped early keeps its last value for the later rounds.
        padded = np.vstack([np.pad(c, (0, longest - c.shape[0]), mode="edge") for c in curves])
        self.cv_curve_ = padded.mean(axis=0)
        rounds = int(np.argmax(self.cv_curve_)) + 1
        self.round_selection_ = f"{k}-fold cross-validation over {n_q} queries"
        message = (
            "a %d-query holdout is below min_validation_queries=%d: %d boosting rounds chosen by "
            "%d-fold cross-validation over all %d training queries (mean validation NDCG@%d %.4f)"
        )
        args = (max(1, round(n_q * cfg.validation_fraction)), cfg.min_validation_queries,
                rounds, k, n_q, cfg.eval_at, float(self.cv_curve_[rounds - 1]))  # fmt: skip
        if n_q < cfg.min_validation_queries:
            # An experiment fits dozens of models on the same few queries: warned once per
            # process, then logged at INFO.
            global _FEW_QUERIES_WARNED
            level = logging.INFO if _FEW_QUERIES_WARNED else logging.WARNING
            _FEW_QUERIES_WARNED = True
            logger.log(level, message + "; even so, %d queries choose the rounds only roughly"
                       + ("" if level == logging.INFO else " (further such notes: at INFO level)"),
                       *args, n_q)  # fmt: skip
        else:
            logger.info(message, *args)
        return rounds

    # -------------------------------------------------------------- predict

    def predict(self, X: pd.DataFrame | npt.ArrayLike) -> np.ndarray:
        """Scores, shape ``(n_rows,)``; higher ranks first."""
        self._check_fitted()
        names, Xa = _matrix(X)
        if Xa.shape[1] != self.n_features_in_:
            raise DataFormatError(
                f"model expects {self.n_features_in_} features, got {Xa.shape[1]}"
            )
        if isinstance(X, pd.DataFrame) and names != self.feature_names_:
            raise DataFormatError(
                "feature columns differ from training: "
                f"expected {self.feature_names_[:5]}..., got {names[:5]}..."
            )
        if self.engine_ == "lightgbm":
            return np.asarray(
                self.booster_.predict(Xa, num_iteration=self.best_iteration_), dtype=np.float64
            )
        import xgboost as xgb

        dm = xgb.DMatrix(Xa, feature_names=self.feature_names_)
        return np.asarray(
            self.booster_.predict(dm, iteration_range=(0, self.best_iteration_)), dtype=np.float64
        )

    def predict_contributions(self, X: pd.DataFrame | npt.ArrayLike) -> np.ndarray:
        """SHAP values per row and feature (last column: the bias), shape ``(n, n_features + 1)``."""
        self._check_fitted()
        _, Xa = _matrix(X)
        if self.engine_ == "lightgbm":
            return np.asarray(
                self.booster_.predict(Xa, num_iteration=self.best_iteration_, pred_contrib=True)
            )
        import xgboost as xgb

        dm = xgb.DMatrix(Xa, feature_names=self.feature_names_)
        return np.asarray(
            self.booster_.predict(dm, iteration_range=(0, self.best_iteration_), pred_contribs=True)
        )

    def importance(self, kind: str = "gain") -> pd.Series:
        """Gain or split-count importance per feature, from the booster."""
        self._check_fitted()
        if kind not in ("gain", "split"):
            raise ValueError("kind must be 'gain' or 'split'")
        if self.engine_ == "lightgbm":
            values = self.booster_.feature_importance(
                importance_type=kind, iteration=self.best_iteration_
            )
            return pd.Series(values, index=self.feature_names_, dtype=np.float64, name=kind)
        score = self.booster_.get_score(
            importance_type="total_gain" if kind == "gain" else "weight"
        )
        return pd.Series({n: float(score.get(n, 0.0)) for n in self.feature_names_}, name=kind)

    # ---------------------------------------------------------- save / load

    def save(self, directory: str | Path) -> dict[str, Path]:
        """Write the native model, a JSON dump for serving engines and the config.

        LightGBM: ``model.txt`` and ``model_dump.json`` (``dump_model``).
        XGBoost: ``model.json``, ``model.ubj`` and ``model_dump.json``.
        The files are written into a temporary sibling that replaces
        ``directory`` when complete (a crash leaves the previous model as it
        was); an existing ``directory`` without ``ranker.json`` is refused.
        """
        self._check_fitted()
        target = Path(directory)
        with staged_directory(target, markers=("ranker.json",)) as tmp:
            written = self._write(tmp)
        return {kind: target / path.name for kind, path in written.items()}

    def _write(self, out: Path) -> dict[str, Path]:
        paths: dict[str, Path] = {}
        if self.engine_ == "lightgbm":
            paths["native"] = out / "model.txt"
            self.booster_.save_model(str(paths["native"]), num_iteration=self.best_iteration_)
            paths["dump"] = out / "model_dump.json"
            paths["dump"].write_text(
                json.dumps(self.booster_.dump_model(num_iteration=self.best_iteration_))
            )
        else:
            sliced = self.booster_[: self.best_iteration_]
            paths["native"] = out / "model.json"
            sliced.save_model(str(paths["native"]))
            paths["ubj"] = out / "model.ubj"
            sliced.save_model(str(paths["ubj"]))
            paths["dump"] = out / "model_dump.json"
            paths["dump"].write_text("[" + ",".join(sliced.get_dump(dump_format="json")) + "]")
        meta = {
            "engine": self.engine_,
            "best_iteration": int(self.best_iteration_),
            "feature_names": list(self.feature_names_),
            "config": self.get_config().to_dict(),
        }
        bias = getattr(self, "position_bias_", None)
        if bias is not None:
            meta["position_bias"] = {str(k): float(v) for k, v in bias.items()}
            meta["position_bias_name"] = str(bias.name or self.engine_)
            meta["position_bias_source"] = self.position_bias_source_
        paths["meta"] = out / "ranker.json"
        write_text(paths["meta"], json.dumps(meta, indent=2) + "\n")
        return paths

    @classmethod
    def load(cls, directory: str | Path) -> LambdaMARTRanker:
        d = Path(directory)
        meta_path = d / "ranker.json"
        if not meta_path.exists():
            raise MissingInputError(f"{meta_path}: missing; is {d} a saved LambdaMART model?")
        meta = json.loads(meta_path.read_text())
        ranker = cls(LambdaMARTConfig.from_dict(meta["config"]))
        ranker.engine_ = meta["engine"]
        ranker.feature_names_ = list(meta["feature_names"])
        ranker.n_features_in_ = len(ranker.feature_names_)
        ranker.best_iteration_ = int(meta["best_iteration"])
        ranker.device_ = "cpu"
        ranker.evals_result_ = {}
        saved_bias = meta.get("position_bias")
        ranker.position_bias_ = (
            None
            if saved_bias is None
            else pd.Series(
                {int(k): float(v) for k, v in saved_bias.items()},
                name=meta.get("position_bias_name", ranker.engine_),
            ).rename_axis("position")
        )
        ranker.position_bias_source_ = meta.get("position_bias_source")
        if ranker.engine_ == "lightgbm":
            import lightgbm as lgb

            ranker.booster_ = lgb.Booster(model_file=str(d / "model.txt"))
        else:
            import xgboost as xgb

            ranker.booster_ = xgb.Booster()
            ranker.booster_.load_model(str(d / "model.json"))
        return ranker

    def _check_fitted(self) -> None:
        if not hasattr(self, "booster_"):
            raise NotFittedError("this LambdaMARTRanker is not fitted; call fit first")


# ---------------------------------------------------------------- helpers


def _matrix(X: Any) -> tuple[list[str], np.ndarray]:
    if isinstance(X, pd.DataFrame):
        bad = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
        if bad:
            raise DataFormatError(f"feature columns must be numeric; not numeric: {bad[:10]}")
        return [str(c) for c in X.columns], X.to_numpy(dtype=np.float32)
    arr = np.asarray(X, dtype=np.float32)
    if arr.ndim != 2:
        raise ValueError(f"X must be 2-D, got shape {arr.shape}")
    return [f"f{i}" for i in range(arr.shape[1])], arr


def _labels(y: Any) -> np.ndarray:
    arr = np.asarray(y, dtype=np.float64)
    if np.isnan(arr).any():
        raise DataFormatError(
            f"{int(np.isnan(arr).sum())} labels are missing; drop rows without a label before fit"
        )
    if (arr < 0).any() or not np.all(arr == np.round(arr)):
        raise DataFormatError("LambdaMART labels must be integers >= 0 (graded relevance)")
    return arr.astype(np.int32)


def _check_group_sizes(q: np.ndarray, offsets: np.ndarray, engine: str) -> None:
    limit = MAX_GROUP_SIZE[engine]
    if limit is None:
        return
    sizes = np.diff(offsets)
    too_big = np.flatnonzero(sizes > limit)
    if too_big.size:
        i = int(too_big[0])
        raise DataFormatError(
            f"query {q[offsets[i]]!r} has {int(sizes[i])} rows; {engine} ranks at most {limit} per query "
            f"({too_big.size} queries over the limit). Cut candidates per query or use engine xgboost.",
            row=int(offsets[i]),
            column="qid",
        )


def _holdout(offsets: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    n_q = offsets.shape[0] - 1
    rng = np.random.default_rng(seed)
    n_valid = max(1, round(n_q * fraction))
    if n_q < 2:
        raise DataFormatError("early stopping needs at least 2 queries (or pass eval_set)")
    is_valid = np.zeros(n_q, dtype=bool)
    is_valid[rng.choice(n_q, size=n_valid, replace=False)] = True
    row_valid = np.repeat(is_valid, np.diff(offsets))
    return np.flatnonzero(~row_valid), np.flatnonzero(row_valid)


def _default_gain(max_label: int) -> list[float]:
    return [float(2**i - 1) for i in range(max(max_label + 1, 32))]


def lightgbm_params(
    cfg: LambdaMARTConfig,
    device: str,
    train: Data,
    valid: Valid,
    names: Sequence[str] = (),
) -> dict[str, Any]:
    """LightGBM parameters of ``cfg`` (shared by the local and the Dask trainer).

    ``names`` are the model's features in column order (for ``cfg.monotone``).
    """
    y = train[1]
    max_label = int(y.max(initial=0))
    if valid is not None:
        max_label = max(max_label, int(valid[1].max(initial=0)))
    gain = list(cfg.label_gain) if cfg.label_gain is not None else _default_gain(max_label)
    if len(gain) <= max_label:
        raise ConfigError(f"gbdt.label_gain has {len(gain)} entries; labels go up to {max_label}")
    params: dict[str, Any] = {
        "objective": cfg.resolved_objective,
        "metric": "ndcg",
        "ndcg_eval_at": [cfg.eval_at],
        "label_gain": gain,
        "learning_rate": cfg.learning_rate,
        "num_leaves": cfg.num_leaves,
        "max_depth": cfg.max_depth,
        "min_data_in_leaf": cfg.min_child_samples,
        "bagging_fraction": cfg.subsample,
        "bagging_freq": 1 if cfg.subsample < 1 else 0,
        "feature_fraction": cfg.colsample,
        "lambda_l2": cfg.reg_lambda,
        "seed": cfg.seed,
        "deterministic": True,
        "verbose": -1,
        "device_type": device,
    }
    if cfg.n_jobs:
        params["num_threads"] = cfg.n_jobs
    constraints = cfg.monotone_constraints(names)
    if constraints is not None:
        params["monotone_constraints"] = constraints
    return override("lightgbm", params, cfg.params)


def _train_lightgbm(
    cfg: LambdaMARTConfig,
    device: str,
    names: Sequence[str],
    train: Data,
    valid: Valid,
    init_model: Any,
    *,
    position: np.ndarray | None = None,
    sink: dict[str, Any] | None = None,
    gradients: Gradients | None = None,
    on_round: OnRound | None = None,
) -> Result:
    import lightgbm as lgb

    X, y, q, w = train
    params = lightgbm_params(cfg, device, train, valid, names)
    if gradients is not None:
        params["objective"] = lambda preds, _data: gradients(np.asarray(preds, dtype=np.float64))
    if position is not None:
        # The learned position biases reach only LightGBM's debug log.
        params["verbosity"] = 2
        params.pop("verbose", None)
    sizes = np.diff(offsets_from_qid(q))
    record: dict[str, Any] = {}
    with ExitStack() as stack:
        stack.enter_context(engine_errors("lightgbm", cfg.params))
        log = stack.enter_context(lightgbm_log()) if position is not None else None
        dtrain = lgb.Dataset(
            X,
            label=y,
            group=sizes,
            weight=w,
            position=None if position is None else position - 1,
            feature_name=list(names),
            free_raw_data=False,
        )
        valid_sets, valid_names = [dtrain], ["train"]
        if valid is not None:
            Xv, yv, qv = valid
            dvalid = lgb.Dataset(
                Xv,
                label=yv,
                group=np.diff(offsets_from_qid(qv)),
                reference=dtrain,
                feature_name=list(names),
            )
            valid_sets.append(dvalid)
            valid_names.append("valid")
        callbacks: list[Any] = [lgb.record_evaluation(record)]
        if on_round is not None and valid is not None:

            def report(env: Any) -> None:
                for data_name, _metric, value, _higher in env.evaluation_result_list:
                    if data_name == "valid":
                        on_round(env.iteration, float(value))
                        return

            callbacks.append(report)
        if valid is not None and cfg.early_stopping_rounds is not None:
            callbacks.append(
                lgb.early_stopping(cfg.early_stopping_rounds, first_metric_only=True, verbose=False)
            )
        booster = lgb.train(
            params,
            dtrain,
            num_boost_round=cfg.n_estimators,
            valid_sets=valid_sets,
            valid_names=valid_names,
            callbacks=callbacks,
            init_model=init_model,
        )
    if log is not None and sink is not None and position is not None:
        bias = lightgbm_position_bias(log.lines, int(position.max()))
        if bias is None:
            logger.warning("lightgbm wrote no position biases to its log; position_bias_ is None")
        sink.update(bias=bias, source=LIGHTGBM_SOURCE if bias is not None else None)
    best = booster.best_iteration if booster.best_iteration > 0 else booster.current_iteration()
    curves = {name: {k: list(map(float, v)) for k, v in m.items()} for name, m in record.items()}
    return booster, int(best), curves


def xgboost_params(
    cfg: LambdaMARTConfig, device: str, names: Sequence[str] = ()
) -> dict[str, Any]:
    """XGBoost parameters of ``cfg`` (shared by the local and the Dask trainer).

    ``names`` are the model's features in column order (for ``cfg.monotone``).
    """
    exp_gain = True
    if cfg.label_gain is not None:
        labels = np.arange(len(cfg.label_gain))
        if np.allclose(cfg.label_gain, 2.0**labels - 1):
            exp_gain = True
        elif np.allclose(cfg.label_gain, labels):
            exp_gain = False
        else:
            raise ConfigError(
                "xgboost supports only the exponential (2^l - 1) or linear (l) label gain"
            )
    params: dict[str, Any] = {
        "objective": cfg.resolved_objective,
        "eval_metric": f"ndcg@{cfg.eval_at}",
        "ndcg_exp_gain": exp_gain,
        "eta": cfg.learning_rate,
        "max_depth": cfg.max_depth if cfg.max_depth > 0 else 6,
        "min_child_weight": 0.0,
        "subsample": cfg.subsample,
        "colsample_bytree": cfg.colsample,
        "lambda": cfg.reg_lambda,
        "seed": cfg.seed,
        "tree_method": "hist",
        "device": device,
        "verbosity": 0,
    }
    if cfg.n_jobs:
        params["nthread"] = cfg.n_jobs
    constraints = cfg.monotone_constraints(names)
    if constraints is not None:
        params["monotone_constraints"] = "(" + ",".join(map(str, constraints)) + ")"
    return override("xgboost", params, cfg.params)


def query_weights(w: np.ndarray, q: np.ndarray) -> np.ndarray:
    """One weight per query (XGBoost ranking); the rows of a query must share it."""
    offsets = offsets_from_qid(q)
    per_query = w[offsets[:-1]]
    if not np.allclose(np.repeat(per_query, np.diff(offsets)), w):
        raise DataFormatError("xgboost ranking takes one weight per query; rows of a query differ")
    return per_query


def _train_xgboost(
    cfg: LambdaMARTConfig,
    device: str,
    names: Sequence[str],
    train: Data,
    valid: Valid,
    init_model: Any,
    *,
    position: np.ndarray | None = None,
    sink: dict[str, Any] | None = None,
    gradients: Gradients | None = None,
    on_round: OnRound | None = None,
) -> Result:
    import xgboost as xgb

    X, y, q, w = train
    params = xgboost_params(cfg, device, names)
    if position is not None:
        params = override("xgboost", {**params, **XGBOOST_UNBIASED}, cfg.params)
        offsets = offsets_from_qid(q)
        order = order_by_position(offsets, position)
        X, y, q, position = X[order], y[order], q[order], position[order]
        w = None if w is None else w[order]
        gapped = gapped_groups(offsets, position)
        if gapped:
            logger.warning(
                "%d of %d groups do not show positions 1..n: xgboost takes a row's index in its "
                "group as its position, so their biases are misattributed",
                gapped,
                offsets.shape[0] - 1,
            )
    qcodes = qid_codes(q)
    group_w = None if w is None else query_weights(w, q)
    record: dict[str, Any] = {}
    with engine_errors("xgboost", cfg.params):
        dtrain = xgb.DMatrix(X, label=y, qid=qcodes, feature_names=list(names))
        if group_w is not None:
            dtrain.set_weight(group_w)
        evals = [(dtrain, "train")]
        if valid is not None:
            Xv, yv, qv = valid
            evals.append(
                (xgb.DMatrix(Xv, label=yv, qid=qid_codes(qv), feature_names=list(names)), "valid")
            )
        booster = xgb.train(
            params,
            dtrain,
            num_boost_round=cfg.n_estimators,
            evals=evals,
            early_stopping_rounds=cfg.early_stopping_rounds if valid is not None else None,
            evals_result=record,
            verbose_eval=False,
            xgb_model=init_model,
            obj=None
            if gradients is None
            else (lambda preds, _dtrain: gradients(np.asarray(preds, dtype=np.float64))),
            callbacks=[_XGBoostOnRound(on_round)] if on_round is not None and valid else None,
        )
    if position is not None and sink is not None:
        bias = xgboost_position_bias(booster, int(position.max()))
        sink.update(bias=bias, source=XGBOOST_SOURCE if bias is not None else None)
    best = getattr(booster, "best_iteration", None)
    n_rounds = booster.num_boosted_rounds()
    best_n = (
        int(best) + 1
        if best is not None and valid is not None and cfg.early_stopping_rounds
        else n_rounds
    )
    curves = {name: {k: list(map(float, v)) for k, v in m.items()} for name, m in record.items()}
    return booster, best_n, curves


def _XGBoostOnRound(on_round: OnRound) -> Any:
    """An XGBoost callback passing each round's validation metric to ``on_round``."""
    import xgboost as xgb

    class Report(xgb.callback.TrainingCallback):
        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            valid = evals_log.get("valid")
            if valid:
                on_round(epoch, float(next(iter(valid.values()))[-1]))
            return False

    return Report()


def local_trainer(engine: str, *, on_round: OnRound | None = None) -> Trainer:
    """The in-process trainer of ``engine``, with options the ranker's own lacks.

    Args:
        engine: ``lightgbm`` or ``xgboost``.
        on_round: Called after every boosting round with ``(round, validation
            NDCG@k)`` when there is a validation set; an exception it raises
            (``optuna.TrialPruned``, say) stops training and propagates.
    """
    if engine not in _LOCAL_TRAINERS:
        raise ConfigError(f"engine must be one of {ENGINES}, got {engine!r}")
    return cast(Trainer, functools.partial(_LOCAL_TRAINERS[engine], on_round=on_round))


#: The local (in-process) trainer of each engine.
_TRAINERS: dict[str, Trainer] = {"lightgbm": _train_lightgbm, "xgboost": _train_xgboost}
#: The same trainers with their keyword options (the shown position of unbiased
#: LambdaMART, a custom objective's gradients); in-process only.
_LOCAL_TRAINERS: dict[str, Callable[..., Result]] = {
    "lightgbm": _train_lightgbm,
    "xgboost": _train_xgboost,
}
