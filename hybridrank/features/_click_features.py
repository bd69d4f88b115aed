"""Click features computed from a training impression log (never from expert labels).

One feature definition (:mod:`._click_definitions`: features as formulas
over a log's sums), the right engine for each scale:

* ``duckdb`` (single machine, the default): one SQL query over a pandas
  frame in memory or over parquet files out of core, on every core, within
  a memory limit, spilling beyond it (:mod:`._click_sql`).
* ``dask`` (clusters): the sums in dataframe arithmetic on a Dask frame,
  one pass over the log (:mod:`._click_frame`).
* ``pandas``: the same dataframe code on one pandas frame, single-threaded;
  the reference the other engines are tested against.

Every engine gives the same features: counts exactly, rates to 1e-12 (float
sums may add in another order).
"""

from __future__ import annotations

import logging
import sys
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd

from hybridrank import columns as C
from hybridrank._config import config_from_dict, config_to_dict
from hybridrank.errors import ConfigError, MissingColumnError
from hybridrank.features import _click_frame, _click_sql
from hybridrank.features._click_definitions import (
    CLICK_FEATURES,
    DOC_FEATURES,
    PAIR_FEATURES,
    QUERY_FEATURES,
    ClickFeatures,
    features_from_sums,
)
from hybridrank.features._click_parquet import (
    check_readable,
    parquet_files,
    read_part,
    row_group_parts,
)

__all__ = [
    "CLICK_FEATURES",
    "DOC_FEATURES",
    "PAIR_FEATURES",
    "QUERY_FEATURES",
    "ClickFeatureConfig",
    "ClickFeatures",
    "compute_click_features",
    "compute_click_features_parquet",
    "join_click_features",
]

logger = logging.getLogger(__name__)

EngineName = Literal["auto", "duckdb", "pandas", "dask"]


@dataclass(frozen=True)
class ClickFeatureConfig:
    """Options of the click features.

    Attributes:
        examination: Examination probability by rank 1..n used to debias CTR
            (clicks / expected examinations); None means the click world's
            default curve. Pass a click model's ``examination_`` to use a
            fitted one.
        prior_strength: Pseudo-impressions of the Bayesian smoothing: a
            smoothed rate is ``(clicks + m * prior) / (impressions + m)`` with
            the log's global rate as ``prior``.
        sat_dwell_s: A click with at least this dwell is a satisfied click.
        engine: ``auto`` (Dask for a Dask frame or an active Dask cluster,
            else DuckDB), ``duckdb``, ``pandas`` or ``dask``. Every engine
            gives the same features (rates to 1e-12).
        threads: DuckDB threads; None uses every core this process may run on.
        memory_limit: DuckDB's memory limit (``"3GB"``); beyond it, DuckDB
            spills to ``temp_directory``. None keeps DuckDB's default (80%
            of the machine's memory).
        temp_directory: Where DuckDB spills (a temporary directory created
            in it and removed after each call); None uses the system's.
    """

    examination: tuple[float, ...] | None = None
    prior_strength: float = 5.0
    sat_dwell_s: float = 30.0
    engine: EngineName = "auto"
    threads: int | None = None
    memory_limit: str | None = None
    temp_directory: str | None = None

    def __post_init__(self) -> None:
        if self.prior_strength < 0 or self.sat_dwell_s < 0:
            raise ConfigError("click_features: prior_strength and sat_dwell_s must be >= 0")
        if self.examination is not None and any(not 0 < e <= 1 for e in self.examination):
            raise ConfigError("click_features.examination must be probabilities in (0, 1]")
        if self.engine not in _ENGINES and self.engine != "auto":
            raise ConfigError(
                f"click_features.engine: {self.engine!r} is not one of {['auto', *_ENGINES]}"
            )
        if self.threads is not None and self.threads < 1:
            raise ConfigError("click_features.threads must be >= 1 (or null: every core)")

    @classmethod
    def from_dict(cls, values: Any) -> ClickFeatureConfig:
        return config_from_dict(cls, values, "click_features")

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)


