"""The click world as a dataset producer: a collection, BM25 candidates, a simulated log, splits.

``world build`` is one producer of the dataset layout (``dataset import`` is
the other): it composes :mod:`hybridrank.data` (collection, first stage,
simulator, the dataset contract) with :mod:`hybridrank.features` (text
features, query frequency and buckets), and :func:`make_splits` is shared by
every producer.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import yaml

from hybridrank import __version__
from hybridrank import columns as C
from hybridrank._config import (
    config_from_dict,
    config_to_dict,
    read_yaml_mapping,
    unknown_keys_error,
)
from hybridrank.data import (
    COLLECTION_DOC_FILES,
    TUNING,
    Collection,
    Dataset,
    FirstStageConfig,
    SimulationConfig,
    SplitInfo,
    bm25_candidates,
    choose_tuning_queries,
    ctr_by_rank,
    load_nfcorpus,
    load_trec,
    query_folds,
    read_stopwords,
    resolve_nfcorpus_dir,
    simulate_click_log,
)
from hybridrank.errors import ConfigError
from hybridrank.features import (
    TEXT_FEATURES,
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
        format: ``nfcorpus`` (the original release layout), ``trec``
            (docs.tsv|docs.jsonl|corpus.jsonl, queries.tsv|queries.jsonl,
            qrels|qrels/test.tsv: :func:`hybridrank.data.load_trec`) or ``auto``
            (``trec`` when the directory holds one of those document files,
            else ``nfcorpus``).
        path: Directory of the collection; for ``nfcorpus`` None means
            ``--data``, then ``$HYBRIDRANK_DATA``, then ``../shared/datasets``,
            then a one-time download.
        unknown_ids: Judged pairs naming unknown documents or queries:
            ``error`` (default) or ``drop`` (counted and logged).
        query_type: NFCorpus query type (``titles``, ``vid-titles``, ...).
        query_descriptions: NFCorpus query type whose texts become the queries'
            ``description`` (``vid-desc``), read by an LLM judge asked with the
            ``described`` prompt; None: no descriptions. (A TREC directory's
            ``queries.jsonl`` or ``topics.txt`` carries its own.)
        splits: NFCorpus splits to merge.
        stopwords: ``collection`` (the release's ``stopwords.large`` for
            NFCorpus, none for TREC), ``none``, or a path to a word list.
    """

    format: str = "auto"
    path: str | None = None
    query_type: str = "titles"
    query_descriptions: str | None = None
    splits: tuple[str, ...] = ("dev", "test")
    stopwords: str = "collection"
    unknown_ids: str = "error"

    def __post_init__(self) -> None:
        if self.format not in ("auto", "nfcorpus", "trec"):
            raise ConfigError(
                f"data.format must be 'auto', 'nfcorpus' or 'trec', got {self.format!r}"
            )
        if self.format == "trec" and not self.path:
            raise ConfigError("data.path is required for data.format 'trec'")
        if self.unknown_ids not in ("error", "drop"):
            raise ConfigError(f"data.unknown_ids must be 'error' or 'drop', got {self.unknown_ids!r}")
        if self.query_descriptions is not None and self.format == "trec":
            raise ConfigError(
                "data.query_descriptions names an NFCorpus query type; a TREC directory gives "
                "descriptions in queries.jsonl or topics.txt"
            )


@dataclass(frozen=True)
class FoldConfig:
    """K-fold split by query, and the labelled tuning/calibration query set.

    Attributes:
        n_folds: Number of folds.
        seed: Seed of the assignment (and of the tuning-set draw).
        stratify: Deal queries to folds within each frequency bucket.
        tuning_queries: Queries (with a relevant candidate, stratified by
            bucket) whose expert grades calibrate the semantic judge and tune
            the stacker; they are left out of every evaluation. At most a
            fifth of the eligible queries: a larger request is cut with a
            warning. 0 for none.
    """

    n_folds: int = 5
    seed: int = 0
    stratify: bool = True
    tuning_queries: int = 60

    def __post_init__(self) -> None:
        if self.n_folds < 2:
            raise ConfigError(f"folds.n_folds must be >= 2, got {self.n_folds}")
        if self.seed < 0:
            raise ConfigError(f"folds.seed must be >= 0, got {self.seed}")
        if self.tuning_queries < 0:
            raise ConfigError(f"folds.tuning_queries must be >= 0, got {self.tuning_queries}")


