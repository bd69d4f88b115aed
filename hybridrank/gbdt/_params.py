"""The engines' own parameter lists: free-form ``gbdt.params`` keys are checked against them.

LightGBM publishes every parameter with its aliases (``LGBM_DumpParamAliases``,
read through ``lightgbm.basic._ConfigAliases``); XGBoost lists the parameters
of its configured components in a booster's JSON config (``save_config``,
aliases such as ``learning_rate`` included), taken from a one-round booster of
each tree booster kind on a tiny ranking problem. Both lists are built once
per process.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import json
import logging
import re
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from hybridrank.errors import ConfigError, HybridRankError

logger = logging.getLogger(__name__)

#: XGBoost training parameters that a booster's JSON config does not list.
_XGBOOST_EXTRA = frozenset(
    {"eval_metric", "verbosity", "disable_default_eval_metric", "use_rmm", "nthread"}
)


#: XGBoost's parameter aliases (``DMLC_DECLARE_ALIAS``): alias -> canonical name.
XGBOOST_ALIASES: dict[str, str] = {
    "learning_rate": "eta",
    "min_split_loss": "gamma",
    "reg_lambda": "lambda",
    "reg_alpha": "alpha",
    "random_state": "seed",
    "n_jobs": "nthread",
}


def canonical_name(engine: str, key: str) -> str:
    """The engine's canonical name of parameter ``key`` (itself when unknown)."""
    if engine == "lightgbm":
        return lightgbm_parameters().get(key, key)
    return XGBOOST_ALIASES.get(key, key)


