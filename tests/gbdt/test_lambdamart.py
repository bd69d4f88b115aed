from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from hybridrank.errors import ConfigError, DataFormatError
from hybridrank.evaluate import ndcg_at_k
from hybridrank.gbdt import LambdaMARTConfig, LambdaMARTRanker, resolve_device

from .conftest import make_ranking


class RankerContract:
    """What every ranker must do; subclasses say how to build one."""

    def make(self, **kw: object) -> LambdaMARTRanker:
        raise NotImplementedError

    def test_fit_predict_shapes_and_quality(self, ranking_data) -> None:
        X, y, qid = ranking_data
        ranker = self.make().fit(X, y, qid=qid)
        scores = ranker.predict(X)
        assert scores.shape == (X.shape[0],)
        assert np.isfinite(scores).all()
        assert np.nanmean(ndcg_at_k(scores, y, qid=qid, k=10)) > 0.7
        assert ranker.feature_names_ == [f"f{i}" for i in range(X.shape[1])]

    def test_deterministic(self, ranking_data) -> None:
        X, y, qid = ranking_data
        a = self.make(subsample=0.8, colsample=0.8).fit(X, y, qid=qid).predict(X)
        b = self.make(subsample=0.8, colsample=0.8).fit(X, y, qid=qid).predict(X)
        np.testing.assert_array_equal(a, b)

    def test_scores_do_not_depend_on_row_order(self, ranking_data) -> None:
        X, y, qid = ranking_data
        ranker = self.make().fit(X, y, qid=qid)
        perm = np.random.default_rng(0).permutation(X.shape[0])
        np.testing.assert_allclose(ranker.predict(X[perm]), ranker.predict(X)[perm], rtol=1e-6)

    def test_missing_values_are_allowed(self, ranking_data) -> None:
        X, y, qid = ranking_data
        Xn = X.copy()
        Xn[::7, 0] = np.nan
        scores = self.make().fit(Xn, y, qid=qid).predict(Xn)
        assert np.isfinite(scores).all()

    def test_dataframe_names_and_schema_errors(self, ranking_data) -> None:
        X, y, qid = ranking_data
        frame = pd.DataFrame(X, columns=[f"feat_{i}" for i in range(X.shape[1])])
        ranker = self.make().fit(frame, y, qid=qid)
        assert ranker.feature_names_[0] == "feat_0"
        with pytest.raises(DataFormatError, match="feature columns differ"):
            ranker.predict(frame.rename(columns={"feat_0": "other"}))
        with pytest.raises(DataFormatError, match="expects"):
            ranker.predict(X[:, :3])

    def test_bad_input(self, ranking_data) -> None:
        X, y, qid = ranking_data
        with pytest.raises(DataFormatError, match="not contiguous"):
            self.make().fit(X[:6], y[:6], qid=np.array([0, 0, 1, 1, 0, 0]))
        y_nan = y.astype(float)
        y_nan[3] = np.nan
        with pytest.raises(DataFormatError, match="missing"):
            self.make().fit(X, y_nan, qid=qid)
        with pytest.raises(DataFormatError, match="integers"):
            self.make().fit(X, y + 0.5, qid=qid)
        with pytest.raises(RuntimeError, match="not fitted"):
            self.make().predict(X)

    def test_early_stopping_and_curves(self, ranking_data) -> None:
        X, y, qid = ranking_data
        ranker = self.make(
            n_estimators=300, early_stopping_rounds=10, min_validation_queries=0
        ).fit(X, y, qid=qid)
        assert "valid" in ranker.evals_result_
        assert 1 <= ranker.best_iteration_ <= 300
        assert ranker.round_selection_ == "holdout"

    def test_small_query_sets_choose_rounds_by_cross_validation(self, ranking_data, caplog) -> None:
        X, y, qid = ranking_data
        n_queries = len(np.unique(qid))
        with caplog.at_level(logging.INFO, logger="hybridrank.gbdt._lambdamart"):
            ranker = self.make(
                n_estimators=40, early_stopping_rounds=5, cv_folds=3,
                min_validation_queries=n_queries,
            ).fit(X, y, qid=qid)  # fmt: skip
        assert ranker.round_selection_ == f"3-fold cross-validation over {n_queries} queries"
        assert ranker.cv_curve_ is not None and 1 <= ranker.cv_curve_.shape[0] <= 40
        # The refit trains on every query, exactly the rounds the mean curve peaks at.
        assert ranker.best_iteration_ == int(np.argmax(ranker.cv_curve_)) + 1
        assert "valid" not in ranker.evals_result_
        assert len(ranker.evals_result_["train"]["ndcg@10"]) == ranker.best_iteration_
        assert "min_validation_queries" in caplog.text

    def test_too_few_queries_is_warned_once_then_logged(
        self, ranking_data, caplog, monkeypatch
    ) -> None:
        from hybridrank.gbdt import _lambdamart

        monkeypatch.setattr(_lambdamart, "_FEW_QUERIES_WARNED", False)
        X, y, qid = ranking_data
        few = len(np.unique(qid)) + 1  # more than the data has: "only roughly"
        with caplog.at_level(logging.INFO, logger="hybridrank.gbdt._lambdamart"):
            for _ in range(3):
                self.make(n_estimators=10, early_stopping_rounds=3, cv_folds=2,
                          min_validation_queries=few).fit(X, y, qid=qid)  # fmt: skip
        roughly = [r for r in caplog.records if "only roughly" in r.getMessage()]
        assert [r.levelno for r in roughly] == [logging.WARNING, logging.INFO, logging.INFO]
        assert "further such notes: at INFO level" in roughly[0].getMessage()

    def test_save_load_round_trip(self, ranking_data, tmp_path: Path) -> None:
        X, y, qid = ranking_data
        ranker = self.make().fit(X, y, qid=qid)
        paths = ranker.save(tmp_path / "m")
        assert paths["dump"].stat().st_size > 100
        loaded = LambdaMARTRanker.load(tmp_path / "m")
        np.testing.assert_allclose(loaded.predict(X), ranker.predict(X), rtol=1e-6)
        assert all(p.parent == tmp_path / "m" and p.exists() for p in paths.values())

    def test_a_failed_save_leaves_the_previous_model(
        self, ranking_data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A retrain saved over a working model writes a sibling and renames it: a crash
        half-way leaves the working model whole; a folder of the user's is never replaced."""
        X, y, qid = ranking_data
        ranker = self.make().fit(X, y, qid=qid)
        ranker.save(tmp_path / "m")
        before = LambdaMARTRanker.load(tmp_path / "m").predict(X)
        other = self.make(n_estimators=3).fit(X, y, qid=qid)

        def crash(*args: Any, **kwargs: Any) -> None:
            raise OSError("disk full")

        # The crash comes at the last file, ranker.json, after the model files are written.
        monkeypatch.setattr("hybridrank.gbdt._lambdamart.write_text", crash)
        with pytest.raises(OSError, match="disk full"):
            other.save(tmp_path / "m")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
        np.testing.assert_allclose(LambdaMARTRanker.load(tmp_path / "m").predict(X), before)
        (tmp_path / "mine").mkdir()
        (tmp_path / "mine" / "notes.txt").write_text("keep")
        with pytest.raises(FileExistsError, match="not written by hybridrank"):
            ranker.save(tmp_path / "mine")
        assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"

    def test_trainer_hook(self, ranking_data) -> None:
        """``fit(trainer=...)`` hands the settled rows, holdout and device to the given trainer."""
        from hybridrank.gbdt import Data, Result, Trainer, Valid
        from hybridrank.gbdt._lambdamart import _TRAINERS

        X, y, qid = ranking_data
        calls: list[tuple[Any, ...]] = []

        def recording(
            cfg: LambdaMARTConfig,
            device: str,
            names: Sequence[str],
            train: Data,
            valid: Valid,
            init_model: Any,
        ) -> Result:
            calls.append((cfg, device, list(names), train, valid, init_model))
            return _TRAINERS[cfg.engine](cfg, device, names, train, valid, init_model)

        trainer: Trainer = recording
        kw = {"n_estimators": 20, "early_stopping_rounds": 5, "min_validation_queries": 0}
        ranker = self.make(**kw).fit(X, y, qid=qid, trainer=trainer)
        plain = self.make(**kw).fit(X, y, qid=qid)
        np.testing.assert_array_equal(ranker.predict(X), plain.predict(X))
        [(cfg, device, names, train, valid, init_model)] = calls
        assert cfg == ranker.get_config() and device == "cpu" and init_model is None
        assert names == ranker.feature_names_
        # The early-stopping holdout was cut before the trainer: whole queries, all rows used once.
        assert valid is not None
        assert train[0].shape[0] + valid[0].shape[0] == X.shape[0]
        assert not set(train[2]) & set(valid[2])

    def test_importance_and_contributions(self, ranking_data) -> None:
        X, y, qid = ranking_data
        ranker = self.make().fit(X, y, qid=qid)
        gain = ranker.importance("gain")
        assert gain.index.tolist() == ranker.feature_names_ and gain.sum() > 0
        contrib = ranker.predict_contributions(X)
        assert contrib.shape == (X.shape[0], X.shape[1] + 1)
        # SHAP values plus the bias add up to the score.
        np.testing.assert_allclose(contrib.sum(axis=1), ranker.predict(X), rtol=1e-4, atol=1e-4)


class TestLightGBMRanker(RankerContract):
    def make(self, **kw: object) -> LambdaMARTRanker:
        params = {
            "engine": "lightgbm",
            "n_estimators": 40,
            "early_stopping_rounds": None,
            "min_child_samples": 5,
        }
        return LambdaMARTRanker(**{**params, **kw})

    def test_group_limit(self) -> None:
        X = np.zeros((10_001, 2), dtype=np.float32)
        with pytest.raises(DataFormatError, match="at most 10000"):
            self.make().fit(X, np.zeros(10_001), qid=np.zeros(10_001))


class TestXGBoostRanker(RankerContract):
    def make(self, **kw: object) -> LambdaMARTRanker:
        params = {
            "engine": "xgboost",
            "n_estimators": 40,
            "early_stopping_rounds": None,
            "max_depth": 4,
        }
        return LambdaMARTRanker(**{**params, **kw})

    def test_per_query_weights_only(self, ranking_data) -> None:
        X, y, qid = ranking_data
        w = np.random.default_rng(0).random(X.shape[0])
        with pytest.raises(DataFormatError, match="one weight per query"):
            self.make().fit(X, y, qid=qid, sample_weight=w)
        per_query = np.repeat(np.arange(1, 61, dtype=float), np.bincount(qid))
        self.make().fit(X, y, qid=qid, sample_weight=per_query)


def _lgb_params(cfg: LambdaMARTConfig) -> dict[str, object]:
    return {
        "objective": "lambdarank",
        "metric": "ndcg",
        "ndcg_eval_at": [10],
        "learning_rate": cfg.learning_rate,
        "num_leaves": cfg.num_leaves,
        "min_data_in_leaf": cfg.min_child_samples,
        "seed": 0,
        "deterministic": True,
        "verbose": -1,
    }


def test_parity_with_plain_lightgbm_train() -> None:
    X, y, qid = make_ranking(n_queries=120, seed=1)
    Xt, yt, qt = make_ranking(n_queries=60, seed=2)
    cfg = LambdaMARTConfig(n_estimators=100, early_stopping_rounds=None)
    ours = LambdaMARTRanker(cfg).fit(X, y, qid=qid).predict(Xt)
    booster = lgb.train(
        _lgb_params(cfg), lgb.Dataset(X, y, group=np.bincount(qid)), num_boost_round=100
    )
    theirs = booster.predict(Xt)
    a = np.nanmean(ndcg_at_k(ours, yt, qid=qt, k=10))
    b = np.nanmean(ndcg_at_k(theirs, yt, qid=qt, k=10))
    assert abs(a - b) < 0.002


def test_parity_with_plain_xgboost_train() -> None:
    X, y, qid = make_ranking(n_queries=120, seed=1)
    Xt, yt, qt = make_ranking(n_queries=60, seed=2)
    cfg = LambdaMARTConfig(
        engine="xgboost", n_estimators=100, early_stopping_rounds=None, max_depth=6
    )
    ours = LambdaMARTRanker(cfg).fit(X, y, qid=qid).predict(Xt)
    params = {
        "objective": "rank:ndcg",
        "eta": 0.05,
        "max_depth": 6,
        "min_child_weight": 0.0,
        "seed": 0,
        "tree_method": "hist",
        "eval_metric": "ndcg@10",
        "lambda": 0.0,
    }
    booster = xgb.train(params, xgb.DMatrix(X, y, qid=qid), num_boost_round=100)
    theirs = booster.predict(xgb.DMatrix(Xt))
    a = np.nanmean(ndcg_at_k(ours, yt, qid=qt, k=10))
    b = np.nanmean(ndcg_at_k(theirs, yt, qid=qt, k=10))
    assert abs(a - b) < 0.002


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="engine"):
        LambdaMARTConfig(engine="catboost")
    with pytest.raises(ConfigError, match="not a ranking objective"):
        LambdaMARTConfig(engine="xgboost", objective="lambdarank")
    with pytest.raises(ConfigError, match="unknown keys"):
        LambdaMARTConfig.from_dict({"trees": 3})
    with pytest.raises(ConfigError, match="label gain"):
        X, y, qid = make_ranking(n_queries=10)
        LambdaMARTRanker(engine="xgboost", label_gain=[0, 1, 5, 6], early_stopping_rounds=None).fit(
            X, y, qid=qid
        )


