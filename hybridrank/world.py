"""The click world: a collection, its BM25 candidates, a simulated log, frequency buckets and folds.

This module sits at the features layer: it composes :mod:`hybridrank.data`
(collection, first stage, simulator, splits) with
:mod:`hybridrank.features` (query frequency and buckets).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from hybridrank import __version__
from hybridrank import columns as C
from hybridrank._config import config_from_dict, config_to_dict, read_yaml_mapping
from hybridrank.data import (
    Collection,
    FirstStageConfig,
    SimulationConfig,
    bm25_candidates,
    ctr_by_rank,
    fold_of_rows,
    load_nfcorpus,
    load_trec,
    query_folds,
    read_stopwords,
    resolve_nfcorpus_dir,
    simulate_click_log,
)
from hybridrank.errors import ConfigError
from hybridrank.features import (
    BucketConfig,
    FrequencyBuckets,
    compute_text_features,
    query_frequency,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataConfig:
    """Which collection the world is built on.

    Attributes:
        format: ``nfcorpus`` (the original release layout) or ``trec``
            (docs.tsv|docs.jsonl, queries.tsv, qrels).
        path: Directory of the collection; for ``nfcorpus`` None means
            ``--data``, then ``$HYBRIDRANK_DATA``, then ``../shared/datasets``,
            then a one-time download.
        query_type: NFCorpus query type (``titles``, ``vid-titles``, ...).
        splits: NFCorpus splits to merge.
        stopwords: ``collection`` (the release's ``stopwords.large`` for
            NFCorpus, none for TREC), ``none``, or a path to a word list.
    """

    format: str = "nfcorpus"
    path: str | None = None
    query_type: str = "titles"
    splits: tuple[str, ...] = ("dev", "test")
    stopwords: str = "collection"

    def __post_init__(self) -> None:
        if self.format not in ("nfcorpus", "trec"):
            raise ConfigError(f"data.format must be 'nfcorpus' or 'trec', got {self.format!r}")
        if self.format == "trec" and not self.path:
            raise ConfigError("data.path is required for data.format 'trec'")


@dataclass(frozen=True)
class FoldConfig:
    """K-fold split by query.

    Attributes:
        n_folds: Number of folds.
        seed: Seed of the assignment.
        stratify: Deal queries to folds within each frequency bucket.
    """

    n_folds: int = 5
    seed: int = 0
    stratify: bool = True


@dataclass(frozen=True)
class WorldConfig:
    """Everything that defines a click world; the YAML form lives in ``studies/world.yaml``.

    Attributes:
        data: The collection.
        first_stage: BM25 candidate generation.
        simulation: Traffic and click model.
        buckets: Frequency buckets.
        folds: The query split.
    """

    data: DataConfig = field(default_factory=DataConfig)
    first_stage: FirstStageConfig = field(default_factory=FirstStageConfig)
    simulation: SimulationConfig = field(default_factory=SimulationConfig)
    buckets: BucketConfig = field(default_factory=BucketConfig)
    folds: FoldConfig = field(default_factory=FoldConfig)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> WorldConfig:
        if values is not None and not isinstance(values, Mapping):
            raise ConfigError(
                f"world config: expected a mapping of sections, got {type(values).__name__}"
            )
        values = dict(values or {})
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ConfigError(f"world config: unknown sections {unknown}")
        return cls(
            data=config_from_dict(DataConfig, values.get("data"), "data"),
            first_stage=FirstStageConfig.from_dict(values.get("first_stage")),
            simulation=SimulationConfig.from_dict(values.get("simulation")),
            buckets=BucketConfig.from_dict(values.get("buckets")),
            folds=config_from_dict(FoldConfig, values.get("folds"), "folds"),
        )

    @classmethod
    def from_yaml(cls, path: str | Path) -> WorldConfig:
        path = Path(path)
        section = read_yaml_mapping(path, section="world")
        try:
            return cls.from_dict(section)
        except (ConfigError, TypeError) as exc:
            raise ConfigError(f"{path}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        return {
            "data": config_to_dict(self.data),
            "first_stage": self.first_stage.to_dict(),
            "simulation": self.simulation.to_dict(),
            "buckets": self.buckets.to_dict(),
            "folds": config_to_dict(self.folds),
        }

    def replace(self, **sections: Any) -> WorldConfig:
        """A copy with some sections swapped (each a config object)."""
        current = {f.name: getattr(self, f.name) for f in fields(self)}
        current.update(sections)
        return WorldConfig(**current)


def load_collection(
    config: DataConfig, data: str | Path | None = None
) -> tuple[Collection, frozenset[str]]:
    """The collection and stop words a world config names (``data`` overrides the path)."""
    path = data or config.path
    if config.format == "nfcorpus":
        root = resolve_nfcorpus_dir(path)
        collection = load_nfcorpus(root, query_type=config.query_type, splits=config.splits)
        default_sw = root / "stopwords.large"
    else:
        root = Path(str(path))
        collection = load_trec(root)
        default_sw = None
    if config.stopwords == "none":
        words: frozenset[str] = frozenset()
    elif config.stopwords == "collection":
        words = (
            read_stopwords(default_sw)
            if default_sw is not None and default_sw.exists()
            else frozenset()
        )
    else:
        words = read_stopwords(config.stopwords)
    return collection, words


@dataclass(frozen=True)
class ClickWorld:
    """A built click world.

    Attributes:
        config: The config it was built from.
        candidates: Candidate table (``qid, docid, bm25, bm25_rank, y_expert``,
            the text features, ``freq, bucket, fold``), rows of a query contiguous.
        log: The simulated impression log.
        queries: One row per query of the collection: ``qid, text, freq,
            bucket, fold, n_candidates, has_relevant``.
    """

    config: WorldConfig
    candidates: pd.DataFrame
    log: pd.DataFrame
    queries: pd.DataFrame

    def summary(self) -> dict[str, Any]:
        q = self.queries
        per_bucket = (
            q.groupby(C.BUCKET, sort=False)
            .agg(
                queries=(C.QID, "size"),
                sessions=(C.FREQ, "sum"),
                with_candidates=("n_candidates", lambda s: int((s > 0).sum())),
                with_relevant_candidate=("has_relevant", "sum"),
            )
            .reindex(list(self.config.buckets.names))
            .fillna(0)
            .astype(int)
        )
        ctr = ctr_by_rank(self.log, max_rank=self.config.simulation.page_size)
        return {
            "hybridrank_version": __version__,
            "queries": len(q),
            "queries_with_candidates": int((q["n_candidates"] > 0).sum()),
            "queries_with_relevant_candidate": int(q["has_relevant"].sum()),
            "candidates": len(self.candidates),
            "sessions": int(self.log[C.SESSION_ID].nunique()),
            "impressions": len(self.log),
            "clicks": int(self.log[C.CLICK].sum()),
            "ctr_by_rank": [round(float(v), 4) for v in ctr],
            "buckets": per_bucket.to_dict(orient="index"),
        }

    def save(self, out_dir: str | Path) -> Path:
        """Write ``candidates.parquet``, ``impressions.parquet``, ``queries.parquet``,
        ``config.yaml`` and ``summary.json``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        _atomic_parquet(self.candidates, out / "candidates.parquet")
        _atomic_parquet(self.log, out / "impressions.parquet")
        _atomic_parquet(self.queries, out / "queries.parquet")
        (out / "config.yaml").write_text(
            "# The config this world was built with; `hybridrank world build --config` reads it back.\n"
            + yaml.safe_dump({"world": self.config.to_dict()}, sort_keys=False)
        )
        (out / "summary.json").write_text(json.dumps(self.summary(), indent=2) + "\n")
        return out

    @classmethod
    def load(cls, run_dir: str | Path) -> ClickWorld:
        run = Path(run_dir)
        for name in ("candidates.parquet", "impressions.parquet", "queries.parquet", "config.yaml"):
            if not (run / name).exists():
                raise FileNotFoundError(
                    f"{run / name}: missing; is {run} a world built by `hybridrank world build`?"
                )
        from hybridrank.data import read_table

        return cls(
            config=WorldConfig.from_yaml(run / "config.yaml"),
            candidates=read_table(run / "candidates.parquet"),
            log=read_table(run / "impressions.parquet"),
            queries=read_table(run / "queries.parquet"),
        )


