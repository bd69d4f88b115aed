"""LambdaMART on a real 2-worker local cluster: same quality as one process, a clear error on a lost worker."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from hybridrank.cli import main
from hybridrank.distributed import dask_trainer
from hybridrank.errors import WorkerLostError
from hybridrank.evaluate import ndcg_at_k
from hybridrank.gbdt import LambdaMARTRanker

from ..conftest import write_trec_dir
from ..gbdt.conftest import make_ranking

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    X, y, qid = make_ranking(n_queries=1000, seed=1)
    X_test, y_test, qid_test = make_ranking(n_queries=2000, seed=2)
    return {"X": X, "y": y, "qid": qid, "X_test": X_test, "y_test": y_test, "qid_test": qid_test}


def _ndcg(ranker: LambdaMARTRanker, data: dict[str, np.ndarray]) -> float:
    scores = ranker.predict(data["X_test"])
    return float(np.nanmean(ndcg_at_k(scores, data["y_test"], qid=data["qid_test"], k=10)))


# Rarely (about 1 of 5 clean CI runs) this reported both workers lost right after
# they connected. The cause found since was ours: the guard read the client's cached
# scheduler identity, which the client's periodic refresh replaces with one that
# lists no workers (see test_a_stale_worker_list_is_not_a_lost_worker). The rerun
# stays only for a worker that really dies on a loaded machine; anything else fails
# at once.
@pytest.mark.flaky(reruns=2, reruns_delay=2, only_rerun=["WorkerLostError"])
@pytest.mark.parametrize("engine", ["lightgbm", "xgboost"])
def test_distributed_matches_single_process(engine, data, client, tmp_path: Path) -> None:
    kwargs = {"engine": engine, "n_estimators": 200, "seed": 0, "n_jobs": 1}
    local = LambdaMARTRanker(**kwargs).fit(data["X"], data["y"], qid=data["qid"])
    dist = LambdaMARTRanker(**kwargs).fit(
        data["X"], data["y"], qid=data["qid"], trainer=dask_trainer(engine, client)
    )
    assert abs(_ndcg(dist, data) - _ndcg(local, data)) <= 0.005
    assert 1 <= dist.best_iteration_ <= 200
    assert dist.feature_names_ == local.feature_names_
    assert len(dist.evals_result_["valid"]["ndcg@10"]) >= dist.best_iteration_
    # Saved and loaded like any model.
    dist.save(tmp_path / "model")
    loaded = LambdaMARTRanker.load(tmp_path / "model")
    np.testing.assert_allclose(
        loaded.predict(data["X_test"]), dist.predict(data["X_test"]), rtol=1e-6
    )


def test_a_stale_worker_list_is_not_a_lost_worker(data, client, monkeypatch) -> None:
    """``client.scheduler_info()`` returns the client's cached identity, and the client's
    periodic refresh (``n_workers=0``) swaps in one that lists no workers. Read while
    training ran, it made every worker look lost; the guard asks the scheduler itself."""
    from hybridrank.distributed._train import _live_workers

    client.sync(client._update_scheduler_info)  # what the periodic refresh does
    assert client._scheduler_identity["workers"] == {}
    assert len(_live_workers(client)) == 2
    monkeypatch.setattr(client, "scheduler_info", lambda *args, **kwargs: {"workers": {}})
    ranker = LambdaMARTRanker(engine="lightgbm", n_estimators=20, seed=0, n_jobs=1).fit(
        data["X"], data["y"], qid=data["qid"], trainer=dask_trainer("lightgbm", client)
    )
    assert ranker.best_iteration_ >= 1


def test_both_workers_train(data, client) -> None:
    """The rows are split between the workers at query boundaries: every worker gets a share."""
    from hybridrank.distributed._train import _scatter_queries, _worker_addresses

    workers = _worker_addresses(client)
    X, _, groups, _ = _scatter_queries(
        client, workers, data["X"], data["y"], data["qid"], None, group_sizes=True
    )
    assert len(X.chunks[0]) == 2
    sizes = groups.compute()
    # Group sizes of each chunk add up to the chunk's rows: no query crosses a chunk.
    bounds = np.cumsum([0, *X.chunks[0]])
    assert np.isin(bounds, np.cumsum([0, *sizes])).all()
    holders = [w for w, keys in client.has_what().items() if any("ndarray" in str(k) for k in keys)]
    assert sorted(holders) == workers


@pytest.mark.parametrize("engine", ["lightgbm", "xgboost"])
def test_lost_worker_is_a_clear_error(engine, data, own_client) -> None:
    client = own_client
    workers = sorted(client.sync(client.scheduler.identity, n_workers=-1)["workers"])
    victim = workers[-1]
    pid = client.run(os.getpid, workers=[victim])[victim]

    def kill() -> None:
        time.sleep(2.0)
        os.kill(pid, signal.SIGKILL)

    threading.Thread(target=kill, daemon=True).start()
    ranker = LambdaMARTRanker(
        engine=engine, n_estimators=20_000, learning_rate=0.001, early_stopping_rounds=None
    )
    start = time.perf_counter()
    with pytest.raises(WorkerLostError, match="nothing was written") as info:
        ranker.fit(data["X"], data["y"], qid=data["qid"], trainer=dask_trainer(engine, client))
    assert victim in str(info.value)
    assert time.perf_counter() - start < 60
    assert not hasattr(ranker, "booster_")
    # The nanny restarts the worker: the cluster is whole again.
    client.wait_for_workers(2, timeout=60)


def test_cli_trains_on_a_local_cluster(tmp_path: Path, tiny_collection, capsys) -> None:
    root = write_trec_dir(tiny_collection, tmp_path / "trec")
    cfg = tmp_path / "gbdt.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "world": {
                    "data": {"format": "trec", "path": str(root)},
                    "simulation": {"n_sessions": 1500, "seed": 2},
                },
                # A plain holdout: cross-validated rounds would run each fold's
                # training six times on the cluster, which this test does not need.
                "gbdt": {"n_estimators": 30, "min_child_samples": 5, "min_validation_queries": 0},
                "metrics": ["ndcg@10"],
            }
        )
    )
    out = tmp_path / "run"
    code = main(["train", "gbdt", "--config", str(cfg), "--dask-workers", "2", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["dask"]["n_workers"] == 2 and saved["dask"]["scheduler"] is None
    assert (out / "model" / "model.txt").exists()


def test_connects_to_a_scheduler_address(data, client) -> None:
    from hybridrank.distributed import DaskConfig, dask_client

    address = client.scheduler.address
    assert address.startswith("tcp://127.0.0.1:")
    with dask_client(DaskConfig(scheduler=address, timeout_s=30)) as remote:
        ranker = LambdaMARTRanker(engine="xgboost", n_estimators=20).fit(
            data["X"], data["y"], qid=data["qid"], trainer=dask_trainer("xgboost", remote)
        )
    assert ranker.best_iteration_ >= 1
    # Closing a connected client leaves the cluster running for others.
    assert len(client.sync(client.scheduler.identity, n_workers=-1)["workers"]) == 2