def override(engine: str, params: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` updated by ``extra``, an alias in ``extra`` replacing its canonical entry.

    Both engines keep one value per parameter and do not say which wins when
    a name and its alias are both given; the user's ``gbdt.params`` must.
    """
    out = dict(params)
    for key in extra:
        canonical = canonical_name(engine, key)
        for name in list(out):
            if name != key and canonical_name(engine, name) == canonical:
                del out[name]
    out.update(extra)
    return out


class EngineError(HybridRankError, RuntimeError):
    """The engine refused to train, for a reason no config key explains."""


@functools.cache
def lightgbm_parameters() -> dict[str, str]:
    """Every LightGBM parameter name and alias, mapped to its canonical name."""
    import lightgbm as lgb
    from lightgbm import basic

    aliases: dict[str, list[str]] | None = None
    dump = getattr(getattr(basic, "_ConfigAliases", None), "_get_all_param_aliases", None)
    if callable(dump):
        with contextlib.suppress(Exception):
            aliases = dump()
    if not aliases:
        # Fallback: the canonical names a model file lists under "parameters:" (no aliases).
        X = np.arange(20, dtype=np.float64).reshape(10, 2)
        booster = lgb.train(
            {"objective": "regression", "verbose": -1},
            lgb.Dataset(X, label=np.arange(10.0)),
            num_boost_round=1,
        )
        text = booster.model_to_string()
        block = text[text.index("parameters:") :]
        names = re.findall(r"^\[([a-z0-9_]+):", block, flags=re.MULTILINE)
        aliases = {n: [n] for n in names}
    out: dict[str, str] = {}
    for canonical, names in aliases.items():
        out[canonical] = canonical
        for name in names:
            out.setdefault(name, canonical)
    return out


@functools.cache
def xgboost_parameters(objective: str) -> frozenset[str]:
    """XGBoost parameter names (aliases included) known with the ranking ``objective``."""
    import xgboost as xgb

    rng = np.random.default_rng(0)
    X = rng.random((20, 2))
    dm = xgb.DMatrix(X, label=rng.integers(0, 2, 20), qid=np.repeat(np.arange(4), 5))
    names: set[str] = set(_XGBOOST_EXTRA)
    for booster in ("gbtree", "dart"):
        model = xgb.train(
            {"objective": objective, "booster": booster, "tree_method": "hist", "verbosity": 0},
            dm,
            num_boost_round=1,
        )
        _keys(json.loads(model.save_config()), names)
    names.discard("name")  # the JSON's component names, not parameters
    return frozenset(names)


def _keys(node: Any, out: set[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, dict | list):
                _keys(value, out)
            else:
                out.add(str(key))
    elif isinstance(node, list):
        for value in node:
            _keys(value, out)


def known_parameters(engine: str, objective: str) -> frozenset[str]:
    """Parameter names ``engine`` accepts (with ``objective`` for XGBoost)."""
    if engine == "lightgbm":
        return frozenset(lightgbm_parameters())
    return xgboost_parameters(objective)


def check_params(engine: str, objective: str, params: Mapping[str, Any]) -> None:
    """Refuse a ``gbdt.params`` key the engine does not know, naming the closest one.

    Raises:
        ConfigError: ``gbdt.params.<key>`` is not a parameter of ``engine``.
    """
    known: frozenset[str] | None = None
    for key in params:
        if not isinstance(key, str):
            raise ConfigError(f"gbdt.params: keys must be strings, got {key!r}")
        if known is None:
            known = known_parameters(engine, objective)
        if key in known:
            continue
        hint = _closest(engine, key, known)
        raise ConfigError(
            f"gbdt.params.{key}: not a parameter of {engine}{hint} "
            f"(typed options such as num_leaves go directly under gbdt:)"
        )


def _closest(engine: str, key: str, known: frozenset[str]) -> str:
    """``; did you mean 'x'?`` preferring canonical names (LightGBM's aliases come second)."""
    canonical = sorted(set(lightgbm_parameters().values())) if engine == "lightgbm" else []
    for pool in (canonical, sorted(known)):
        close = difflib.get_close_matches(key, pool, n=1, cutoff=0.6)
        if close:
            return f"; did you mean {close[0]!r}?"
    return ""


#: Typed config fields and the engine parameters they become.
_FIELD_OF: dict[str, dict[str, str]] = {
    "lightgbm": {
        "learning_rate": "learning_rate",
        "num_leaves": "num_leaves",
        "max_depth": "max_depth",
        "min_data_in_leaf": "min_child_samples",
        "bagging_fraction": "subsample",
        "feature_fraction": "colsample",
        "lambda_l2": "reg_lambda",
        "label_gain": "label_gain",
        "ndcg_eval_at": "eval_at",
        "num_threads": "n_jobs",
        "device_type": "device",
    },
    "xgboost": {
        "eta": "learning_rate",
        "max_depth": "max_depth",
        "subsample": "subsample",
        "colsample_bytree": "colsample",
        "lambda": "reg_lambda",
        "nthread": "n_jobs",
        "device": "device",
    },
}


def attribute_engine_error(engine: str, message: str, params: Mapping[str, Any]) -> str | None:
    """The config key (``gbdt.params.x`` or ``gbdt.field``) an engine message names, if any."""
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", message))
    named = words | {canonical_name(engine, w) for w in words}
    for key in params:
        if key in words or canonical_name(engine, key) in named:
            return f"gbdt.params.{key}"
    for name, field in _FIELD_OF[engine].items():
        if name in named:
            return f"gbdt.{field}"
    return None


@contextlib.contextmanager
def engine_errors(engine: str, params: Mapping[str, Any]) -> Iterator[None]:
    """Turn the engine's own error into a hybridrank one naming the config key where possible."""
    engine_error: tuple[type[BaseException], ...]
    if engine == "lightgbm":
        from lightgbm.basic import LightGBMError

        engine_error = (LightGBMError,)
    else:
        from xgboost.core import XGBoostError

        engine_error = (XGBoostError,)
    try:
        yield
    except engine_error as exc:
        message = str(exc).strip()
        first = message.splitlines()[0] if message else type(exc).__name__
        key = attribute_engine_error(engine, message, params)
        if key is not None:
            raise ConfigError(f"{key}: {engine} refused it: {first}") from exc
        raise EngineError(f"{engine} failed to train: {first}") from exc
