"""LambdaMART training time: hybridrank's ranker against the raw library call, same data, same parameters.

Data: synthetic, 4,000 queries x 50 documents = 200,000 rows, 136 features
(MSLR-WEB's width), labels 0-4. 200 trees, no early stopping. Each engine is
timed alternately (hybridrank, raw, hybridrank, raw, ...) and the best of
--repeat runs is kept, so load spikes on the machine hit both sides alike.
Where CUDA is visible it also times XGBoost with device="cuda" against CPU.

Usage: python bench/gbdt.py [--repeat 2] [--engines lightgbm xgboost]
Ends with: RESULT gbdt_train_time_ratio <worst hybridrank / raw over engines> target <= 1.05 : met|missed
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np


def make_data(n_queries: int = 4000, per_query: int = 50, n_features: int = 136, seed: int = 0):
    rng = np.random.default_rng(seed)
    n = n_queries * per_query
    X = rng.normal(size=(n, n_features)).astype(np.float32)
    w = rng.normal(size=n_features) * (rng.random(n_features) < 0.3)
    latent = X @ w + rng.normal(0, 2.0, n)
    y = np.digitize(latent, np.quantile(latent, [0.5, 0.75, 0.9, 0.97])).astype(np.int32)
    qid = np.repeat(np.arange(n_queries), per_query)
    return X, y, qid


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--trees", type=int, default=200)
    parser.add_argument("--engines", nargs="+", default=["lightgbm", "xgboost"])
    args = parser.parse_args()

    import lightgbm as lgb
    import xgboost as xgb

    from hybridrank.gbdt import LambdaMARTConfig, LambdaMARTRanker
    from hybridrank.gbdt._device import cuda_visible, xgboost_has_cuda

    X, y, qid = make_data()
    sizes = np.bincount(qid)
    print(
        f"data: {X.shape[0]:,} rows x {X.shape[1]} features, {sizes.size:,} queries; {args.trees} trees"
    )

    ratios = {}
    for engine in args.engines:
        cfg = LambdaMARTConfig(engine=engine, n_estimators=args.trees, early_stopping_rounds=None)

        def ours(cfg: LambdaMARTConfig = cfg) -> object:
            return LambdaMARTRanker(cfg).fit(X, y, qid=qid)

        if engine == "lightgbm":
            params = {
                "objective": "lambdarank",
                "metric": "ndcg",
                "ndcg_eval_at": [10],
                "learning_rate": cfg.learning_rate,
                "num_leaves": cfg.num_leaves,
                "max_depth": cfg.max_depth,
                "min_data_in_leaf": cfg.min_child_samples,
                "bagging_fraction": 1.0,
                "bagging_freq": 0,
                "feature_fraction": 1.0,
                "lambda_l2": 0.0,
                "seed": 0,
                "deterministic": True,
                "verbose": -1,
                "label_gain": [float(2**i - 1) for i in range(32)],
                "device_type": "cpu",
            }

            def raw(params: dict = params) -> object:
                train = lgb.Dataset(X, label=y, group=sizes, free_raw_data=False)
                return lgb.train(
                    params,
                    train,
                    num_boost_round=args.trees,
                    valid_sets=[train],
                    valid_names=["train"],
                    callbacks=[lgb.record_evaluation({})],
                )
        else:
            params = {
                "objective": "rank:ndcg",
                "eval_metric": "ndcg@10",
                "ndcg_exp_gain": True,
                "eta": cfg.learning_rate,
                "max_depth": 6,
                "min_child_weight": 0.0,
                "subsample": 1.0,
                "colsample_bytree": 1.0,
                "lambda": 0.0,
                "seed": 0,
                "tree_method": "hist",
                "device": "cpu",
                "verbosity": 0,
            }

            def raw(params: dict = params) -> object:
                train = xgb.DMatrix(X, label=y, qid=qid)
                return xgb.train(
                    params,
                    train,
                    num_boost_round=args.trees,
                    evals=[(train, "train")],
                    evals_result={},
                    verbose_eval=False,
                )

        t_ours, t_raw = [], []
        for _ in range(args.repeat):
            t_ours.append(timed(ours))
            t_raw.append(timed(raw))
        ratios[engine] = min(t_ours) / min(t_raw)
        print(
            f"{engine:<9} hybridrank {min(t_ours):7.2f}s   raw {min(t_raw):7.2f}s   ratio {ratios[engine]:.3f}"
        )

    if "xgboost" in args.engines and cuda_visible() and xgboost_has_cuda():
        gpu_cfg = LambdaMARTConfig(
            engine="xgboost", n_estimators=args.trees, early_stopping_rounds=None, device="cuda"
        )
        t_gpu = min(
            timed(lambda: LambdaMARTRanker(gpu_cfg).fit(X, y, qid=qid)) for _ in range(args.repeat)
        )
        cpu_cfg = LambdaMARTConfig(
            engine="xgboost", n_estimators=args.trees, early_stopping_rounds=None
        )
        t_cpu = min(
            timed(lambda: LambdaMARTRanker(cpu_cfg).fit(X, y, qid=qid)) for _ in range(args.repeat)
        )
        print(f"xgboost cuda {t_gpu:.2f}s vs cpu {t_cpu:.2f}s: speed-up {t_cpu / t_gpu:.1f}x")
    else:
        print("no CUDA device visible: GPU timing skipped")

    worst = max(ratios.values())
    verdict = "met" if worst <= 1.05 else "missed"
    print(f"RESULT gbdt_train_time_ratio {worst:.3f} target <= 1.05 : {verdict}")


if __name__ == "__main__":
    main()
