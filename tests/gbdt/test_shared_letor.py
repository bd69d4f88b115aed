"""Acceptance: parity with plain library calls on the real LETOR files (marked; CI runs it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hybridrank.data._letor import read_svmlight
from hybridrank.gbdt._parity import parity

pytestmark = pytest.mark.shared_data


@pytest.mark.parametrize(
    ("train_file", "test_file"),
    [
        ("lightgbm-example/rank.train", "lightgbm-example/rank.test"),
        ("mq2008-fold1/vali.txt", "mq2008-fold1/test.txt"),
    ],
)
@pytest.mark.parametrize("engine", ["lightgbm", "xgboost"])
def test_letor_parity(shared_datasets: Path, train_file: str, test_file: str, engine: str) -> None:
    train = read_svmlight(shared_datasets / "letor" / train_file)
    test = read_svmlight(shared_datasets / "letor" / test_file, n_features=train.X.shape[1])
    assert train.n_queries > 100
    p = parity(engine, train, test, n_estimators=60)
    assert p.diff <= 0.002
    assert p.ours > 0.6
