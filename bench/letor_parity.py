"""Parity of ``dataset import`` + ``train gbdt`` with a plain ``lightgbm.train`` call on LETOR files.

The train file is imported as a dataset (:func:`hybridrank.pipelines.import_dataset`),
written, and trained on with :func:`hybridrank.pipelines.train_gbdt` (label
``expert``: the file's grades; features ``dataset``: its ``f1..fN``). The same
parameters (:func:`hybridrank.gbdt.lightgbm_params` of the same config) then
go to ``lightgbm.train`` on the rows of the SVMlight file as read, in file
order. Both models score the test file; the predictions must agree to 1e-9
and so must test NDCG@10. No early stopping, one thread, deterministic.

Default data: LETOR 4.0 MQ2008 fold 1 from ../shared/datasets/letor (train on
vali.txt, test on test.txt: the fold's train split is not in the workplace copy).

Ends with: RESULT letor_parity_max_abs_diff <max |ours - raw|> target <= 1e-9 : met|missed
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from hybridrank import columns as C
from hybridrank.data import Dataset, read_svmlight
from hybridrank.evaluate import ndcg_at_k
from hybridrank.gbdt import LambdaMARTConfig, lightgbm_params
from hybridrank.pipelines import GBDTTrainConfig, ImportConfig, import_dataset, train_gbdt

TARGET = 1e-9
LETOR = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "letor"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train", type=Path, default=LETOR / "mq2008-fold1" / "vali.txt")
    parser.add_argument("--test", type=Path, default=LETOR / "mq2008-fold1" / "test.txt")
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--keep", type=Path, help="keep the dataset and run directories here")
    args = parser.parse_args()

    gbdt = LambdaMARTConfig(
        engine="lightgbm",
        n_estimators=args.rounds,
        early_stopping_rounds=None,
        n_jobs=1,
        seed=0,
    )
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        start = time.perf_counter()
        dataset = import_dataset(ImportConfig(letor=(str(args.train),)))
        ds_dir = dataset.write(work / "dataset")
        config = GBDTTrainConfig(
            dataset=str(ds_dir), label="expert", features=("dataset",), gbdt=gbdt
        )
        run = train_gbdt(config, work / "run", progress=False)
        ours_s = time.perf_counter() - start

        # The raw call: the SVMlight file as read, rows in file order, the same parameters.
        import lightgbm as lgb

        train = read_svmlight(args.train)
        read_back = Dataset.read(ds_dir).candidates
        same_rows = np.array_equal(
            read_back[run.features].to_numpy(np.float32), train.X
        ) and np.array_equal(read_back[C.Y_EXPERT].to_numpy(), train.y)
        sizes = np.diff(np.flatnonzero(np.r_[True, train.qid[1:] != train.qid[:-1], True]))
        params = lightgbm_params(gbdt, "cpu", (train.X, train.y, train.qid, None), None)
        start = time.perf_counter()
        booster = lgb.train(
            params,
            lgb.Dataset(train.X, label=train.y, group=sizes),
            num_boost_round=gbdt.n_estimators,
        )
        raw_s = time.perf_counter() - start

        test = read_svmlight(args.test, n_features=train.X.shape[1])
        ours = run.ranker.predict(pd.DataFrame(test.X, columns=run.features))
        raw = np.asarray(booster.predict(test.X), dtype=np.float64)

    diff = float(np.max(np.abs(ours - raw))) if ours.size else 0.0
    ndcg_ours = float(np.nanmean(ndcg_at_k(ours, test.y, qid=test.qid, k=10)))
    ndcg_raw = float(np.nanmean(ndcg_at_k(raw, test.y, qid=test.qid, k=10)))
    print(f"train {args.train}: {train.X.shape[0]} rows, {train.n_queries} queries, "
          f"{train.X.shape[1]} features; test {args.test}: {test.X.shape[0]} rows, "
          f"{test.n_queries} queries")  # fmt: skip
    print(f"imported rows equal the file's rows in file order: {same_rows}")
    print(f"{'':<34}{'test NDCG@10':>14}")
    print(f"{'hybridrank (import + train gbdt)':<34}{ndcg_ours:>14.6f}   ({ours_s:.1f}s incl. CV)")
    print(f"{'lightgbm.train':<34}{ndcg_raw:>14.6f}   ({raw_s:.1f}s)")
    print(f"NDCG@10 difference: {abs(ndcg_ours - ndcg_raw):.3g}")
    met = diff <= TARGET and same_rows and abs(ndcg_ours - ndcg_raw) <= TARGET
    print(
        f"RESULT letor_parity_max_abs_diff {diff:.3g} target <= 1e-9 : {'met' if met else 'missed'}"
    )


if __name__ == "__main__":
    main()
