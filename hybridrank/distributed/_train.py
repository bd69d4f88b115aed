"""LambdaMART on a Dask cluster: ``lightgbm.dask`` and ``xgboost.dask`` behind the local trainers' signature.

:func:`dask_trainer` returns a :data:`hybridrank.gbdt.Trainer` for
``LambdaMARTRanker.fit(..., trainer=...)``. The rows arrive in memory (``fit`` got arrays); they are cut
into one partition per worker at query boundaries, so every partition holds
whole queries (LightGBM's groups and XGBoost's ``qid`` stay aligned with the
rows), and scattered to the workers. Each engine then trains data-parallel:
every worker builds histograms of its rows and the engines' own collectives
(LightGBM's socket network, XGBoost's Rabit) sum them. The result is the same
triple the local trainers return, so prediction, saving and loading are
unchanged.

Network: a local cluster (scheduler, nannies, workers) and XGBoost's
tracker listen on 127.0.0.1 only, and the engines' peers reach each other at
the workers' 127.0.0.1 addresses. The peer listeners themselves are opened by
LightGBM's and XGBoost's C++ code on all interfaces (0.0.0.0, a random port);
neither library has a setting for that address, so on a host with other
interfaces a firewall is what keeps those ports private.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Literal
from urllib.parse import urlparse

import numpy as np

from hybridrank._grouping import offsets_from_qid, qid_codes
from hybridrank.distributed._cluster import collective_timeout
from hybridrank.errors import ConfigError, WorkerLostError
from hybridrank.gbdt import (
    Data,
    LambdaMARTConfig,
    Result,
    Trainer,
    Valid,
    lightgbm_params,
    xgboost_params,
)

logger = logging.getLogger(__name__)

#: LightGBM parameter names -> the names its scikit-learn wrapper takes, so the
#: wrapper's defaults cannot shadow them through aliases.
_SKLEARN_NAMES = {
    "bagging_fraction": "subsample",
    "bagging_freq": "subsample_freq",
    "feature_fraction": "colsample_bytree",
    "lambda_l2": "reg_lambda",
    "min_data_in_leaf": "min_child_samples",
    "seed": "random_state",
}


def dask_trainer(engine: str, client: Any, *, timeout_s: int | None = None) -> Trainer:
    """The distributed trainer of ``engine``, bound to ``client``, for ``LambdaMARTRanker.fit``.

    Args:
        engine: ``lightgbm`` (``lightgbm.dask``) or ``xgboost`` (``xgboost.dask``);
            the ranker's ``engine`` must be the same.
        client: A ``dask.distributed.Client`` (see :func:`dask_client`).
        timeout_s: See below.

    Example:
        >>> with dask_client(DaskConfig(n_workers=2)) as client:  # doctest: +SKIP
        ...     LambdaMARTRanker(engine="lightgbm").fit(
        ...         X, y, qid=qid, trainer=dask_trainer("lightgbm", client)
        ...     )

    ``timeout_s`` bounds every wait of the engines' collectives on a peer
    (LightGBM's ``time_out`` is in minutes and rounded up; its own default is
    120 minutes); None takes the client's :class:`DaskConfig` ``timeout_s``.
    """
    if engine not in _ENGINES:
        raise ConfigError(f"engine must be one of {tuple(_ENGINES)}, got {engine!r}")
    timeout = collective_timeout(client) if timeout_s is None else timeout_s

    def train(
        cfg: LambdaMARTConfig,
        device: str,
        names: Sequence[str],
        data: Data,
        valid: Valid,
        init_model: Any,
    ) -> Result:
        if cfg.engine != engine:
            raise ConfigError(
                f"the Dask trainer was made for engine {engine!r} but the ranker's engine is "
                f"{cfg.engine!r}; pass dask_trainer({cfg.engine!r}, client)"
            )
        if init_model is not None:
            raise ConfigError(
                "init_model (continued boosting) is not supported when training on a Dask "
                "cluster; train in one process (trainer=None)"
            )
        fn = _ENGINES[engine]
        return _guard_workers(
            client, engine, lambda: fn(client, cfg, device, names, data, valid, timeout)
        )

    return train


def partition_bounds(offsets: np.ndarray, n_parts: int) -> np.ndarray:
    """Row cuts at query starts into at most ``n_parts`` parts of similar row counts.

    Args:
        offsets: Query offsets, shape ``(n_queries + 1,)`` (``offsets_from_qid``).
        n_parts: Parts wanted; fewer come back when there are fewer queries.

    Returns:
        Increasing cuts, ``[0, ..., n_rows]``; part ``i`` is rows
        ``cuts[i]:cuts[i + 1]``, every cut a query start, no part empty.

    Example:
        >>> partition_bounds(np.array([0, 3, 4, 10]), 2).tolist()
        [0, 4, 10]
    """
    n_rows = int(offsets[-1])
    n_q = offsets.shape[0] - 1
    n_parts = max(1, min(n_parts, n_q))
    targets = np.linspace(0, n_rows, n_parts + 1)[1:-1]
    # The query start nearest each equal-rows target.
    idx = np.clip(np.searchsorted(offsets, targets), 1, n_q)
    nearer_left = (targets - offsets[idx - 1]) < (offsets[idx] - targets)
    idx = np.where(nearer_left, idx - 1, idx)
    cuts = np.unique(np.concatenate(([0], offsets[idx], [n_rows])))
    return cuts.astype(np.int64)


def replay_early_stopping(curve: Sequence[float], rounds: int | None) -> tuple[int, int]:
    """LightGBM's early-stopping rule (higher is better) replayed on a finished curve.

    Returns ``(best_iteration, stopped_at)``, both 1-based: the first round
    with the best score seen before ``rounds`` rounds passed without a strict
    gain, and the round training would have stopped at.

    Example:
        >>> replay_early_stopping([0.5, 0.7, 0.6, 0.65, 0.9], rounds=2)
        (2, 4)
    """
    if not curve:
        return 0, 0
    best_i, best = 0, -math.inf
    for i, value in enumerate(curve):
        if value > best:
            best_i, best = i, value
        elif rounds is not None and i - best_i >= rounds:
            return best_i + 1, i + 1
    return (best_i + 1 if rounds is not None else len(curve)), len(curve)


# ---------------------------------------------------------------- engines


def _train_lightgbm(
    client: Any,
    cfg: LambdaMARTConfig,
    device: str,
    names: Sequence[str],
    data: Data,
    valid: Valid,
    timeout_s: int,
) -> Result:
    """``DaskLGBMRanker`` on every round, then early stopping replayed on the holdout.

    ``lightgbm.dask`` does not support early stopping, and the metrics it
    records are each worker's own share of the validation rows. So training
    runs all ``n_estimators`` rounds, the validation NDCG@k of every round is
    computed here over the whole holdout (one pass through the trees), and
    ``best_iteration`` is where LightGBM's early-stopping rule would have
    stopped. ``evals_result_`` holds that ``valid`` curve up to the stopping
    round (no ``train`` curve: that would need another pass over all rows).
    """
    import lightgbm as lgb

    X, y, q, w = data
    params = lightgbm_params(cfg, device, data, valid, names)
    # Set by lightgbm.dask from each worker's thread count.
    params.pop("num_threads", None)
    # No LightGBM-side evaluation: the curve is computed below over the whole holdout.
    params.pop("ndcg_eval_at", None)
    kwargs = {_SKLEARN_NAMES.get(k, k): v for k, v in params.items()}
    kwargs["time_out"] = max(1, math.ceil(timeout_s / 60))
    workers = _worker_addresses(client)
    Xd, yd, gd, wd = _scatter_queries(client, workers, X, y, q, w, group_sizes=True)
    model = lgb.DaskLGBMRanker(client=client, n_estimators=cfg.n_estimators, **kwargs)
    with warnings.catch_warnings():
        # lightgbm.dask sets n_jobs per worker itself and says so on every fit.
        warnings.filterwarnings("ignore", message="Parameter n_jobs will be ignored")
        model.fit(Xd, yd, group=gd, sample_weight=wd)
    booster = model.booster_
    n_trees = booster.current_iteration()
    if valid is None:
        return booster, n_trees, {}
    Xv, yv, qv = valid
    curve = _lightgbm_curve(booster, Xv, yv, qv, cfg)
    best, stopped = replay_early_stopping(curve, cfg.early_stopping_rounds)
    return booster, best, {"valid": {f"ndcg@{cfg.eval_at}": curve[:stopped]}}


def _lightgbm_curve(
    booster: Any, X: np.ndarray, y: np.ndarray, q: np.ndarray, cfg: LambdaMARTConfig
) -> list[float]:
    """Mean NDCG@k of ``X`` after each boosting round (queries without a relevant row count 1, as in LightGBM)."""
    from hybridrank.evaluate import ndcg_at_k

    offsets = offsets_from_qid(q)
    gain: Literal["exp", "linear"] = "exp"
    if cfg.label_gain is not None and np.allclose(cfg.label_gain, np.arange(len(cfg.label_gain))):
        gain = "linear"
    scores = np.zeros(X.shape[0])
    curve = []
    for i in range(booster.current_iteration()):
        scores += booster.predict(X, start_iteration=i, num_iteration=1, raw_score=True)
        per_query = ndcg_at_k(scores, y, offsets=offsets, k=cfg.eval_at, gain=gain)
        curve.append(float(np.nan_to_num(per_query, nan=1.0).mean()))
    return curve


def _train_xgboost(
    client: Any,
    cfg: LambdaMARTConfig,
    device: str,
    names: Sequence[str],
    data: Data,
    valid: Valid,
    timeout_s: int,
) -> Result:
    """``xgboost.dask.train`` with its own early stopping (XGBoost sums metrics over workers)."""
    from xgboost import dask as dxgb
    from xgboost.collective import Config as CollConfig

    X, y, q, w = data
    if w is not None:
        raise ConfigError(
            "sample weights are not supported for engine xgboost on a Dask cluster "
            "(XGBoost weighs whole queries); use engine lightgbm or train in one process"
        )
    params = xgboost_params(cfg, device, names)
    params.pop("nthread", None)
    workers = _worker_addresses(client)
    Xd, yd, qd, _ = _scatter_queries(client, workers, X, y, q, None, group_sizes=False)
    dtrain = dxgb.DaskDMatrix(client, Xd, yd, qid=qd, feature_names=list(names))
    evals = [(dtrain, "train")]
    if valid is not None:
        Xv, yv, qv = valid
        Xvd, yvd, qvd, _ = _scatter_queries(client, workers, Xv, yv, qv, None, group_sizes=False)
        evals.append(
            (dxgb.DaskDMatrix(client, Xvd, yvd, qid=qvd, feature_names=list(names)), "valid")
        )
    # The tracker runs on the scheduler's host and listens there only (127.0.0.1
    # for a local cluster); workers give up on a silent peer after timeout_s.
    host = urlparse(client.scheduler.address).hostname
    coll = CollConfig(tracker_host_ip=host, timeout=timeout_s, tracker_timeout=timeout_s)
    out = dxgb.train(
        client,
        params,
        dtrain,
        num_boost_round=cfg.n_estimators,
        evals=evals,
        early_stopping_rounds=cfg.early_stopping_rounds if valid is not None else None,
        verbose_eval=False,
        coll_cfg=coll,
    )
    booster = out["booster"]
    history = out["history"]
    n_rounds = booster.num_boosted_rounds()
    best = getattr(booster, "best_iteration", None)
    best_n = (
        int(best) + 1
        if best is not None and valid is not None and cfg.early_stopping_rounds
        else n_rounds
    )
    curves = {name: {k: list(map(float, v)) for k, v in m.items()} for name, m in history.items()}
    return booster, best_n, curves


_ENGINES: dict[str, Callable[..., Result]] = {
    "lightgbm": _train_lightgbm,
    "xgboost": _train_xgboost,
}


# ---------------------------------------------------------------- helpers


def _live_workers(client: Any) -> set[str]:
    """The workers the scheduler lists now, asked directly.

    Not ``client.scheduler_info()``: it returns the client's cached identity,
    which the client's own periodic refresh replaces with one that lists no
    workers, so a concurrent read can see every worker gone.
    """
    return set(client.sync(client.scheduler.identity, n_workers=-1)["workers"])


def _worker_addresses(client: Any) -> list[str]:
    workers = sorted(_live_workers(client))
    if not workers:
        raise WorkerLostError(
            f"the Dask cluster at {client.scheduler.address} has no workers; nothing was trained"
        )
    return workers


def _scatter_queries(
    client: Any,
    workers: list[str],
    X: np.ndarray,
    y: np.ndarray,
    q: np.ndarray,
    w: np.ndarray | None,
    *,
    group_sizes: bool,
) -> tuple[Any, Any, Any, Any]:
    """Dask arrays of X, y, the query key and w, one chunk per worker, each chunk whole queries.

    The query key is per-part group sizes (LightGBM) or increasing integer
    codes per row (XGBoost).
    """
    import dask.array as da

    offsets = offsets_from_qid(q)
    cuts = partition_bounds(offsets, len(workers))
    codes = None if group_sizes else qid_codes(q)
    parts: dict[str, list[Any]] = {"X": [], "y": [], "key": [], "w": []}
    for i, (a, b) in enumerate(itertools.pairwise(cuts)):
        if group_sizes:
            qa, qb = np.searchsorted(offsets, [a, b])
            key = np.diff(offsets[qa : qb + 1]).astype(np.int64)
        else:
            assert codes is not None
            key = codes[a:b]
        chunk = {"X": X[a:b], "y": y[a:b], "key": key, "w": None if w is None else w[a:b]}
        target = [workers[i % len(workers)]]
        for name, arr in chunk.items():
            if arr is None:
                continue
            future = client.scatter(arr, workers=target, direct=False)
            parts[name].append(da.from_delayed(future, shape=arr.shape, dtype=arr.dtype))
    out = [da.concatenate(parts[n], axis=0) if parts[n] else None for n in ("X", "y", "key", "w")]
    return out[0], out[1], out[2], out[3]


def _guard_workers(client: Any, engine: str, job: Callable[[], Result]) -> Result:
    """Run ``job``; if a worker leaves the cluster meanwhile, fail fast with :class:`WorkerLostError`.

    A distributed trainer whose peer died either errors (a closed socket) or
    waits for it until its collective time-out; the scheduler, though, knows
    at once. ``job`` runs in a daemon thread and this one watches the workers.
    """
    before = set(_worker_addresses(client))
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = job()
        except BaseException as exc:  # handed to the caller below
            box["error"] = exc

    thread = threading.Thread(target=run, name=f"hybridrank-dask-{engine}", daemon=True)
    thread.start()
    lost: set[str] = set()
    while thread.is_alive():
        thread.join(timeout=0.5)
        if not thread.is_alive():
            break
        try:
            lost = before - _live_workers(client)
        except Exception:  # scheduler busy or gone: the job will tell
            lost = set()
        if lost:
            # Give the job a moment to fail on its own with the engine's reason.
            thread.join(timeout=2.0)
            break
    if not lost and "error" in box:
        # The scheduler may list a dead worker for a while (seconds on a busy
        # machine); an error that says tasks were cancelled or a worker was
        # killed is worth waiting for it.
        deadline = time.monotonic() + (10.0 if _means_lost_worker(box["error"]) else 0.0)
        while True:
            now = _current_workers(client)
            lost = set() if now is None else before - now
            if lost or time.monotonic() >= deadline:
                break
        if not lost and _means_lost_worker(box["error"]):
            lost = {"(a worker: the scheduler cancelled its tasks)"}
    if lost:
        cause = box.get("error")
        raise WorkerLostError(
            f"Dask worker(s) {sorted(lost)} left the cluster during {engine} training "
            "(killed, crashed or out of memory); training was stopped, no model was trained "
            "and nothing was written. Check the workers' logs and memory limit, then run again."
        ) from cause
    if "error" in box:
        raise box["error"]
    result: Result = box["result"]
    return result


def _means_lost_worker(error: BaseException) -> bool:
    """Errors Dask raises when a worker holding the job's tasks or data went away."""
    from concurrent.futures import CancelledError

    from distributed.client import FuturesCancelledError
    from distributed.comm import CommClosedError
    from distributed.scheduler import KilledWorker

    return isinstance(
        error, CancelledError | FuturesCancelledError | CommClosedError | KilledWorker
    )


def _current_workers(client: Any) -> set[str] | None:
    # A worker that just died may still be listed for a moment.
    time.sleep(0.5)
    try:
        return _live_workers(client)
    except Exception:
        return None