def compute_click_features(log: Any, config: ClickFeatureConfig | None = None) -> ClickFeatures:
    """Aggregate an impression log into query-document, document and query features.

    Args:
        log: Impression log (pandas or Dask DataFrame) with the columns of
            :data:`hybridrank.columns.IMPRESSION_COLUMNS`.
        config: Debiasing curve, smoothing, satisfaction threshold and engine.

    Returns:
        :class:`ClickFeatures`, of the input's library (call ``.compute()`` on
        Dask results); rates are NaN where the denominator is 0.
    """
    config = config or ClickFeatureConfig()
    missing = [c for c in C.IMPRESSION_COLUMNS if c not in log.columns]
    if missing:
        raise MissingColumnError(f"impression log lacks columns {missing}")
    lazy = _click_frame.is_dask(log)
    engine = _engine(config, lazy=lazy)
    if lazy and engine is not _ENGINES["dask"]:
        raise ConfigError(
            f"click_features.engine {config.engine!r} takes a pandas log; a Dask log needs "
            "engine 'dask' or 'auto' (or compute it first)"
        )
    logger.debug("click features with %s", type(engine).__name__)
    return engine.frame_features(log, _examination(config), config)


def compute_click_features_parquet(
    path: str | Path,
    config: ClickFeatureConfig | None = None,
    *,
    dask: bool | None = None,
    partition_rows: int = 1_000_000,
    scheduler: str | None = None,
) -> ClickFeatures:
    """Click features of a parquet impression log: one file or a directory of files.

    The log is never read into memory whole, except by the ``pandas`` engine.
    DuckDB (the single-machine engine) streams the files within
    ``config.memory_limit``, spilling beyond it. Dask reads the log lazily,
    one partition per run of row groups of about ``partition_rows`` rows:
    memory stays bounded by a few partitions plus the aggregates. Every
    engine gives the same features.

    Args:
        path: A ``.parquet`` file, or a directory searched for ``*.parquet``.
        config: Debiasing curve, smoothing, satisfaction threshold and engine.
        dask: True: Dask; False: a single-machine engine (``config.engine``,
            DuckDB for ``auto``); None: Dask where a ``scheduler`` is named or
            a ``distributed.Client`` is active, else ``config.engine``.
        partition_rows: Rows per Dask partition (whole row groups are
            combined up to it; a larger row group is one partition). Rows,
            not bytes: parquet's sizes are of dictionary-encoded data, many
            times smaller than the frames in memory.
        scheduler: Dask scheduler for this call (``"threads"``,
            ``"processes"``, ``"sync"``); None uses Dask's default (a
            ``distributed.Client`` if one is active, else threads).

    Returns:
        :class:`ClickFeatures` of pandas frames.

    Raises:
        FileNotFoundError: ``path`` is missing or holds no parquet file.
        DataFormatError: A file is corrupt or truncated, or lacks impression
            columns; the message names the file.
        ConfigError: ``dask=False`` with ``engine: dask``, or ``dask=True``
            with another engine than ``auto`` or ``dask``.
    """
    config = config or ClickFeatureConfig()
    if dask is None:
        dask = config.engine == "dask" or (
            config.engine == "auto" and (scheduler is not None or _dask_client_active())
        )
    if dask and config.engine not in ("auto", "dask"):
        raise ConfigError(f"dask=True contradicts click_features.engine {config.engine!r}")
    if not dask and config.engine == "dask":
        raise ConfigError("dask=False contradicts click_features.engine 'dask'")
    engine = _ENGINES["dask"] if dask else _engine(config, lazy=False)
    files = parquet_files(path)
    return engine.parquet_features(
        files, _examination(config), config, partition_rows=partition_rows, scheduler=scheduler
    )


def join_click_features(candidates: pd.DataFrame, features: ClickFeatures) -> pd.DataFrame:
    """Left-join click features onto a candidate table, keeping its row order.

    Candidates never shown get 0 impressions and clicks and NaN rates (the
    GBDT treats NaN as missing: "no click evidence" is its own regime).
    """
    out = candidates.drop(columns=[c for c in CLICK_FEATURES if c in candidates.columns])
    n = len(out)
    out = out.merge(_pandas(features.pairs), on=[C.QID, C.DOCID], how="left")
    out = out.merge(_pandas(features.docs), on=C.DOCID, how="left")
    out = out.merge(_pandas(features.queries), on=C.QID, how="left")
    if len(out) != n:
        raise ValueError("click features hold duplicate keys; the join changed the row count")
    counts = [
        "qd_impressions",
        "qd_clicks",
        "doc_impressions",
        "doc_clicks",
        "doc_n_queries",
        "q_sessions",
    ]
    out[counts] = out[counts].fillna(0.0)
    return out


# ------------------------------------------------------------------ engines