def test_device_resolution_on_cpu_machine() -> None:
    assert resolve_device("cpu", "lightgbm") == "cpu"
    with pytest.raises(ConfigError):
        resolve_device("tpu", "xgboost")
    from hybridrank.gbdt._device import cuda_visible

    if not cuda_visible():
        assert resolve_device("auto", "xgboost") == "cpu"
        with pytest.raises(ConfigError, match="no NVIDIA GPU"):
            resolve_device("cuda", "xgboost")


@pytest.mark.gpu
def test_xgboost_cuda_matches_cpu(ranking_data) -> None:
    X, y, qid = ranking_data
    cpu = LambdaMARTRanker(engine="xgboost", n_estimators=50, early_stopping_rounds=None).fit(
        X, y, qid=qid
    )
    gpu = LambdaMARTRanker(
        engine="xgboost", n_estimators=50, early_stopping_rounds=None, device="cuda"
    )
    gpu.fit(X, y, qid=qid)
    assert gpu.device_ == "cuda"
    a = np.nanmean(ndcg_at_k(cpu.predict(X), y, qid=qid, k=10))
    b = np.nanmean(ndcg_at_k(gpu.predict(X), y, qid=qid, k=10))
    assert abs(a - b) < 0.01


@pytest.mark.parametrize("engine", ["lightgbm", "xgboost"])
def test_local_trainer_reports_every_round_and_an_exception_stops_training(
    engine: str, ranking_data
) -> None:
    from hybridrank.gbdt import local_trainer

    X, y, qid = ranking_data
    valid = np.isin(qid, np.unique(qid)[:10])
    seen: list[tuple[int, float]] = []
    LambdaMARTRanker(engine=engine, n_estimators=7, early_stopping_rounds=None).fit(
        X[~valid], y[~valid], qid=qid[~valid], eval_set=(X[valid], y[valid]), eval_qid=qid[valid],
        trainer=local_trainer(engine, on_round=lambda i, v: seen.append((i, v))),
    )  # fmt: skip
    assert [i for i, _ in seen] == list(range(7)) and all(0 <= v <= 1 for _, v in seen)

    class Stop(Exception):
        pass

    def stop(i: int, value: float) -> None:
        if i == 2:
            raise Stop

    with pytest.raises(Stop):
        LambdaMARTRanker(engine=engine, n_estimators=50, early_stopping_rounds=None).fit(
            X[~valid], y[~valid], qid=qid[~valid], eval_set=(X[valid], y[valid]),
            eval_qid=qid[valid], trainer=local_trainer(engine, on_round=stop),
        )  # fmt: skip


