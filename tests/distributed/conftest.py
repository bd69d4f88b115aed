"""A real local Dask cluster (a scheduler process and 2 worker processes on 127.0.0.1) and small parquet impression logs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from hybridrank import columns as C


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    """A ``distributed.Client`` of a 2-worker local cluster on loopback, closed after the module."""
    pytest.importorskip("distributed")
    from hybridrank.distributed import DaskConfig, dask_client

    with dask_client(DaskConfig(n_workers=2, memory_limit="2GiB", timeout_s=60)) as c:
        c.wait_for_workers(2, timeout=60)
        yield c


@pytest.fixture()
def own_client() -> Iterator[Any]:
    """A 2-worker local cluster of one test's own, for tests that kill a worker.

    XGBoost runs its collective tracker inside the scheduler process, and a tracker
    whose peer is killed can take that process down with it; the module's shared
    cluster must not be the one it happens to.
    """
    pytest.importorskip("distributed")
    from hybridrank.distributed import DaskConfig, dask_client

    with dask_client(DaskConfig(n_workers=2, memory_limit="2GiB", timeout_s=60)) as c:
        c.wait_for_workers(2, timeout=60)
        yield c


def make_impressions(n_sessions: int = 3000, *, seed: int = 0) -> pd.DataFrame:
    """A click log: Zipf queries over 300 ids, 4-10 results a session, clicks decaying with rank."""
    rng = np.random.default_rng(seed)
    n_results = rng.integers(4, 11, n_sessions)
    p = np.arange(1, 301, dtype=np.float64) ** -1.0
    q = rng.choice(300, size=n_sessions, p=p / p.sum())
    qq = np.repeat(q, n_results)
    pos = np.concatenate([np.arange(1, k + 1) for k in n_results])
    doc = (qq * 7 + rng.integers(0, 12, qq.size)) % 2000
    click = (rng.random(qq.size) < 0.35 / pos).astype(np.int64)
    session = np.repeat(np.arange(n_sessions), n_results)
    return pd.DataFrame(
        {
            C.SESSION_ID: session,
            C.TS: session.astype(np.float64),
            C.QID: np.char.add("q", qq.astype(str)),
            C.DOCID: np.char.add("d", doc.astype(str)),
            C.POSITION: pos,
            C.CLICK: click,
            C.DWELL_S: np.where(click == 1, rng.lognormal(3, 1, qq.size), np.nan),
        }
    )


def write_log(
    log: pd.DataFrame, directory: Path, *, n_files: int = 3, row_group: int = 997
) -> Path:
    """Write ``log`` as ``n_files`` parquet files of small row groups (sessions cross row groups)."""
    directory.mkdir(parents=True, exist_ok=True)
    for i, part in enumerate(np.array_split(np.arange(len(log)), n_files)):
        log.iloc[part].to_parquet(
            directory / f"part-{i}.parquet", index=False, row_group_size=row_group
        )
    return directory
