"""Click features and click labels from disjoint sessions (``click_split``)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hybridrank import columns as C
from hybridrank.data import SimulationConfig
from hybridrank.errors import ConfigError
from hybridrank.features import CLICK_FEATURES, compute_click_features, join_click_features
from hybridrank.labels import click_labels
from hybridrank.pipelines import (
    ClickSplitConfig,
    GBDTTrainConfig,
    TableOptions,
    WorldConfig,
    build_table,
    build_world,
    train_gbdt,
    training_view,
)
from hybridrank.pipelines._click_split import TRAIN_PREFIX, split_windows
from tests.conftest import make_collection, write_trec_dir


@pytest.fixture(scope="module")
def world():
    config = WorldConfig(simulation=SimulationConfig(n_sessions=1500, seed=3))
    return build_world(
        config, collection=make_collection(n_queries=50, seed=5), stopwords=frozenset()
    )


def test_time_split_takes_labels_from_the_later_sessions_and_features_from_the_earlier(world):
    split = ClickSplitConfig(mode="time", label_share=0.4, unshown="missing")
    table, feats = build_table(world, TableOptions(click_split=split))
    plain, plain_feats = build_table(world)
    earlier, later, how = split_windows(world.impressions, 0.4, by_time=True, seed=0)
    assert how == "latest sessions by time"
    assert earlier[C.TS].max() <= later[C.TS].min()
    # Scoring and serving see the whole log's features, exactly as without a split.
    pd.testing.assert_frame_equal(table[list(CLICK_FEATURES)], plain[list(CLICK_FEATURES)])
    pd.testing.assert_frame_equal(feats.pairs, plain_feats.pairs)
    # Training rows see the earlier window's features, and labels of the later window.
    window = join_click_features(table[[C.QID, C.DOCID]], compute_click_features(earlier))
    for name in CLICK_FEATURES:
        np.testing.assert_array_equal(table[TRAIN_PREFIX + name], window[name])
    expected = click_labels(table, later).grade
    np.testing.assert_array_equal(table[C.Y_CLICK].to_numpy(), expected)
    view = training_view(table)
    assert not any(c.startswith(TRAIN_PREFIX) for c in view.columns)
    np.testing.assert_array_equal(view["qd_ctr_smooth"], window["qd_ctr_smooth"])
    assert training_view(plain) is plain


def test_unshown_candidates_of_searched_queries_get_label_zero(world):
    table, _ = build_table(world, TableOptions(click_split=ClickSplitConfig(mode="session")))
    _, later, _ = split_windows(world.impressions, 0.5, by_time=False, seed=0)
    shown = pd.MultiIndex.from_frame(later[[C.QID, C.DOCID]].drop_duplicates())
    rows = pd.MultiIndex.from_frame(table[[C.QID, C.DOCID]])
    searched = table[C.QID].isin(set(later[C.QID])).to_numpy()
    unshown = ~rows.isin(shown) & searched
    assert unshown.any() and (table.loc[unshown, C.Y_CLICK] == 0).all()
    # A query nobody searched in the label window has no click label at all.
    assert table.loc[~searched, C.Y_CLICK].isna().all()
    assert table.loc[rows.isin(shown), C.Y_CLICK].notna().all()


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"mode": "halves"}, "click_split.mode"),
        ({"label_share": 1.0}, "click_split.label_share"),
        ({"unshown": "drop"}, "click_split.unshown"),
        ({"window": 3}, "click_split"),
    ],
)
def test_bad_split_options_are_config_errors(values, match):
    with pytest.raises(ConfigError, match=match):
        ClickSplitConfig.from_dict(values)


def test_train_gbdt_with_a_split_trains_on_the_window_and_saves_whole_log_features(
    tmp_path: Path, tiny_collection
):
    root = write_trec_dir(tiny_collection, tmp_path / "trec")
    config = GBDTTrainConfig.from_dict(
        {
            "world": {"data": {"format": "trec", "path": str(root)},
                      "simulation": {"n_sessions": 1500, "seed": 2}},
            "click_split": {"mode": "time"},
            "gbdt": {"n_estimators": 20, "min_child_samples": 5, "early_stopping_rounds": None},
            "metrics": ["ndcg@10"],
        }
    )  # fmt: skip
    assert GBDTTrainConfig.from_dict(config.to_dict()) == config
    run = train_gbdt(config, tmp_path / "run", progress=False)
    assert run.report is not None
    assert np.isfinite(run.table[run.name]).all()
    assert any(c.startswith(TRAIN_PREFIX) for c in run.table.columns)
    assert not any(name.startswith(TRAIN_PREFIX) for name in run.features)
    # The production model trained on the window's features: a different model from no split.
    plain = train_gbdt(replace(config, click_split=ClickSplitConfig()), tmp_path / "plain",
                       progress=False)  # fmt: skip
    assert not np.allclose(run.table[run.name], plain.table[plain.name])

