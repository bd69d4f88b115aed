"""Test NDCG@10 of hybridrank's LambdaMART against plain lightgbm.train / xgboost.train calls.

Data: ../shared/datasets/letor: the LightGBM lambdarank example (train on
rank.train, test on rank.test) and LETOR 4.0 MQ2008 fold 1 (train on vali.txt,
test on test.txt: the fold's train split is not in the workplace copy).
Same parameters on both sides, 200 rounds, no early stopping.

Ends with: RESULT letor_parity_max_abs_diff <max |ours - raw|> target <= 0.002 : met|missed
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hybridrank.data._letor import read_svmlight
from hybridrank.gbdt._parity import parity


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--letor",
        type=Path,
        default=Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "letor",
    )
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    sets = {
        "lightgbm-example": ("lightgbm-example/rank.train", "lightgbm-example/rank.test"),
        "mq2008-fold1": ("mq2008-fold1/vali.txt", "mq2008-fold1/test.txt"),
    }
    worst = 0.0
    print(f"{'data':<18}{'engine':<10}{'hybridrank':>12}{'raw call':>10}{'|diff|':>9}")
    for name, (tr, te) in sets.items():
        train = read_svmlight(args.letor / tr)
        test = read_svmlight(args.letor / te, n_features=train.X.shape[1])
        for engine in ("lightgbm", "xgboost"):
            p = parity(engine, train, test, n_estimators=args.rounds)
            worst = max(worst, p.diff)
            print(f"{name:<18}{engine:<10}{p.ours:>12.4f}{p.raw:>10.4f}{p.diff:>9.4f}")
    verdict = "met" if worst <= 0.002 else "missed"
    print(f"RESULT letor_parity_max_abs_diff {worst:.4f} target <= 0.002 : {verdict}")


if __name__ == "__main__":
    main()
