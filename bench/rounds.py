"""Round selection on small query sets: a 10% holdout against cross-validated rounds.

LambdaMART's default early stopping holds out 10% of the training queries; on
a few dozen queries that is a handful, and boosting stops after a few rounds.
With ``min_validation_queries`` (default 30) the ranker instead chooses the
round count by ``cv_folds``-fold cross-validation over every training query
and refits on all of them. This script trains both ways on small query
samples of a LETOR file (default: MQ2008 fold 1, ``vali.txt``; tested on
``test.txt``), both engines, several draws, and prints test NDCG@10 and the
rounds each chose.

Usage:
  python bench/rounds.py [--letor DIR] [--queries 43] [--draws 5]
Ends with:
  RESULT rounds_cv_minus_holdout_ndcg10 <mean gain over draws and engines> target >= 0 : met|missed
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from hybridrank.data import read_svmlight
from hybridrank.evaluate import ndcg_at_k
from hybridrank.gbdt import LambdaMARTConfig, LambdaMARTRanker

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "letor" / "mq2008-fold1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--letor", default=str(DEFAULT), help="directory with vali.txt and test.txt")
    parser.add_argument("--queries", type=int, default=43, help="training queries per draw")
    parser.add_argument("--draws", type=int, default=5)
    args = parser.parse_args()
    start = time.perf_counter()
    root = Path(args.letor)
    train, test = read_svmlight(root / "vali.txt"), read_svmlight(root / "test.txt")
    qids = pd.unique(train.qid)
    rows = []
    for draw in range(args.draws):
        rng = np.random.default_rng(draw)
        chosen = set(rng.choice(qids, size=min(args.queries, len(qids)), replace=False).tolist())
        keep = np.isin(train.qid, list(chosen))
        X, y, q = train.X[keep], train.y[keep], train.qid[keep]
        for engine in ("lightgbm", "xgboost"):
            for how, minimum in (("holdout 10%", 0), ("cross-validated", 30)):
                cfg = LambdaMARTConfig(engine=engine, n_jobs=2, min_validation_queries=minimum,
                                       seed=draw)  # fmt: skip
                ranker = LambdaMARTRanker(cfg).fit(X, y, qid=q)
                score = float(np.nanmean(ndcg_at_k(ranker.predict(test.X), test.y, qid=test.qid, k=10)))
                rows.append({"draw": draw, "engine": engine, "rounds from": how,
                             "rounds": ranker.best_iteration_, "test ndcg@10": score})  # fmt: skip
    frame = pd.DataFrame(rows)
    table = frame.groupby(["engine", "rounds from"]).agg(
        rounds=("rounds", "median"), ndcg=("test ndcg@10", "mean"), sd=("test ndcg@10", "std")
    )
    print(f"# {root.name}: {args.queries} training queries per draw, {args.draws} draws; "
          f"test on {len(pd.unique(test.qid))} queries\n")  # fmt: skip
    print(table.to_markdown(floatfmt=".3f"))
    wide = frame.pivot_table(index=["draw", "engine"], columns="rounds from", values="test ndcg@10")
    gain = float((wide["cross-validated"] - wide["holdout 10%"]).mean())
    print(f"\nmean gain of cross-validated rounds: {gain:+.4f} NDCG@10 "
          f"({time.perf_counter() - start:.0f}s)")  # fmt: skip
    print(f"RESULT rounds_cv_minus_holdout_ndcg10 {gain:.4f} target >= 0 : "
          f"{'met' if gain >= 0 else 'missed'}")  # fmt: skip


if __name__ == "__main__":
    main()
