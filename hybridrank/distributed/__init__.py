"""Running on Dask: cluster set-up, distributed LambdaMART training (LightGBM, XGBoost).

Imports of ``dask`` and ``distributed`` happen only when a cluster is used,
so the rest of hybridrank runs without them.
"""

from __future__ import annotations

from hybridrank.distributed._cluster import DaskConfig, check_scheduler_address, dask_client
from hybridrank.distributed._train import dask_trainer, partition_bounds, replay_early_stopping

__all__ = [
    "DaskConfig",
    "check_scheduler_address",
    "dask_client",
    "dask_trainer",
    "partition_bounds",
    "replay_early_stopping",
]
