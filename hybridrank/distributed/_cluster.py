"""Dask clusters: a config, and a context manager that connects or starts one on loopback."""

from __future__ import annotations

import logging
import re
import warnings
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from hybridrank._config import config_from_dict, config_to_dict
from hybridrank.errors import ClusterError, ConfigError

logger = logging.getLogger(__name__)

#: ``tcp://host:port`` (or ``tls://``); the form ``dask scheduler`` prints.
_ADDRESS = re.compile(r"^(tcp|tls)://(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")
#: Seconds a distributed collective may wait on a silent peer, when no DaskConfig says.
DEFAULT_TIMEOUT_S = 300
#: The collective timeout of each client opened by :func:`dask_client`.
_TIMEOUTS: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class DaskConfig:
    """Where Dask work runs. Off by default: neither ``scheduler`` nor ``n_workers`` set.

    Attributes:
        scheduler: Address of a running scheduler, ``tcp://host:port``.
        n_workers: Start a local cluster of this many worker processes on
            127.0.0.1 instead (0: no local cluster). Its scheduler runs in a
            process of its own too (``SubprocessCluster``), not in this one.
        threads_per_worker: Threads of each local worker (and LightGBM/XGBoost
            threads on it).
        memory_limit: Memory per local worker (``"4GiB"``, ``"auto"``: the
            machine's memory shared out, ``"0"``: no limit). Dask spills to disk
            at 60% of it and restarts a worker at 95%.
        timeout_s: Longest wait of a distributed collective (LightGBM's
            ``time_out``, rounded up to whole minutes; XGBoost's communicator
            timeout) and of connecting to ``scheduler``, so a lost peer fails
            the job instead of hanging it.
    """

    scheduler: str | None = None
    n_workers: int = 0
    threads_per_worker: int = 1
    memory_limit: str = "auto"
    timeout_s: int = DEFAULT_TIMEOUT_S

    def __post_init__(self) -> None:
        if self.scheduler is not None and self.n_workers:
            raise ConfigError(
                f"dask: set scheduler ({self.scheduler!r}) or n_workers ({self.n_workers}), not both"
            )
        if self.scheduler is not None:
            check_scheduler_address(self.scheduler)
        if self.n_workers < 0 or self.threads_per_worker < 1:
            raise ConfigError(
                f"dask: n_workers must be >= 0 and threads_per_worker >= 1, got "
                f"{self.n_workers} and {self.threads_per_worker}"
            )
        if self.timeout_s < 1:
            raise ConfigError(f"dask.timeout_s must be >= 1, got {self.timeout_s}")

    @property
    def enabled(self) -> bool:
        """Whether work goes to a cluster at all."""
        return self.scheduler is not None or self.n_workers > 0

    def overridden(self, *, scheduler: str | None, n_workers: int | None) -> DaskConfig:
        """This config with a command line's ``--dask-scheduler`` or ``--dask-workers`` applied."""
        if scheduler is not None and n_workers is not None:
            raise ConfigError("give --dask-scheduler or --dask-workers, not both")
        if scheduler is not None:
            return replace(self, scheduler=scheduler, n_workers=0)
        if n_workers is not None:
            return replace(self, scheduler=None, n_workers=n_workers)
        return self

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> DaskConfig:
        return config_from_dict(cls, values, "dask")

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)


def check_scheduler_address(address: str) -> str:
    """Return ``address`` if it reads ``tcp://host:port``; else a :class:`ConfigError` naming it."""
    match = _ADDRESS.match(address.strip())
    if match is None or not 0 < int(match.group(3)) < 65536:
        raise ConfigError(
            f"dask scheduler address {address!r} is not of the form tcp://HOST:PORT "
            "(for example tcp://127.0.0.1:8786, as `dask scheduler` prints it)"
        )
    return address.strip()


