"""Fixtures of the serving tests: trained runs shared by every module, a tiny BERT."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from hybridrank.data import SimulationConfig
from hybridrank.features import CLICK_FEATURES
from hybridrank.gbdt import LambdaMARTConfig
from hybridrank.pipelines import DataConfig, GBDTTrainConfig, WorldConfig, train_gbdt

from ..conftest import write_trec_dir
from ..neural.conftest import tiny_bert

__all__ = ["request_table", "runs", "tiny_bert"]


def _config(root: Path, label: str) -> GBDTTrainConfig:
    return GBDTTrainConfig(
        world=WorldConfig(
            data=DataConfig(format="trec", path=str(root)),
            simulation=SimulationConfig(n_sessions=3000, seed=2, zipf_exponent=0.8),
        ),
        label=label,
        gbdt=LambdaMARTConfig(n_estimators=30, min_child_samples=5, early_stopping_rounds=None),
        metrics=("ndcg@10",),
    )


@pytest.fixture(scope="package")
def runs(tmp_path_factory: pytest.TempPathFactory, tiny_collection) -> dict[str, Path]:
    root = write_trec_dir(tiny_collection, tmp_path_factory.mktemp("trec"))
    click = train_gbdt(_config(root, "click"), tmp_path_factory.mktemp("click")).path
    # The expert-label run stands in for an LLM-supervised GBDT.
    llm = train_gbdt(_config(root, "expert"), tmp_path_factory.mktemp("llm")).path
    return {"click": click, "llm": llm}


def request_table(run: Path) -> pd.DataFrame:
    """The run's candidates as a ranking request: no click features, no labels."""
    table = pd.read_parquet(run / "train_table.parquet")
    drop = [c for c in table.columns if c in CLICK_FEATURES or c.startswith(("y_", "gbdt"))]
    return table.drop(columns=drop)
