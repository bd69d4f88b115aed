"""DaskConfig, address checks, query-aligned partitions and the early-stopping replay (no cluster)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hybridrank._grouping import offsets_from_qid
from hybridrank.cli import main
from hybridrank.distributed import (
    DaskConfig,
    dask_client,
    dask_trainer,
    partition_bounds,
    replay_early_stopping,
)
from hybridrank.errors import ClusterError, ConfigError
from hybridrank.gbdt import LambdaMARTRanker
from hybridrank.pipelines import GBDTTrainConfig

from ..gbdt.conftest import make_ranking


def test_config_is_off_by_default_and_validates() -> None:
    assert not DaskConfig().enabled
    assert DaskConfig(n_workers=2).enabled
    assert DaskConfig(scheduler="tcp://127.0.0.1:8786").enabled
    with pytest.raises(ConfigError, match="'localhost:8786'"):
        DaskConfig(scheduler="localhost:8786")
    with pytest.raises(ConfigError, match="not both"):
        DaskConfig(scheduler="tcp://127.0.0.1:8786", n_workers=2)
    with pytest.raises(ConfigError, match="n_workers"):
        DaskConfig(n_workers=-1)
    with pytest.raises(ConfigError, match=r"dask\.n_workers"):
        GBDTTrainConfig.from_dict({"dask": {"n_workers": "two"}})
    cfg = GBDTTrainConfig.from_dict({"dask": {"scheduler": "tcp://10.0.0.5:8786"}})
    assert cfg.dask.scheduler == "tcp://10.0.0.5:8786"
    assert GBDTTrainConfig.from_dict(cfg.to_dict()) == cfg


def test_command_line_overrides() -> None:
    base = DaskConfig(scheduler="tcp://127.0.0.1:8786")
    assert base.overridden(scheduler=None, n_workers=3) == DaskConfig(n_workers=3)
    assert DaskConfig(n_workers=2).overridden(
        scheduler="tcp://127.0.0.1:9000", n_workers=None
    ) == DaskConfig(scheduler="tcp://127.0.0.1:9000")
    assert base.overridden(scheduler=None, n_workers=None) == base
    with pytest.raises(ConfigError, match="not both"):
        base.overridden(scheduler="tcp://127.0.0.1:1", n_workers=2)


def test_cli_rejects_a_bad_scheduler_address(tmp_path: Path, capsys) -> None:
    code = main(["train", "gbdt", "--dask-scheduler", "127.0.0.1:8786", "--out", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert "'127.0.0.1:8786'" in err and "tcp://HOST:PORT" in err
    assert not any(tmp_path.iterdir())


def test_unreachable_scheduler_is_a_clear_error() -> None:
    pytest.importorskip("distributed")
    import dask

    before = dask.config.get("scheduler", None)
    # Port 9 (discard) is closed on loopback; nothing listens there.
    with (
        pytest.raises(ClusterError, match=r"tcp://127\.0\.0\.1:9 .*running"),
        dask_client(DaskConfig(scheduler="tcp://127.0.0.1:9", timeout_s=2)),
    ):
        pass
    assert dask.config.get("scheduler", None) == before


def test_a_failed_close_leaves_no_default_scheduler(monkeypatch) -> None:
    """A client closed on a dead scheduler must not leave itself dask's default: every
    later dask computation of the process would go to it and fail."""
    distributed = pytest.importorskip("distributed")
    import dask

    class DiesOnClose:
        def __init__(self, address: str, timeout: str) -> None:
            dask.config.set(scheduler="dask.distributed")  # as a real Client does

        def close(self) -> None:
            raise OSError("the scheduler is gone")

    monkeypatch.setattr(distributed, "Client", DiesOnClose)
    before = dask.config.get("scheduler", None)
    with (
        pytest.raises(OSError, match="gone"),
        dask_client(DaskConfig(scheduler="tcp://127.0.0.1:9", timeout_s=2)),
    ):
        assert dask.config.get("scheduler") == "dask.distributed"
    assert dask.config.get("scheduler", None) == before


def test_partitions_hold_whole_queries() -> None:
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 40, 200)
    offsets = np.concatenate(([0], np.cumsum(sizes)))
    for n_parts in (1, 2, 3, 7, 200, 500):
        cuts = partition_bounds(offsets, n_parts)
        assert cuts[0] == 0 and cuts[-1] == offsets[-1]
        assert np.all(np.diff(cuts) > 0)
        assert np.isin(cuts, offsets).all()
        assert len(cuts) - 1 <= min(n_parts, 200)
        if n_parts <= 7:
            assert len(cuts) - 1 == n_parts
    halves = np.diff(partition_bounds(offsets, 2))
    assert abs(halves[0] - halves[1]) < 2 * sizes.max()


def test_replayed_early_stopping_matches_lightgbm() -> None:
    """Replayed on a full validation curve, the rule picks the round LightGBM's early stopping picks."""
    X, y, qid = make_ranking(n_queries=150, seed=3)
    # Every fifth query validates.
    offsets = offsets_from_qid(qid)
    is_valid = np.repeat(np.arange(offsets.shape[0] - 1) % 5 == 0, np.diff(offsets))
    train, valid = np.flatnonzero(~is_valid), np.flatnonzero(is_valid)
    data = {
        "X": X[train],
        "y": y[train],
        "qid": qid[train],
        "eval_set": (X[valid], y[valid]),
        "eval_qid": qid[valid],
    }
    kwargs = {"engine": "lightgbm", "n_estimators": 60, "learning_rate": 0.3, "n_jobs": 1}
    stopped = LambdaMARTRanker(early_stopping_rounds=10, **kwargs).fit(**data)
    full = LambdaMARTRanker(early_stopping_rounds=None, **kwargs).fit(**data)
    curve = full.evals_result_["valid"]["ndcg@10"]
    assert len(curve) == 60
    best, at = replay_early_stopping(curve, 10)
    assert at < 60  # it did stop early
    assert best == stopped.best_iteration_
    assert at == len(stopped.evals_result_["valid"]["ndcg@10"])
    assert replay_early_stopping([0.1, 0.2, 0.3], None) == (3, 3)
    assert replay_early_stopping([0.5, 0.5, 0.5, 0.5], 2) == (1, 3)


def test_dask_trainer_checks_its_engine() -> None:
    """Engine checks fail before the cluster is touched (a stand-in client is never used)."""
    X, y, qid = make_ranking(n_queries=20, seed=4)
    no_cluster = object()
    with pytest.raises(ConfigError, match="engine must be one of"):
        dask_trainer("catboost", no_cluster, timeout_s=1)
    ranker = LambdaMARTRanker(engine="lightgbm", n_estimators=5)
    with pytest.raises(ConfigError, match=r"dask_trainer\('lightgbm', client\)"):
        ranker.fit(X, y, qid=qid, trainer=dask_trainer("xgboost", no_cluster, timeout_s=1))
    assert not hasattr(ranker, "booster_")
    with pytest.raises(ConfigError, match="init_model"):
        trainer = dask_trainer("lightgbm", no_cluster, timeout_s=1)
        ranker.fit(X, y, qid=qid, trainer=trainer, init_model=object())