@contextmanager
def dask_client(config: DaskConfig) -> Iterator[Any]:
    """A ``distributed.Client`` for ``config``; closes what it opened on exit.

    Connects to ``config.scheduler``, or starts a local cluster of
    ``n_workers`` nanny-managed worker processes and a scheduler process, all
    listening on 127.0.0.1 (no dashboard).

    Raises:
        ConfigError: ``config`` is off (no scheduler, no workers).
        ClusterError: The scheduler cannot be reached, or the cluster fails to start.
    """
    if not config.enabled:
        raise ConfigError("dask: no scheduler and n_workers = 0; there is no cluster to use")
    try:
        from distributed import Client
        from distributed.deploy.subprocess import SubprocessCluster
    except ImportError as exc:
        raise ConfigError(
            "dask: training on a cluster needs dask.distributed; "
            "pip install 'hybridrank[dask]' (or: pip install distributed)"
        ) from exc

    import dask

    # A Client makes itself dask's default scheduler ("dask.distributed") and only
    # undoes that on a clean close; one that fails half-way, or a close that fails on
    # a dead scheduler, would leave every later dask computation of this process
    # sent to a client that is gone. Whatever happens here, that setting is put back.
    default_scheduler = dask.config.get("scheduler", None)
    try:
        yield from _open_client(config, Client, SubprocessCluster)
    finally:
        if default_scheduler is None:
            dask.config.config.pop("scheduler", None)
        else:
            dask.config.set(scheduler=default_scheduler)


def _open_client(config: DaskConfig, Client: Any, SubprocessCluster: Any) -> Iterator[Any]:
    cluster: Any = None
    if config.scheduler is not None:
        try:
            client = Client(config.scheduler, timeout=f"{config.timeout_s}s")
        except (OSError, TimeoutError) as exc:
            raise ClusterError(
                f"could not connect to the Dask scheduler at {config.scheduler} within "
                f"{config.timeout_s} s ({exc}); is `dask scheduler` running there?"
            ) from None
        logger.info("connected to the Dask scheduler at %s", config.scheduler)
    else:
        try:
            with warnings.catch_warnings():
                # No dashboard; the scheduler's small HTTP server (health checks)
                # takes 127.0.0.1:8787, or a free port when that is taken: say nothing.
                warnings.filterwarnings("ignore", message=r"Port \d+ is already in use")
                # The scheduler in its own process, not in this one: XGBoost runs
                # its collective tracker on the scheduler, and a tracker whose peer
                # dies can abort the process it lives in.
                cluster = SubprocessCluster(
                    host="127.0.0.1",
                    n_workers=config.n_workers,
                    threads_per_worker=config.threads_per_worker,
                    dashboard_address=None,  # documented: None, no dashboard
                    worker_kwargs={"memory_limit": _memory_limit(config.memory_limit)},
                )
            client = Client(cluster)
            client.wait_for_workers(config.n_workers, timeout=config.timeout_s)
        except (OSError, TimeoutError, RuntimeError) as exc:
            if cluster is not None:
                cluster.close()
            raise ClusterError(
                f"could not start a local Dask cluster of {config.n_workers} workers: {exc}"
            ) from exc
        logger.info(
            "started a local Dask cluster: %d workers x %d threads on 127.0.0.1 (%s)",
            config.n_workers,
            config.threads_per_worker,
            cluster.scheduler_address,
        )
    _TIMEOUTS[client] = config.timeout_s
    try:
        yield client
    finally:
        try:
            client.close()
        finally:  # the cluster's processes must go even if the client's close fails
            if cluster is not None:
                cluster.close()


def collective_timeout(client: Any) -> int:
    """Seconds the engines' collectives may wait on a peer: the ``timeout_s`` of the
    :class:`DaskConfig` that opened ``client``, else :data:`DEFAULT_TIMEOUT_S`."""
    return _TIMEOUTS.get(client, DEFAULT_TIMEOUT_S)


def _memory_limit(value: str) -> str | int:
    return 0 if value.strip() in ("0", "none", "None") else value
