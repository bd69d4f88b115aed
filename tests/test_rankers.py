"""One contract, every ranker: LambdaMART (both engines), FAMOL (both modes), data
scheduling, the frequency-gated stacker, the meta-ranker and the serving ``HybridRanker``.

Each case says how to build the ranker, fit it on small seeded data and
predict; the contract class checks what every ranker promises: the
``Ranker`` protocol, scikit-learn parameters (``clone`` gives an unfitted
copy with the same parameters), ``NotFittedError`` before ``fit``, ``fit``
returning the ranker, one finite score per row, and determinism. A frozen
ranker (``HybridRanker``: built from trained models) is fitted from
construction on: it predicts before ``fit``, and ``fit`` changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError as SklearnNotFittedError
from sklearn.utils.validation import check_is_fitted

from hybridrank import Ranker
from hybridrank.ensemble import (
    DataSchedulingRanker,
    FAMOLConfig,
    FAMOLRanker,
    FrequencyGatedStacker,
    OOFScores,
    SchedulingConfig,
    StackerConfig,
)
from hybridrank.errors import NotFittedError
from hybridrank.features import FeatureSchema
from hybridrank.gbdt import GBDTBundle, LambdaMARTConfig, LambdaMARTRanker
from hybridrank.serve import HybridRanker

from .gbdt.conftest import make_ranking

SMALL = {"n_estimators": 15, "min_child_samples": 5, "early_stopping_rounds": None, "n_jobs": 1}


@dataclass(frozen=True)
class Case:
    make: Callable[[], Any]
    fit: Callable[[Any, dict[str, Any]], Any]
    predict: Callable[[Any, dict[str, Any]], np.ndarray]
    frozen: bool = False


def _data() -> dict[str, Any]:
    X, y, qid = make_ranking(n_queries=40, seed=11)
    rng = np.random.default_rng(0)
    n_q = int(qid.max()) + 1
    freq = np.repeat(rng.integers(0, 50, n_q), np.bincount(qid))
    y_click = np.where(rng.random(y.size) < 0.6, y, np.nan)
    fold = qid % 5
    qs = qid.astype(str)
    trained = {f: frozenset(qs[fold != f].tolist()) for f in range(5)}
    noisy = y + rng.normal(0, 1.0, y.size)
    return {
        "X": X, "y": y, "qid": qid, "freq": freq, "y_click": y_click,
        "oof_click": OOFScores("click", noisy, qs, fold, trained),
        "oof_llm": OOFScores("llm", X[:, 0], qs, fold, trained),
    }  # fmt: skip


def _gbdt(engine: str) -> Case:
    return Case(
        make=lambda: LambdaMARTRanker(LambdaMARTConfig(engine=engine, **SMALL)),
        fit=lambda r, d: r.fit(d["X"], d["y"], qid=d["qid"]),
        predict=lambda r, d: r.predict(d["X"]),
    )


def _hybrid(make: Callable[[], Any]) -> Case:
    return Case(
        make=make,
        fit=lambda r, d: r.fit(d["X"], d["y_click"], d["y"], qid=d["qid"], freq=d["freq"]),
        predict=lambda r, d: r.predict(d["X"]),
    )


def _request(d: dict[str, Any]) -> pd.DataFrame:
    """The small data as a serving request: ids and the features by name."""
    frame = pd.DataFrame(d["X"], columns=[f"f{i}" for i in range(d["X"].shape[1])])
    frame.insert(0, "docid", [f"d{i}" for i in range(len(frame))])
    frame.insert(0, "qid", d["qid"].astype(str))
    return frame


def _frozen_hybrid() -> HybridRanker:
    # A production bundle trained once on the small data, served GBDT-only.
    d = _data()
    request = _request(d)
    names = [c for c in request.columns if c.startswith("f")]
    model = LambdaMARTRanker(LambdaMARTConfig(**SMALL)).fit(request[names], d["y"], qid=d["qid"])
    bundle = GBDTBundle(
        ranker=model, schema=FeatureSchema.from_frame(request, names), config={}, path=Path(".")
    )
    return HybridRanker(bundle, tie_break="none")


CASES: dict[str, Case] = {
    "lambdamart-lightgbm": _gbdt("lightgbm"),
    "lambdamart-xgboost": _gbdt("xgboost"),
    "famol-lightgbm": _hybrid(lambda: FAMOLRanker(FAMOLConfig(gbdt=LambdaMARTConfig(**SMALL)))),
    "famol-xgboost": _hybrid(
        lambda: FAMOLRanker(FAMOLConfig(gbdt=LambdaMARTConfig(engine="xgboost", **SMALL)))
    ),
    "famol-label-mixing": _hybrid(
        lambda: FAMOLRanker(FAMOLConfig(mode="label_mixing", gbdt=LambdaMARTConfig(**SMALL)))
    ),
    "data-scheduling": _hybrid(
        lambda: DataSchedulingRanker(
            SchedulingConfig(stage1_rounds=5, stage2_rounds=5, gbdt=LambdaMARTConfig(**SMALL))
        )
    ),
    "stacker": Case(
        make=lambda: FrequencyGatedStacker(StackerConfig(n_trials=8, seed=0)),
        fit=lambda r, d: r.fit(d["oof_click"], d["oof_llm"], freq=d["freq"], labels=d["y"]),
        predict=lambda r, d: r.predict(
            d["oof_click"].scores, d["oof_llm"].scores, qid=d["oof_click"].qid, freq=d["freq"]
        ),
    ),
    # The experiment's meta-ranker: LambdaMART on the normalised scores and log frequency.
    "meta-ranker": Case(
        make=lambda: LambdaMARTRanker(LambdaMARTConfig(num_leaves=7, **SMALL)),
        fit=lambda r, d: r.fit(
            np.column_stack([d["oof_click"].scores, d["oof_llm"].scores, np.log1p(d["freq"])]),
            d["y"],
            qid=d["qid"],
        ),
        predict=lambda r, d: r.predict(
            np.column_stack([d["oof_click"].scores, d["oof_llm"].scores, np.log1p(d["freq"])])
        ),
    ),
    # The serving ranker: built from trained bundles, so fitted from construction on.
    "hybrid-ranker": Case(
        make=_frozen_hybrid,
        fit=lambda r, d: r.fit(_request(d), d["y"]),
        predict=lambda r, d: r.predict(_request(d)),
        frozen=True,
    ),
}


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    return _data()


@pytest.mark.parametrize("name", sorted(CASES))
class TestRankerContract:
    def test_is_a_ranker_with_sklearn_parameters(self, name: str) -> None:
        ranker = CASES[name].make()
        assert isinstance(ranker, Ranker)
        params = ranker.get_params()
        copy = clone(ranker)
        assert type(copy) is type(ranker) and copy is not ranker
        if CASES[name].frozen:
            # Its parameters are trained models, copied by clone: compared by what they
            # score (below), the rest by value.
            assert copy.get_params().keys() == params.keys()
            plain = {k: v for k, v in params.items() if isinstance(v, str | int | float | None)}
            assert {k: copy.get_params()[k] for k in plain} == plain
        else:
            assert copy.get_params() == params
        assert copy.set_params(**params) is copy
        with pytest.raises((ValueError, TypeError)):
            ranker.set_params(no_such_parameter=1)

    def test_not_fitted_error_before_fit(self, name: str, data: dict[str, Any]) -> None:
        case = CASES[name]
        if case.frozen:
            ranker = case.make()
            before = case.predict(ranker, data)
            assert case.fit(ranker, data) is ranker
            np.testing.assert_array_equal(case.predict(ranker, data), before)
            return
        with pytest.raises(NotFittedError) as info:
            case.predict(case.make(), data)
        # Caught as scikit-learn's own NotFittedError would be.
        assert isinstance(info.value, ValueError) and isinstance(info.value, AttributeError)
        # scikit-learn's own check agrees.
        with pytest.raises(SklearnNotFittedError):
            check_is_fitted(case.make())

    def test_fit_returns_the_ranker_and_scores_every_row(
        self, name: str, data: dict[str, Any]
    ) -> None:
        case = CASES[name]
        ranker = case.make()
        assert case.fit(ranker, data) is ranker
        check_is_fitted(ranker)  # scikit-learn's check: fitted (a frozen ranker always is)
        scores = case.predict(ranker, data)
        assert scores.shape == (data["y"].size,) and np.isfinite(scores).all()
        assert np.unique(scores).size > 1
        # Deterministic: a clone fitted on the same data scores the same.
        again = clone(ranker)
        if case.frozen:
            np.testing.assert_allclose(case.predict(again, data), scores)
        else:
            with pytest.raises(NotFittedError):
                case.predict(again, data)
        np.testing.assert_allclose(case.predict(case.fit(again, data), data), scores)


def test_hybrid_ranker_parameters_are_checked_like_its_constructor() -> None:
    from hybridrank.ensemble import SigmoidGate
    from hybridrank.errors import ConfigError

    ranker = _frozen_hybrid()
    request = _request(_data())
    assert ranker.set_params(tie_break="text") is ranker and ranker.tie_break == "text"
    # An invalid value raises as the constructor would, and leaves the ranker unchanged.
    with pytest.raises(ConfigError, match="tie_break"):
        ranker.set_params(tie_break="random")
    with pytest.raises(ConfigError, match="LLM model and a gate"):
        ranker.set_params(gate=SigmoidGate())
    assert ranker.tie_break == "text" and ranker.gate is None
    np.testing.assert_array_equal(
        ranker.predict(request), ranker.rank_table(request)["score"].to_numpy()
    )