def _atomic_parquet(frame: pd.DataFrame, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def build_world(
    config: WorldConfig | None = None,
    *,
    collection: Collection | None = None,
    stopwords: frozenset[str] | None = None,
    data: str | Path | None = None,
) -> ClickWorld:
    """Build the click world: candidates, simulated log, frequency, buckets, folds.

    Args:
        config: World config; default the embedded NFCorpus click world.
        collection: Use this collection instead of loading the configured one.
        stopwords: Stop words for BM25 when ``collection`` is given.
        data: Overrides ``config.data.path`` when loading.
    """
    config = config or WorldConfig()
    if collection is None:
        collection, stopwords = load_collection(config.data, data)
    logger.info("collection %s", collection.summary())
    candidates = bm25_candidates(collection, config.first_stage, stopwords=stopwords)
    text = compute_text_features(
        candidates, collection.queries, collection.docs, stopwords=stopwords
    )
    candidates = pd.concat([candidates, text], axis=1)
    log = simulate_click_log(candidates, config.simulation)

    queries = collection.queries[[C.QID, C.TEXT]].copy()
    queries[C.FREQ] = query_frequency(log, queries[C.QID]).to_numpy()
    buckets = FrequencyBuckets(config.buckets).fit(queries[C.FREQ].to_numpy())
    queries[C.BUCKET] = buckets.transform(queries[C.FREQ].to_numpy()).astype(str)
    strata = queries[C.BUCKET].to_numpy() if config.folds.stratify else None
    queries[C.FOLD] = query_folds(
        len(queries), n_folds=config.folds.n_folds, seed=config.folds.seed, strata=strata
    )
    n_cand = candidates.groupby(C.QID, sort=False).size()
    queries["n_candidates"] = n_cand.reindex(queries[C.QID], fill_value=0).to_numpy()
    has_rel = candidates.groupby(C.QID, sort=False)[C.Y_EXPERT].max() > 0
    queries["has_relevant"] = has_rel.reindex(queries[C.QID], fill_value=False).to_numpy()

    per_q = queries.set_index(C.QID)
    cand_q = candidates[C.QID]
    candidates[C.FREQ] = per_q[C.FREQ].reindex(cand_q).to_numpy()
    candidates[C.BUCKET] = per_q[C.BUCKET].reindex(cand_q).to_numpy()
    candidates[C.FOLD] = fold_of_rows(cand_q.to_numpy(), queries[C.QID], queries[C.FOLD])
    logger.info("buckets %s", buckets.describe())
    return ClickWorld(
        config=config, candidates=candidates, log=log, queries=queries.reset_index(drop=True)
    )


__all__ = [
    "ClickWorld",
    "DataConfig",
    "FoldConfig",
    "WorldConfig",
    "build_world",
    "load_collection",
]