T = TypeVar("T")


def _in_world(parse: Callable[[], T]) -> T:
    """``parse()``, its ConfigError naming the key from the top: ``world.simulation.seed``."""
    try:
        return parse()
    except ConfigError as exc:
        raise ConfigError(f"world.{exc}") from None


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
            raise unknown_keys_error(
                "world config", unknown, [f.name for f in fields(cls)], noun="sections"
            )
        return cls(
            data=_in_world(lambda: config_from_dict(DataConfig, values.get("data"), "data")),
            first_stage=_in_world(lambda: FirstStageConfig.from_dict(values.get("first_stage"))),
            simulation=_in_world(lambda: SimulationConfig.from_dict(values.get("simulation"))),
            buckets=_in_world(lambda: BucketConfig.from_dict(values.get("buckets"))),
            folds=_in_world(lambda: config_from_dict(FoldConfig, values.get("folds"), "folds")),
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
    fmt = config.format
    if fmt == "auto":
        fmt = "trec" if path and any((Path(path) / n).exists() for n in TREC_DOCS) else "nfcorpus"
    if fmt == "nfcorpus":
        root = resolve_nfcorpus_dir(path)
        collection = load_nfcorpus(
            root,
            query_type=config.query_type,
            splits=config.splits,
            descriptions=config.query_descriptions,
        )
        default_sw = root / "stopwords.large"
    else:
        if config.query_descriptions is not None:
            raise ConfigError(
                f"data.query_descriptions={config.query_descriptions!r} is for NFCorpus; the TREC "
                f"directory {path} gives descriptions in queries.jsonl or topics.txt"
            )
        root = Path(str(path))
        collection = load_trec(root, unknown_ids=config.unknown_ids)  # type: ignore[arg-type]
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


TREC_DOCS = COLLECTION_DOC_FILES


def make_splits(
    queries: pd.Series | pd.Index,
    freq: pd.Series,
    has_relevant: pd.Series | None,
    *,
    buckets: BucketConfig,
    folds: FoldConfig,
) -> tuple[pd.DataFrame, SplitInfo]:
    """The fixed splits of a dataset: frequency buckets, query folds, the tuning set.

    Args:
        queries: Every query id of the dataset.
        freq: Sessions per query (indexed by qid; missing queries count 0).
        has_relevant: Whether a query's candidates hold a relevant document
            (indexed by qid); None where the dataset has no expert grades, so
            no tuning set can be drawn.
        buckets: Frequency buckets.
        folds: Folds and the tuning-set size.

    Returns:
        The splits table (``qid, freq, bucket, fold, tuning``) and its manifest record.
    """
    qids = pd.Index(pd.Series(queries, dtype=str), name=C.QID)
    out = pd.DataFrame({C.QID: qids})
    out[C.FREQ] = freq.reindex(qids, fill_value=0).to_numpy(dtype=np.int64)
    fitted = FrequencyBuckets(buckets).fit(out[C.FREQ].to_numpy())
    out[C.BUCKET] = fitted.transform(out[C.FREQ].to_numpy()).astype(str)
    strata = out[C.BUCKET].to_numpy() if folds.stratify else None
    out[C.FOLD] = query_folds(len(out), n_folds=folds.n_folds, seed=folds.seed, strata=strata)
    tuning: set[str] = set()
    if has_relevant is not None and folds.tuning_queries:
        eligible = out.assign(
            has_relevant=has_relevant.reindex(qids, fill_value=False).to_numpy(dtype=bool)
        )
        tuning = choose_tuning_queries(eligible, folds.tuning_queries, seed=folds.seed)
    elif folds.tuning_queries:
        logger.warning(
            "no expert grades: the dataset has no labelled tuning set (%d asked for)",
            folds.tuning_queries,
        )
    out[TUNING] = out[C.QID].isin(tuning).to_numpy()
    info = SplitInfo(
        n_folds=folds.n_folds,
        fold_seed=folds.seed,
        buckets={**buckets.to_dict(), "fitted_edges": [float(e) for e in fitted.edges_]},
        tuning_requested=folds.tuning_queries,
        tuning_seed=folds.seed,
        tuning_chosen=len(tuning),
    )
    logger.info("buckets %s", fitted.describe())
    return out, info


def build_world(
    config: WorldConfig | None = None,
    *,
    collection: Collection | None = None,
    stopwords: frozenset[str] | None = None,
    data: str | Path | None = None,
) -> Dataset:
    """Build the click world as a dataset: BM25 candidates, simulated log, splits.

    Args:
        config: World config; default the embedded NFCorpus click world.
        collection: Use this collection instead of loading the configured one.
        stopwords: Stop words for BM25 when ``collection`` is given.
        data: Overrides ``config.data.path`` when loading.

    Returns:
        A :class:`~hybridrank.data.Dataset` with every table: candidates (BM25,
        text features, ``y_expert``), impressions, queries, docs, qrels and
        the splits. Write it with :func:`write_world`.
    """
    config = config or WorldConfig()
    if data is not None:  # recorded, so the written config.yaml rebuilds this world
        config = replace(config, data=replace(config.data, path=str(Path(data).resolve())))
    if collection is None:
        collection, stopwords = load_collection(config.data)
    logger.info("collection %s", collection.summary())
    candidates = bm25_candidates(collection, config.first_stage, stopwords=stopwords)
    text = compute_text_features(
        candidates, collection.queries, collection.docs, stopwords=stopwords
    )
    candidates = pd.concat([candidates, text], axis=1)
    if config.simulation.n_sessions == 0:
        logger.warning(
            "simulation.n_sessions is 0: a world without traffic (every query in the lowest "
            "frequency bucket, no click labels or click features to learn from)"
        )
    log = simulate_click_log(candidates, config.simulation)

    qids = collection.queries[C.QID].astype(str)
    freq = query_frequency(log, qids)
    has_rel = candidates.groupby(C.QID, sort=False)[C.Y_EXPERT].max() > 0
    splits, info = make_splits(
        qids, freq, has_rel, buckets=config.buckets, folds=config.folds
    )
    features = tuple(c for c in TEXT_FEATURES if c in candidates.columns)
    return Dataset(
        candidates=candidates.reset_index(drop=True),
        splits=splits,
        impressions=log,
        queries=collection.queries[
            [C.QID, C.TEXT, *(c for c in C.QUERY_CONTEXT_COLUMNS if c in collection.queries)]
        ].reset_index(drop=True),
        docs=collection.docs.reset_index(drop=True),
        qrels=collection.qrels.reset_index(drop=True),
        source={
            "producer": "world build",
            "hybridrank_version": __version__,
            "collection": collection.name,
            "world": config.to_dict(),
        },
        split_info=info,
        features=features,
    )


def world_summary(dataset: Dataset) -> dict[str, Any]:
    """Counts, CTR by rank and per-bucket sizes of a click world (or any dataset with a log)."""
    out: dict[str, Any] = {"hybridrank_version": __version__, **dataset.summary()}
    if dataset.impressions is not None:
        ctr = ctr_by_rank(dataset.impressions, max_rank=10)
        out["ctr_by_rank"] = [round(float(v), 4) for v in ctr]
    out["buckets"] = dataset.bucket_table().to_dict(orient="index")
    return out


def world_config_of(dataset: Dataset) -> WorldConfig:
    """The world config a simulated dataset was built with (``source.world``)."""
    world = dataset.source.get("world")
    if not isinstance(world, Mapping):
        raise ConfigError(
            f"{dataset.path or 'the dataset'} was not built by `hybridrank world build` "
            f"(producer: {dataset.source.get('producer', 'unknown')}); it has no world config"
        )
    return WorldConfig.from_dict(world)


def write_world(dataset: Dataset, out_dir: str | Path) -> Path:
    """Write a click world: the dataset layout plus ``config.yaml`` (feed it back with
    ``world build --config``) and ``summary.json``."""
    config = world_config_of(dataset)
    extra = {
        "config.yaml": "# The config this world was built with; "
        "`hybridrank world build --config` reads it back.\n"
        + yaml.safe_dump({"world": config.to_dict()}, sort_keys=False),
        "summary.json": json.dumps(world_summary(dataset), indent=2) + "\n",
    }
    return dataset.write(out_dir, extra_files=extra)


__all__ = [
    "DataConfig",
    "FoldConfig",
    "WorldConfig",
    "build_world",
    "load_collection",
    "make_splits",
    "world_config_of",
    "world_summary",
    "write_world",
]
