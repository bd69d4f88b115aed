from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hybridrank import columns as C
from hybridrank.data import SimulationConfig, bm25_candidates, simulate_click_log
from hybridrank.errors import ConfigError
from hybridrank.labels import ClickLabelConfig, click_labels


@pytest.fixture(scope="module")
def world(tiny_collection):
    cand = bm25_candidates(tiny_collection)
    log = simulate_click_log(cand, SimulationConfig(n_sessions=6000, seed=3, zipf_exponent=0.5))
    return cand, log


def test_never_shown_rows_get_no_label(world) -> None:
    cand, log = world
    labels = click_labels(cand, log)
    shown = pd.MultiIndex.from_frame(cand[[C.QID, C.DOCID]]).isin(
        pd.MultiIndex.from_frame(log[[C.QID, C.DOCID]])
    )
    assert np.isnan(labels.grade[~shown]).all()
    assert not np.isnan(labels.grade[shown]).any()
    assert set(np.unique(labels.grade[shown])) <= {0.0, 1.0, 2.0, 3.0}
    assert (labels.impressions[~shown] == 0).all()


def test_click_model_labels_track_expert_grades_better_than_raw_ctr(world) -> None:
    cand, log = world
    pbm = click_labels(cand, log, ClickLabelConfig(min_impressions=5))
    ctr = click_labels(cand, log, ClickLabelConfig(source="ctr", min_impressions=5))
    y = cand[C.Y_EXPERT].to_numpy()
    ok = ~np.isnan(pbm.estimate)
    corr_pbm = np.corrcoef(pbm.estimate[ok], y[ok])[0, 1]
    corr_ctr = np.corrcoef(ctr.estimate[ok], y[ok])[0, 1]
    assert corr_pbm > 0.5
    # Debiasing removes position effects that raw CTR keeps.
    assert corr_pbm > corr_ctr
    assert pbm.model is not None and ctr.model is None


def test_thresholds_define_grades(world) -> None:
    cand, log = world
    labels = click_labels(cand, log, ClickLabelConfig(thresholds=(0.5,)))
    ok = ~np.isnan(labels.estimate)
    np.testing.assert_array_equal(labels.grade[ok], (labels.estimate[ok] >= 0.5).astype(float))


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="thresholds"):
        ClickLabelConfig(thresholds=(0.5, 0.2))
    with pytest.raises(ConfigError, match="click_model"):
        ClickLabelConfig(click_model="ubm")
    with pytest.raises(ConfigError, match="source"):
        ClickLabelConfig(source="votes")