@pytest.mark.parametrize("engine", ["lightgbm", "xgboost"])
def test_monotone_constraints_by_feature_name(engine: str, caplog) -> None:
    X, y, qid = make_ranking(n_queries=120, seed=5)
    names = [f"x{i}" for i in range(X.shape[1])]
    frame = pd.DataFrame(X, columns=names)
    # x0 may only raise the score, x1 only lower it; "absent" is not a feature of this model.
    monotone = {"x0": 1, "x1": -1, "absent": 1}
    with caplog.at_level(logging.WARNING, logger="hybridrank.gbdt._lambdamart"):
        ranker = LambdaMARTRanker(
            engine=engine, n_estimators=40, early_stopping_rounds=None, monotone=monotone
        ).fit(frame, y, qid=qid)
    assert "['absent'] not among the model's features" in caplog.text
    grid = np.linspace(frame["x0"].min(), frame["x0"].max(), 25)
    for row in range(0, 200, 40):
        sweep = pd.DataFrame(np.repeat(X[row : row + 1], grid.size, axis=0), columns=names)
        sweep["x0"] = grid
        assert (np.diff(ranker.predict(sweep)) >= -1e-9).all()
        sweep = pd.DataFrame(np.repeat(X[row : row + 1], grid.size, axis=0), columns=names)
        sweep["x1"] = np.linspace(frame["x1"].min(), frame["x1"].max(), grid.size)
        assert (np.diff(ranker.predict(sweep)) <= 1e-9).all()
    assert ranker.get_params()["monotone"] == monotone


def test_monotone_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"gbdt\.monotone\.bm25 must be 1 \(rising\) or -1"):
        LambdaMARTConfig(monotone={"bm25": 0})
    with pytest.raises(ConfigError, match="not both"):
        LambdaMARTConfig(monotone={"bm25": 1}, params={"monotone_constraints": [1]})
    assert LambdaMARTConfig().monotone_constraints(["a", "b"]) is None
    assert LambdaMARTConfig(monotone={"b": -1}).monotone_constraints(["a", "b"]) == [0, -1]