class _Engine(Protocol):
    """How one engine turns a log, in memory or in parquet files, into features."""

    def frame_features(
        self, log: Any, exam: np.ndarray, config: ClickFeatureConfig
    ) -> ClickFeatures: ...

    def parquet_features(
        self,
        files: list[Path],
        exam: np.ndarray,
        config: ClickFeatureConfig,
        *,
        partition_rows: int,
        scheduler: str | None,
    ) -> ClickFeatures: ...


class _DuckDBEngine:
    """One SQL query on every core; out of core from parquet files."""

    def frame_features(
        self, log: Any, exam: np.ndarray, config: ClickFeatureConfig
    ) -> ClickFeatures:
        return features_from_sums(_click_sql.frame_sums(log, exam, config), config.prior_strength)

    def parquet_features(
        self,
        files: list[Path],
        exam: np.ndarray,
        config: ClickFeatureConfig,
        *,
        partition_rows: int,
        scheduler: str | None,
    ) -> ClickFeatures:
        import duckdb

        row_group_parts(files, partition_rows)  # every footer and schema, before any work
        try:
            sums = _click_sql.parquet_sums(files, exam, config)
        except duckdb.Error:
            check_readable(files)  # a corrupt page: name its file
            raise

        return features_from_sums(sums, config.prior_strength)


class _PandasEngine:
    """Dataframe arithmetic on one pandas frame, single-threaded: the reference."""

    def frame_features(
        self, log: Any, exam: np.ndarray, config: ClickFeatureConfig
    ) -> ClickFeatures:
        sums = _click_frame.frame_sums(log, exam, config.sat_dwell_s)
        return features_from_sums(sums, config.prior_strength)

    def parquet_features(
        self,
        files: list[Path],
        exam: np.ndarray,
        config: ClickFeatureConfig,
        *,
        partition_rows: int,
        scheduler: str | None,
    ) -> ClickFeatures:
        parts = row_group_parts(files, partition_rows)
        log = pd.concat([read_part(part) for part in parts], ignore_index=True)
        return self.frame_features(log, exam, config)


class _DaskEngine:
    """The same dataframe arithmetic on a Dask frame: clusters, one pass over the log."""

    def frame_features(
        self, log: Any, exam: np.ndarray, config: ClickFeatureConfig
    ) -> ClickFeatures:
        if not _click_frame.is_dask(log):
            import dask.dataframe as dd

            lazy = self.frame_features(
                dd.from_pandas(log, npartitions=_click_sql.cores()), exam, config
            )
            return _computed(lazy)
        sums = _click_frame.frame_sums(log, exam, config.sat_dwell_s)
        return features_from_sums(sums, config.prior_strength)

    def parquet_features(
        self,
        files: list[Path],
        exam: np.ndarray,
        config: ClickFeatureConfig,
        *,
        partition_rows: int,
        scheduler: str | None,
    ) -> ClickFeatures:
        import dask as dask_
        import dask.dataframe as dd

        parts = row_group_parts(files, partition_rows)
        meta = read_part((parts[0][0], []))
        log = dd.from_map(read_part, parts, meta=meta, enforce_metadata=False)
        with dask_.config.set(scheduler=scheduler) if scheduler else nullcontext():
            return _computed(self.frame_features(log, exam, config))


_ENGINES: dict[str, _Engine] = {
    "duckdb": _DuckDBEngine(),
    "pandas": _PandasEngine(),
    "dask": _DaskEngine(),
}


def _engine(config: ClickFeatureConfig, *, lazy: bool) -> _Engine:
    if config.engine == "auto":
        return _ENGINES["dask" if lazy else "duckdb"]
    return _ENGINES[config.engine]


def _dask_client_active() -> bool:
    """Whether a ``distributed.Client`` is active (never imports distributed)."""
    distributed = sys.modules.get("distributed")
    if distributed is None:
        return False
    try:
        distributed.default_client()
    except ValueError:
        return False
    return True


def _examination(config: ClickFeatureConfig) -> np.ndarray:
    if config.examination is not None:
        return np.asarray(config.examination, dtype=np.float64)
    from hybridrank.data import DEFAULT_EXAMINATION

    return np.asarray(DEFAULT_EXAMINATION, dtype=np.float64)


def _computed(features: ClickFeatures) -> ClickFeatures:
    pairs, docs, queries = _click_frame.compute(features.pairs, features.docs, features.queries)
    return ClickFeatures(pairs=pairs, docs=docs, queries=queries)


def _pandas(frame: Any) -> pd.DataFrame:
    return frame.compute() if _click_frame.is_dask(frame) else frame
