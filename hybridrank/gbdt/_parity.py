"""Parity of hybridrank's LambdaMART with plain ``lightgbm.train`` / ``xgboost.train`` calls."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hybridrank._grouping import offsets_from_qid
from hybridrank.data import LetorData
from hybridrank.evaluate import ndcg_at_k
from hybridrank.gbdt._lambdamart import LambdaMARTConfig, LambdaMARTRanker


@dataclass(frozen=True)
class Parity:
    """Test NDCG@10 of the wrapper and of the raw library call with the same parameters."""

    engine: str
    ours: float
    raw: float

    @property
    def diff(self) -> float:
        return abs(self.ours - self.raw)


def raw_library_ndcg(
    engine: str, train: LetorData, test: LetorData, config: LambdaMARTConfig
) -> float:
    """Train with the engine's own API and the parameters the wrapper resolves to."""
    if engine == "lightgbm":
        import lightgbm as lgb

        params = {
            "objective": "lambdarank",
            "metric": "ndcg",
            "ndcg_eval_at": [10],
            "learning_rate": config.learning_rate,
            "num_leaves": config.num_leaves,
            "min_data_in_leaf": config.min_child_samples,
            "lambda_l2": config.reg_lambda,
            "seed": config.seed,
            "deterministic": True,
            "verbose": -1,
        }
        sizes = np.diff(offsets_from_qid(train.qid))
        booster = lgb.train(
            params, lgb.Dataset(train.X, train.y, group=sizes), num_boost_round=config.n_estimators
        )
        scores = booster.predict(test.X)
    else:
        import xgboost as xgb

        params = {
            "objective": "rank:ndcg",
            "eval_metric": "ndcg@10",
            "eta": config.learning_rate,
            "max_depth": config.max_depth if config.max_depth > 0 else 6,
            "min_child_weight": 0.0,
            "lambda": config.reg_lambda,
            "seed": config.seed,
            "tree_method": "hist",
        }
        codes = np.repeat(np.arange(len(sizes := np.diff(offsets_from_qid(train.qid)))), sizes)
        xbooster = xgb.train(
            params, xgb.DMatrix(train.X, train.y, qid=codes), num_boost_round=config.n_estimators
        )
        scores = xbooster.predict(xgb.DMatrix(test.X))
    return float(np.nanmean(ndcg_at_k(scores, test.y, qid=test.qid, k=10)))


def parity(engine: str, train: LetorData, test: LetorData, *, n_estimators: int = 200) -> Parity:
    config = LambdaMARTConfig(engine=engine, n_estimators=n_estimators, early_stopping_rounds=None)
    ours = LambdaMARTRanker(config).fit(train.X, train.y, qid=train.qid).predict(test.X)
    ours_ndcg = float(np.nanmean(ndcg_at_k(ours, test.y, qid=test.qid, k=10)))
    return Parity(engine=engine, ours=ours_ndcg, raw=raw_library_ndcg(engine, train, test, config))
