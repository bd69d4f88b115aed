"""Unbiased LambdaMART on clicks: positions in, learned position biases out."""

from __future__ import annotations

import logging

import lightgbm as lgb
import numpy as np
import pytest

from hybridrank.errors import ConfigError, DataFormatError
from hybridrank.gbdt import LambdaMARTRanker
from hybridrank.gbdt._position import lightgbm_log, lightgbm_position_bias

TRUE_EXAM = np.array([1.0, 0.7, 0.5, 0.35, 0.25, 0.18, 0.13, 0.1])


def simulate_sessions(
    n_sessions: int = 3000, n_features: int = 4, page: int = 8, *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sessions of ``page`` results shown by a noisy ranker, clicks from a PBM.

    Returns ``X, click, session, position`` with rows by session then position.
    """
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_sessions * page, n_features)).astype(np.float32)
    relevance = 1 / (1 + np.exp(-(X @ np.linspace(1.5, 0.2, n_features) - 1.0)))
    session = np.repeat(np.arange(n_sessions), page)
    # The logging ranker: relevance plus noise, so every kind of result reaches every position.
    shown = relevance + rng.normal(0, 0.5, relevance.size)
    order = np.lexsort((-shown, session))
    X, relevance = X[order], relevance[order]
    position = np.tile(np.arange(1, page + 1), n_sessions)
    click = (rng.random(relevance.size) < TRUE_EXAM[position - 1] * relevance).astype(np.int32)
    return X, click, session, position


@pytest.fixture(scope="module")
def sessions() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return simulate_sessions()


def fit(engine: str, sessions, **kw: object) -> LambdaMARTRanker:
    X, click, session, position = sessions
    params = {"n_estimators": 60, "learning_rate": 0.1, "early_stopping_rounds": None, **kw}
    return LambdaMARTRanker(engine=engine, **params).fit(X, click, qid=session, position=position)


def test_xgboost_recovers_the_examination_curve(sessions) -> None:
    ranker = fit("xgboost", sessions, max_depth=3)
    bias = ranker.position_bias_
    assert bias is not None and bias.index.tolist() == list(range(1, 9))
    assert bias.iloc[0] == pytest.approx(1.0)
    # A loose bound: 3,000 sessions; the bench holds the 0.05 target on a 20,000-session world.
    assert np.abs(bias.to_numpy()[:4] - TRUE_EXAM[:4]).max() < 0.12
    assert "ti+" in ranker.position_bias_source_


def test_xgboost_sorts_rows_by_position_within_groups(sessions) -> None:
    X, click, session, position = sessions
    rng = np.random.default_rng(1)
    # Shuffle rows within each session; sessions stay contiguous.
    perm = np.lexsort((rng.random(session.size), session))
    a = fit("xgboost", sessions, max_depth=3).position_bias_
    b = fit("xgboost", (X[perm], click[perm], session[perm], position[perm]), max_depth=3)
    np.testing.assert_allclose(a.to_numpy(), b.position_bias_.to_numpy(), rtol=1e-6)


def test_lightgbm_biases_from_its_debug_log_and_logger_restored(sessions) -> None:
    class Keep:
        def __init__(self) -> None:
            self.seen: list[str] = []

        def info(self, msg: str) -> None:
            self.seen.append(msg)

        def warning(self, msg: str) -> None:
            self.seen.append(msg)

    mine = Keep()
    lgb.register_logger(mine)
    try:
        ranker = fit("lightgbm", sessions, num_leaves=15)
        bias = ranker.position_bias_
        assert bias is not None and bias.iloc[0] == pytest.approx(1.0)
        assert bias.iloc[1] < 1.0 and bias.iloc[3] < bias.iloc[1]
        assert "derived" in ranker.position_bias_source_
        assert not any("bias_factor" in m for m in mine.seen)
        from lightgbm import basic

        assert basic._LOGGER is mine
    finally:
        lgb.register_logger(logging.getLogger("lightgbm"))


def test_lightgbm_log_parser_golden() -> None:
    lines = [
        "[LightGBM] [Debug]        position    bias_factor\n",
        "[LightGBM] [Debug]               0            0.5",
        "[LightGBM] [Debug]               1            0.0",
        "[LightGBM] [Debug]               2           -0.5",
        "[LightGBM] [Debug] Trained a tree with leaves = 3 and depth = 2",
        "[LightGBM] [Debug]        position    bias_factor\n",
        "[LightGBM] [Debug]               0            1.0",
        "[LightGBM] [Debug]               1            0.0",
        "[LightGBM] [Debug]               2           -1.0",
    ]
    bias = lightgbm_position_bias(lines, max_position=2)
    assert bias is not None
    assert bias.index.tolist() == [1, 2]
    np.testing.assert_allclose(bias.to_numpy(), [1.0, np.exp(-1.0)])
    assert lightgbm_position_bias(["nothing"], 3) is None
    with lightgbm_log() as log:
        assert log.lines == []


def test_no_position_no_bias(sessions) -> None:
    X, click, session, _ = sessions
    ranker = LambdaMARTRanker(engine="xgboost", n_estimators=5).fit(X, click, qid=session)
    assert ranker.position_bias_ is None


@pytest.mark.parametrize("bad", [0, -1, 1.5, np.nan])
def test_bad_positions(sessions, bad) -> None:
    X, click, session, position = sessions
    p = position.astype(np.float64)
    p[5] = bad
    with pytest.raises(DataFormatError, match="positions"):
        LambdaMARTRanker(engine="xgboost", n_estimators=2).fit(X, click, qid=session, position=p)


def test_position_refuses_a_distributed_trainer(sessions) -> None:
    X, click, session, position = sessions

    def trainer(*args: object) -> object:
        raise AssertionError("not called")

    with pytest.raises(ConfigError, match="one process"):
        LambdaMARTRanker(engine="xgboost", n_estimators=2).fit(
            X,
            click,
            qid=session,
            position=position,
            trainer=trainer,  # type: ignore[arg-type]
        )


def test_position_bias_survives_save_and_load(sessions, tmp_path) -> None:
    ranker = fit("xgboost", sessions, n_estimators=10)
    ranker.save(tmp_path)
    loaded = LambdaMARTRanker.load(tmp_path)
    np.testing.assert_allclose(loaded.position_bias_.to_numpy(), ranker.position_bias_.to_numpy())
    assert loaded.position_bias_source_ == ranker.position_bias_source_
