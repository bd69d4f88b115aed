"""Engine parameters: free-form keys checked against the engine's list, typed ranges, engine errors."""

from __future__ import annotations

import numpy as np
import pytest
from lightgbm.basic import LightGBMError

from hybridrank.errors import ConfigError
from hybridrank.gbdt import EngineError, LambdaMARTConfig, LambdaMARTRanker, known_parameters
from hybridrank.gbdt._params import engine_errors

from .conftest import make_ranking


@pytest.mark.parametrize(
    ("engine", "key", "closest"),
    [
        ("lightgbm", "num_leafs", "num_leaves"),
        ("lightgbm", "min_data_in_leafs", "min_data_in_leaf"),
        ("xgboost", "max_dept", "max_depth"),
        ("xgboost", "lambdarank_pair_metod", "lambdarank_pair_method"),
    ],
)
def test_misspelt_param_names_the_closest(engine: str, key: str, closest: str) -> None:
    with pytest.raises(ConfigError, match=rf"gbdt\.params\.{key}: .*did you mean '{closest}'"):
        LambdaMARTConfig(engine=engine, params={key: 7})


def test_misspelt_param_from_yaml_form() -> None:
    with pytest.raises(ConfigError, match="num_leafs"):
        LambdaMARTConfig.from_dict({"params": {"num_leafs": 7}})


@pytest.mark.parametrize(
    ("engine", "params"),
    [
        ("lightgbm", {"max_bin": 63, "min_sum_hessian_in_leaf": 1e-3, "verbose": -1}),
        ("lightgbm", {"lambdarank_position_bias_regularization": 0.1, "max_leaves": 15}),
        ("xgboost", {"gamma": 0.1, "learning_rate": 0.1, "max_bin": 64}),
        ("xgboost", {"lambdarank_pair_method": "mean", "lambdarank_bias_norm": 1.0}),
    ],
)
def test_engine_names_and_aliases_pass(engine: str, params: dict[str, object]) -> None:
    LambdaMARTConfig(engine=engine, params=params)
    assert set(params) <= known_parameters(
        engine, LambdaMARTConfig(engine=engine).resolved_objective
    )


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("num_leaves", -3, ">= 2"),
        ("num_leaves", 1, ">= 2"),
        ("learning_rate", 0.0, "> 0"),
        ("n_estimators", 0, ">= 1"),
        ("max_depth", 0, "-1"),
        ("min_child_samples", -1, ">= 0"),
        ("subsample", 0.0, r"\(0, 1\]"),
        ("subsample", 1.5, r"\(0, 1\]"),
        ("colsample", 0.0, r"\(0, 1\]"),
        ("reg_lambda", -1.0, ">= 0"),
        ("eval_at", 0, ">= 1"),
        ("early_stopping_rounds", 0, ">= 1"),
        ("validation_fraction", 1.0, r"\(0, 1\)"),
        ("n_jobs", -1, ">= 0"),
        ("label_gain", (0.0, -1.0), ">= 0"),
        ("device", "gpu", "cpu"),
    ],
)
def test_typed_ranges(field: str, value: object, rule: str) -> None:
    with pytest.raises(ConfigError, match=rf"gbdt\.{field} must be .*{rule}"):
        LambdaMARTConfig(**{field: value})  # type: ignore[arg-type]


def test_range_errors_name_the_key_from_a_dict() -> None:
    with pytest.raises(ConfigError, match=r"gbdt\.num_leaves must be >= 2, got -3"):
        LambdaMARTConfig.from_dict({"num_leaves": -3})


def test_lightgbm_error_is_attributed_to_the_params_key() -> None:
    X, y, qid = make_ranking(n_queries=10)
    # ``subsample`` is LightGBM's alias of bagging_fraction; its C++ check names bagging_fraction.
    ranker = LambdaMARTRanker(engine="lightgbm", n_estimators=2, params={"subsample": 2.0})
    with pytest.raises(ConfigError, match=r"gbdt\.params\.subsample: lightgbm refused it"):
        ranker.fit(X, y, qid=qid)


def test_xgboost_error_is_attributed_to_the_params_key() -> None:
    X, y, qid = make_ranking(n_queries=10)
    ranker = LambdaMARTRanker(engine="xgboost", n_estimators=2, params={"gamma": -1.0})
    with pytest.raises(ConfigError, match=r"gbdt\.params\.gamma: xgboost refused it"):
        ranker.fit(X, y, qid=qid)


def test_unattributable_engine_error() -> None:
    with (
        pytest.raises(EngineError, match="lightgbm failed to train: something odd"),
        engine_errors("lightgbm", {}),
    ):
        raise LightGBMError("something odd")


def test_typed_field_named_when_the_engine_names_its_parameter() -> None:
    with pytest.raises(ConfigError, match=r"gbdt\.num_leaves"), engine_errors("lightgbm", {}):
        raise LightGBMError("Check failed: (num_leaves) > (1)")


def test_valid_config_still_trains() -> None:
    X, y, qid = make_ranking(n_queries=10)
    scores = (
        LambdaMARTRanker(engine="lightgbm", n_estimators=3, params={"max_bin": 63})
        .fit(X, y, qid=qid)
        .predict(X)
    )
    assert np.isfinite(scores).all()
