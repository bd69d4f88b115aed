"""``dataset import``: the dataset layout from a user's own data (click logs, texts, qrels, LETOR).

The other producer of :class:`~hybridrank.data.Dataset` next to ``world build``.
Two kinds of input:

* A click log in any format of :data:`~hybridrank.data.LOG_READERS`, with
  optional query and document texts and qrels. Candidates are the pairs the
  log showed, in logged order (feature ``logged_position_mean``); where texts
  exist they are extended with the BM25 top-K (``bm25_top_k``) and get text
  features. Without a log, texts plus ``bm25_top_k`` give a BM25-only dataset.
* LETOR / SVMlight files (no clicks): the rows are the candidates, their
  features ``f1..fN`` the dataset's features and their labels its grades.

Nothing is dropped silently: what an option drops (bad log records with
``on_bad: skip``, unknown ids with ``unknown_ids: drop``) is counted in the
manifest's ``source.dropped``, and what is read but unused (judgments of
pairs that are no candidate) in ``source.unmatched``.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import pandas as pd

from hybridrank import __version__
from hybridrank import columns as C
from hybridrank._config import config_from_dict, config_to_dict, in_file, read_yaml_mapping
from hybridrank.data import (
    LINE,
    LOG_READERS,
    QRELS_READERS,
    Collection,
    Dataset,
    FirstStageConfig,
    bm25_candidates,
    bm25_pair_scores,
    collection_qrels_file,
    load_trec,
    read_click_log,
    read_docs_jsonl,
    read_id_text_tsv,
    read_qrels,
    read_queries,
    read_stopwords,
    read_svmlight,
    text_lines,
)
from hybridrank.errors import ConfigError, DataFormatError, MissingInputError
from hybridrank.features import (
    TEXT_FEATURES,
    BucketConfig,
    compute_text_features,
    query_frequency,
)
from hybridrank.pipelines._world import FoldConfig, make_splits

logger = logging.getLogger(__name__)

#: Feature column of a click-log import: the mean 1-based position a pair was shown at
#: (lower is better: the production ranker's order, a "logged order" baseline).
LOGGED_POSITION: Final = C.LOGGED_POSITION
#: What the manifest's ``source.producer`` says.
PRODUCER: Final = "dataset import"

#: Options naming a file of extra query text, and the column each fills.
_CONTEXT_OPTIONS: Final = {"query_descriptions": C.DESCRIPTION, "query_narratives": C.NARRATIVE}
_DOCID_COMMENT = re.compile(r"\bdocid\s*=\s*(\S+)")


@dataclass(frozen=True)
class ImportConfig:
    """What ``hybridrank dataset import`` reads (YAML section ``dataset:``).

    Paths are taken as given (relative to the working directory).

    Attributes:
        name: Name of the dataset in reports; default the name of the first input.
        log: A click log, read with the reader of ``log_format``.
        log_format: A key of :data:`~hybridrank.data.LOG_READERS`
            (``impressions`` = the canonical layout as parquet/CSV/TSV,
            ``yandex``, ``clara2``, ``tiangong``, ``baidu-ultr``); required with ``log``.
        on_bad: Bad log records: ``error`` (stop at the first, naming file,
            line and column) or ``skip`` (left out and counted; only readers
            that take it: ``impressions``, ``tiangong``, ``baidu-ultr``).
        collection: A TREC-layout directory (``docs.tsv|docs.jsonl``,
            ``queries.tsv``, ``qrels``; or BEIR's ``corpus.jsonl``,
            ``queries.jsonl``, ``qrels/test.tsv``), instead of
            ``queries``/``docs``/``qrels``.
        queries: Query texts: ``QID<TAB>TEXT``, JSON lines (``.jsonl``:
            ``{"qid", "text"[, "description"][, "narrative"]}``) or a TREC
            topics file (``<top>`` blocks: ``<num>``, ``<title>``, ``<desc>``,
            ``<narr>``).
        query_descriptions: A ``QID<TAB>TEXT`` file of query descriptions
            (NFCorpus ``*.vid-desc.queries``); queries it does not name have
            none. Read by LLM judges asked with the ``described`` prompt.
        query_narratives: The same for narratives (what a relevant document
            must contain).
        docs: Document texts, ``DOCID<TAB>TEXT`` (or ``DOCID<TAB>TITLE<TAB>TEXT``)
            or JSON lines (``.jsonl``: ``{"docid", "text"[, "title"]}``).
        qrels: Expert grades, in ``qrels_format``.
        qrels_format: A key of :data:`~hybridrank.data.QRELS_READERS`: ``trec``
            (``QID 0 DOCID GRADE``) or ``clara2`` (``CLARA2QueryUrlRelevance_beta``).
        letor: SVMlight/LETOR files (``LABEL qid:Q i:v ... [# docid = D]``), no
            log and no texts; several are concatenated (their queries must not overlap).
        bm25_top_k: 0: the candidates are the documents the log showed; K > 0
            (needs texts): add each query's BM25 top-K over the collection
            (without a log, the only candidates).
        stopwords: A stop-word list (one word a line) for BM25 and text
            features; None uses none.
        unknown_ids: Where texts exist, qrels and log rows naming queries or
            documents without text: ``error`` or ``drop`` (counted).
        buckets: Frequency buckets (frequency = sessions per query; 0 without a log).
        folds: Query folds and the labelled tuning/calibration query set.
    """

    name: str | None = None
    log: str | None = None
    log_format: str | None = None
    on_bad: Literal["error", "skip"] = "error"
    collection: str | None = None
    queries: str | None = None
    query_descriptions: str | None = None
    query_narratives: str | None = None
    docs: str | None = None
    qrels: str | None = None
    qrels_format: str = "trec"
    letor: tuple[str, ...] = ()
    bm25_top_k: int = 0
    stopwords: str | None = None
    unknown_ids: Literal["error", "drop"] = "error"
    buckets: BucketConfig = field(default_factory=BucketConfig)
    folds: FoldConfig = field(default_factory=FoldConfig)

    def __post_init__(self) -> None:
        if self.on_bad not in ("error", "skip"):
            raise ConfigError(f"dataset.on_bad must be 'error' or 'skip', got {self.on_bad!r}")
        if self.unknown_ids not in ("error", "drop"):
            raise ConfigError(
                f"dataset.unknown_ids must be 'error' or 'drop', got {self.unknown_ids!r}"
            )
        if self.qrels_format not in QRELS_READERS:
            raise ConfigError(
                f"dataset.qrels_format must be one of {sorted(QRELS_READERS)}, "
                f"got {self.qrels_format!r}"
            )
        if self.bm25_top_k < 0:
            raise ConfigError(f"dataset.bm25_top_k must be >= 0, got {self.bm25_top_k}")
        if self.log is not None and self.log_format is None:
            raise ConfigError(
                f"dataset.log_format is required with a log; one of {sorted(LOG_READERS)} "
                "(`--log-format` on the command line)"
            )
        if self.log_format is not None and self.log_format not in LOG_READERS:
            raise ConfigError(
                f"dataset.log_format must be one of {sorted(LOG_READERS)}, got {self.log_format!r}"
            )
        if self.log_format is not None and self.log is None:
            raise ConfigError("dataset.log_format is set but no dataset.log is given")
        if self.collection is not None:
            clash = [k for k in ("queries", "docs", "qrels") if getattr(self, k) is not None]
            if clash:
                raise ConfigError(
                    f"dataset.collection holds queries, docs and qrels; do not also give {clash}"
                )
        if (self.queries is None) != (self.docs is None):
            raise ConfigError("dataset.queries and dataset.docs come together (texts of both)")
        if self.letor:
            clash = [
                k
                for k in ("log", "collection", "queries", "docs", "qrels", *_CONTEXT_OPTIONS)
                if getattr(self, k) is not None
            ]
            if clash or self.bm25_top_k:
                raise ConfigError(
                    "dataset.letor files hold features and grades on their own; do not combine "
                    f"them with {clash or ['bm25_top_k']}"
                )
            return
        given = [k for k in _CONTEXT_OPTIONS if getattr(self, k) is not None]
        if given and not self.has_texts:
            raise ConfigError(
                f"dataset.{given[0]} adds to query texts: give dataset.queries (with docs) or "
                "dataset.collection too"
            )
        if self.bm25_top_k and not self.has_texts:
            raise ConfigError(
                "dataset.bm25_top_k needs texts: dataset.collection, or dataset.queries and "
                "dataset.docs"
            )
        if self.log is None:
            if not self.has_texts:
                raise ConfigError(
                    "nothing to import: give a click log (log, log_format), LETOR files "
                    "(letor), or texts (collection, or queries + docs) with bm25_top_k > 0"
                )
            if not self.bm25_top_k:
                raise ConfigError(
                    "without a click log the candidates come from BM25: set dataset.bm25_top_k "
                    "(`--bm25-top-k K`), for example 50"
                )

    @property
    def has_texts(self) -> bool:
        return self.collection is not None or self.queries is not None

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> ImportConfig:
        """Build from the ``dataset:`` mapping of a YAML file (keys as the attributes)."""
        if values is not None and not isinstance(values, Mapping):
            raise ConfigError(f"dataset: expected a mapping of keys, got {type(values).__name__}")
        flat = dict(values or {})
        misplaced = sorted(set(flat) & {*FOLD_TWINS, "stratify"})
        if misplaced:
            raise ConfigError("; ".join(
                f"dataset.{k} belongs under folds: (folds: {{{k}: {flat[k]!r}}}"
                + (f"; the YAML twin of {FOLD_TWINS[k]})" if k in FOLD_TWINS else ")")
                for k in misplaced
            ))  # fmt: skip
        if "folds" in flat and not isinstance(flat["folds"], Mapping | None):
            raise ConfigError(FOLDS_SHAPE + f", got {flat['folds']!r}")
        if isinstance(flat.get("letor"), str):
            flat["letor"] = [flat["letor"]]
        return config_from_dict(cls, flat, "dataset")

    @classmethod
    def from_yaml(cls, path: str | Path) -> ImportConfig:
        """Read the ``dataset:`` section of a YAML file (or the whole file without one)."""
        p = Path(path)
        section = read_yaml_mapping(p, section="dataset")
        return in_file(p, lambda: cls.from_dict(section))

    def to_dict(self) -> dict[str, Any]:
        out = config_to_dict(self)
        out["buckets"] = self.buckets.to_dict()
        out["folds"] = config_to_dict(self.folds)
        return out


#: The ``folds:`` keys of a dataset config and the flags they are the YAML twins of.
FOLD_TWINS = {"n_folds": "--folds", "tuning_queries": "--tuning-queries", "seed": "--seed"}
FOLDS_SHAPE = (
    "dataset.folds must be a mapping such as {n_folds: 5, tuning_queries: 60, seed: 0} "
    "(the YAML twins of --folds, --tuning-queries and --seed)"
)


# ------------------------------------------------------------------------------- records


class _Record:
    """The manifest's ``source``: inputs read, what was dropped (and why), what went unused."""

    def __init__(self, config: ImportConfig) -> None:
        self.config = config
        self.inputs: dict[str, Any] = {}
        self.dropped: dict[str, dict[str, Any]] = {}
        self.unmatched: dict[str, dict[str, Any]] = {}
        self.candidates: dict[str, int] = {}

    def drop(self, what: str, count: int, why: str) -> None:
        if count:
            self.dropped[what] = {"count": int(count), "why": why}
            logger.warning("dropped %d %s: %s", count, what.replace("_", " "), why)

    def unused(self, what: str, count: int, why: str) -> None:
        if count:
            self.unmatched[what] = {"count": int(count), "why": why}
            logger.info("%d %s: %s", count, what.replace("_", " "), why)

    def source(self, name: str) -> dict[str, Any]:
        return {
            "producer": PRODUCER,
            "hybridrank_version": __version__,
            "name": name,
            "inputs": self.inputs,
            "candidates": self.candidates,
            "dropped": self.dropped,
            "unmatched": self.unmatched,
            "config": self.config.to_dict(),
        }


# ------------------------------------------------------------------------------- entry


def import_dataset(config: ImportConfig) -> Dataset:
    """Build a dataset from a user's click log, texts, qrels or LETOR files.

    Args:
        config: What to read (see :class:`ImportConfig`).

    Returns:
        A validated :class:`~hybridrank.data.Dataset` (write it with
        :meth:`~hybridrank.data.Dataset.write`). From a click log: candidates
        ``qid, docid, logged_position_mean`` (+ ``bm25, bm25_rank`` and the text
        features where texts exist, + ``y_expert`` with qrels), the log as
        ``impressions``, splits by sessions per query. From LETOR files:
        candidates ``qid, docid, f1..fN, y_expert`` in the files' row order,
        qrels = the labels, every query at frequency 0.

    Raises:
        ConfigError: Inconsistent options.
        DataFormatError: Bad input, naming the file, line or row, and column.
        MissingInputError: A named input (or a file of a collection directory) does not exist.

    Example:
        >>> ds = import_dataset(ImportConfig(log="log.csv", log_format="impressions"))  # doctest: +SKIP
        >>> ds.write("datasets/mylog")  # doctest: +SKIP
    """
    _check_inputs(config)
    record = _Record(config)
    if config.letor:
        return _import_letor(config, record)
    return _import_log_and_texts(config, record)


def _check_inputs(config: ImportConfig) -> None:
    """Every named input exists, before anything is read (the message names the option)."""
    check_input_paths({key: getattr(config, key) for key in (*INPUT_PATH_KEYS, "letor")})


#: The ``dataset:`` keys that name one input file or directory (``letor`` names several).
INPUT_PATH_KEYS = ("log", "collection", "queries", "docs", "qrels", "stopwords", *_CONTEXT_OPTIONS)


def check_input_paths(values: Mapping[str, Any]) -> None:
    """The inputs a ``dataset:`` mapping (or the flags) names exist, each as a file or, for
    ``collection``, a directory; checked before the options' combination, so that a
    mistyped path is reported as one. Values that are not paths are left to the config."""
    letor = values.get("letor")
    named = [(key, values.get(key)) for key in INPUT_PATH_KEYS]
    named += [("letor", v) for v in ([letor] if isinstance(letor, str | Path)
                                     else letor if isinstance(letor, list | tuple) else ())]  # fmt: skip
    for key, value in named:
        if not isinstance(value, str | Path):
            continue
        path = Path(value)
        ok = path.is_dir() if key == "collection" else path.is_file()
        if not ok:
            what = "directory" if key == "collection" else "file"
            flag = "--" + key.replace("_", "-")
            problem = (
                f"is a directory, not a {what}" if key != "collection" and path.is_dir()
                else f"is a file, not a {what}" if key == "collection" and path.exists()
                else f"no such {what}"
            )  # fmt: skip
            raise MissingInputError(
                f"{path}: {problem} (dataset.{key} in a YAML, {flag} on the command line)"
            )


# ------------------------------------------------------------------------ click logs, texts


@dataclass(frozen=True)
class _Texts:
    queries: pd.DataFrame  # qid, text
    docs: pd.DataFrame  # docid, text[, title]
    qrels: pd.DataFrame | None  # qid, docid, grade, _line
    qrels_path: Path | None
    stopwords: frozenset[str]
    name: str


def _read_docs(path: Path) -> pd.DataFrame:
    if path.suffix.lower() == ".jsonl":
        return read_docs_jsonl(path)
    return read_id_text_tsv(path, id_column=C.DOCID, allow_title=True)


def _load_texts(config: ImportConfig, record: _Record) -> _Texts | None:
    """Queries, docs (and the qrels of a collection directory), or None without texts."""
    stopwords = read_stopwords(config.stopwords) if config.stopwords else frozenset()
    if config.collection is not None:
        root = Path(config.collection)
        if not root.is_dir():
            raise MissingInputError(f"{root}: collection directory not found")
        qrels_path = collection_qrels_file(root, warn=False)  # load_trec says it
        # Our unknown-id policy (its message, its counts) runs on the qrels read below;
        # load_trec only drops the same rows from its own copy.
        try:
            collection = load_trec(root, unknown_ids="drop", quiet=True)
        except FileNotFoundError as exc:
            raise MissingInputError(str(exc)) from None
        qrels = read_qrels(qrels_path, "trec")
        record.inputs["collection"] = {
            "path": str(root),
            "format": "trec",
            "docs": len(collection.docs),
            "queries": len(collection.queries),
            "qrels_rows": len(qrels),
        }
        queries = collection.queries
        queries = queries[[C.QID, C.TEXT, *(c for c in C.QUERY_CONTEXT_COLUMNS if c in queries)]]
        return _Texts(
            queries=_add_query_context(queries.reset_index(drop=True), config, record),
            docs=collection.docs.reset_index(drop=True),
            qrels=qrels,
            qrels_path=qrels_path,
            stopwords=stopwords,
            name=collection.name,
        )
    if config.queries is None or config.docs is None:
        return None
    queries = read_queries(Path(config.queries)).drop(columns=LINE)
    docs = _read_docs(Path(config.docs)).drop(columns=LINE)
    record.inputs["queries"] = {"path": config.queries, "rows": len(queries)}
    for column in C.QUERY_CONTEXT_COLUMNS:
        if column in queries:
            record.inputs["queries"][f"with_{column}"] = int(queries[column].notna().sum())
    record.inputs["docs"] = {"path": config.docs, "rows": len(docs)}
    return _Texts(
        queries=_add_query_context(queries, config, record),
        docs=docs,
        qrels=None,
        qrels_path=None,
        stopwords=stopwords,
        name=Path(config.docs).stem,
    )


def _add_query_context(queries: pd.DataFrame, config: ImportConfig, record: _Record) -> pd.DataFrame:
    """``queries`` with the description and narrative files of ``config`` joined by qid.

    A file naming a query without text follows ``unknown_ids`` (an error, or
    dropped and counted); a queries input that already holds the column is
    an error (the text would be given twice).
    """
    out = queries.copy()
    for key, column in _CONTEXT_OPTIONS.items():
        given = getattr(config, key)
        if given is None:
            continue
        path = Path(given)
        if column in out.columns and out[column].notna().any():
            raise DataFormatError(
                f"the queries already hold a {column} column; give each query's {column} once "
                f"(drop dataset.{key}, or the field from the queries file)",
                path=path,
            )
        extra = read_id_text_tsv(path, id_column=C.QID)
        unknown = ~extra[C.QID].isin(out[C.QID]).to_numpy()
        if unknown.any():
            if config.unknown_ids == "error":
                row = int(np.flatnonzero(unknown)[0])
                raise DataFormatError(
                    f"{column} of query {extra[C.QID].iloc[row]!r}, which has no text; "
                    f"{int(unknown.sum())} such rows ({_unknown_hint()})",
                    path=path,
                    line=int(extra[LINE].iloc[row]),
                    column=C.QID,
                )
            record.drop(
                f"{key}_unknown_query",
                int(unknown.sum()),
                f"{path}: {column}s of queries without text (unknown_ids: drop)",
            )
        text = extra.set_index(C.QID)[C.TEXT].reindex(out[C.QID]).to_numpy(dtype=object)
        out[column] = [t if isinstance(t, str) else None for t in text]
        record.inputs[key] = {"path": given, "rows": len(extra), "matched": int((~unknown).sum())}
    return out


def _unknown_hint() -> str:
    return (
        "to drop such rows (counted in the manifest): `--unknown-ids drop` on the command "
        "line, `unknown_ids: drop` under `dataset:` in a YAML, or unknown_ids='drop' in Python"
    )


def _apply_qrels_policy(
    qrels: pd.DataFrame, texts: _Texts, path: Path, config: ImportConfig, record: _Record
) -> pd.DataFrame:
    """Judged pairs naming a query or document without text: raise, or drop and count."""
    unknown_q = ~qrels[C.QID].isin(texts.queries[C.QID]).to_numpy()
    unknown_d = ~qrels[C.DOCID].isin(texts.docs[C.DOCID]).to_numpy()
    unknown = unknown_q | unknown_d
    if not unknown.any():
        return qrels
    if config.unknown_ids == "error":
        row = int(np.flatnonzero(unknown)[0])
        bad = qrels.iloc[row]
        column = C.QID if unknown_q[row] else C.DOCID
        raise DataFormatError(
            f"judged pair ({bad[C.QID]!r}, {bad[C.DOCID]!r}) names a {column} without text; "
            f"{int(unknown.sum())} such rows in all ({_unknown_hint()})",
            path=path,
            line=int(bad[LINE]) if LINE in qrels.columns else None,
            column=column,
        )
    record.drop(
        "qrels_rows_unknown_ids",
        int(unknown.sum()),
        f"{path}: judged pairs naming a query or document without text (unknown_ids: drop)",
    )
    return qrels.loc[~unknown].reset_index(drop=True)


def _read_log(config: ImportConfig, record: _Record) -> pd.DataFrame:
    assert config.log is not None and config.log_format is not None
    log = read_click_log(config.log, config.log_format, on_bad=config.on_bad)
    if len(log) == 0:
        raise DataFormatError("holds no impressions (only a header, or no records)", path=config.log)
    report = log.attrs.get("read_report")
    entry: dict[str, Any] = {
        "path": config.log,
        "format": config.log_format,
        "rows": len(log),
        "sessions": int(log[C.SESSION_ID].nunique()),
    }
    if report is not None:
        entry["read_report"] = {
            **dataclasses.asdict(report),
            "first_errors": list(report.first_errors),
        }
        record.drop(
            "log_records_bad",
            report.rows_skipped,
            f"{config.log}: bad records left out (on_bad: skip); first: "
            + "; ".join(report.first_errors[:1]),
        )
        record.drop(
            "log_clicks_without_impression",
            report.clicks_dropped,
            f"{config.log}: clicks on documents no impression of their session showed",
        )
        record.drop(
            "log_clicks_repeated",
            report.clicks_merged,
            f"{config.log}: repeated clicks on a result already clicked on the same page, "
            "folded into its one click",
        )
        record.drop(
            "log_records_beyond_reader_limits",
            report.rows_dropped,
            f"{config.log}: left out by the {config.log_format} reader "
            "(see its documentation: rows beyond max_position, queries showing no result)",
        )
    record.inputs["log"] = entry
    log = log.reset_index(drop=True)
    log.attrs = {}
    return log


def _apply_log_policy(
    log: pd.DataFrame, texts: _Texts, config: ImportConfig, record: _Record
) -> pd.DataFrame:
    """Log rows naming a query or document without text: raise, or drop (whole sessions for a
    query, single rows for a document) and count."""
    unknown_q = ~log[C.QID].isin(texts.queries[C.QID]).to_numpy()
    unknown_d = ~log[C.DOCID].isin(texts.docs[C.DOCID]).to_numpy()
    unknown = unknown_q | unknown_d
    if not unknown.any():
        return log
    if config.unknown_ids == "error":
        row = int(np.flatnonzero(unknown)[0])
        column = C.QID if unknown_q[row] else C.DOCID
        value = log[column].iloc[row]
        raise DataFormatError(
            f"the log names {column} {value!r} (session {log[C.SESSION_ID].iloc[row]}), which "
            f"has no text; {int(unknown_q.sum())} rows name queries and {int(unknown_d.sum())} "
            f"documents without text ({_unknown_hint()})",
            path=config.log,
            column=column,
        )
    sessions_q = int(log.loc[unknown_q, C.SESSION_ID].nunique())
    record.drop(
        "log_sessions_unknown_query",
        sessions_q,
        f"{config.log}: sessions of queries without text, {int(unknown_q.sum())} rows "
        "(unknown_ids: drop)",
    )
    record.drop(
        "log_rows_unknown_doc",
        int((unknown_d & ~unknown_q).sum()),
        f"{config.log}: shown documents without text, other rows of their sessions kept "
        "(unknown_ids: drop)",
    )
    return log.loc[~unknown].reset_index(drop=True)


def _logged_candidates(log: pd.DataFrame) -> pd.DataFrame:
    """Distinct shown pairs with their mean logged position."""
    shown = (
        log.groupby([C.QID, C.DOCID], sort=False)[C.POSITION]
        .mean()
        .astype(np.float64)
        .rename(LOGGED_POSITION)
        .reset_index()
    )
    return shown


def _texts_collection(texts: _Texts, qrels: pd.DataFrame | None) -> Collection:
    graded = (
        qrels[list(C.QREL_COLUMNS)]
        if qrels is not None
        else pd.DataFrame(
            {
                C.QID: pd.Series(dtype=str),
                C.DOCID: pd.Series(dtype=str),
                C.GRADE: pd.Series(dtype=np.int64),
            }
        )
    )
    return Collection(name=texts.name, docs=texts.docs, queries=texts.queries, qrels=graded)


def _bm25(texts: _Texts, k: int, qrels: pd.DataFrame | None) -> pd.DataFrame:
    collection = _texts_collection(texts, qrels)
    found = bm25_candidates(collection, FirstStageConfig(k=k), stopwords=texts.stopwords)
    return found[[C.QID, C.DOCID, C.BM25, C.BM25_RANK]]


def _import_log_and_texts(config: ImportConfig, record: _Record) -> Dataset:
    texts = _load_texts(config, record)
    qrels: pd.DataFrame | None = None
    qrels_path: Path | None = None
    if config.qrels is not None:
        qrels_path = Path(config.qrels)
        qrels = read_qrels(qrels_path, config.qrels_format)
        record.inputs["qrels"] = {
            "path": config.qrels,
            "format": config.qrels_format,
            "rows": len(qrels),
        }
    elif texts is not None and texts.qrels is not None:
        qrels, qrels_path = texts.qrels, texts.qrels_path
    if qrels is not None and texts is not None:
        assert qrels_path is not None
        qrels = _apply_qrels_policy(qrels, texts, qrels_path, config, record)

    log: pd.DataFrame | None = None
    if config.log is not None:
        log = _read_log(config, record)
        if texts is not None:
            log = _apply_log_policy(log, texts, config, record)

    features: list[str] = []
    if log is not None:
        candidates = _logged_candidates(log)
        features.append(LOGGED_POSITION)
    else:
        candidates = pd.DataFrame({C.QID: pd.Series(dtype=str), C.DOCID: pd.Series(dtype=str)})
    record.candidates["shown_in_log"] = len(candidates)

    if texts is not None and config.bm25_top_k:
        found = _bm25(texts, config.bm25_top_k, qrels)
        before = len(candidates)
        candidates = candidates.merge(found, on=[C.QID, C.DOCID], how="outer")
        # A shown document outside the top K gets its own BM25 score (0 where no query
        # term matches), so the feature ranks every candidate; it has no BM25 rank.
        outside = candidates[C.BM25].isna().to_numpy()
        if outside.any():
            candidates.loc[outside, C.BM25] = bm25_pair_scores(
                _texts_collection(texts, qrels),
                candidates.loc[outside, [C.QID, C.DOCID]],
                FirstStageConfig(k=config.bm25_top_k),
                stopwords=texts.stopwords,
            )
        candidates[C.BM25] = candidates[C.BM25].astype(np.float64)
        candidates[C.BM25_RANK] = candidates[C.BM25_RANK].astype(np.float64)
        record.candidates["added_by_bm25"] = len(candidates) - before
        record.candidates["bm25_top_k"] = config.bm25_top_k
    order = [C.QID] + [c for c in (LOGGED_POSITION, C.BM25_RANK) if c in candidates] + [C.DOCID]
    candidates = candidates.sort_values(order, kind="stable", na_position="last").reset_index(
        drop=True
    )

    if texts is not None:
        text = compute_text_features(
            candidates, texts.queries, texts.docs, stopwords=texts.stopwords
        )
        candidates = pd.concat([candidates, text], axis=1)
        features += [c for c in TEXT_FEATURES if c in candidates.columns]

    has_relevant: pd.Series | None = None
    if qrels is not None:
        grades = qrels.set_index([C.QID, C.DOCID])[C.GRADE]
        index = pd.MultiIndex.from_frame(candidates[[C.QID, C.DOCID]])
        candidates[C.Y_EXPERT] = grades.reindex(index).fillna(0).to_numpy(dtype=np.int64)
        has_relevant = candidates.groupby(C.QID, sort=False)[C.Y_EXPERT].max() > 0
        judged = pd.MultiIndex.from_frame(qrels[[C.QID, C.DOCID]])
        record.unused(
            "qrels_pairs_not_candidates",
            int((~judged.isin(index)).sum()),
            "judged pairs that are no candidate (never shown, not retrieved); kept in qrels",
        )

    if texts is not None:
        qids = texts.queries[C.QID].astype(str)
    else:
        assert log is not None
        qids = pd.Series(sorted(log[C.QID].unique()), dtype=str)
    if qrels is not None:
        record.unused(
            "qrels_queries_not_in_dataset",
            int((~pd.Index(qrels[C.QID].unique()).isin(qids)).sum()),
            "judged queries the dataset does not hold (not in the log, no text); kept in qrels",
        )
    freq = query_frequency(log, qids) if log is not None else pd.Series(dtype=np.int64)
    splits, info = make_splits(qids, freq, has_relevant, buckets=config.buckets, folds=config.folds)
    name = config.name or (Path(config.log).name if config.log else (texts.name if texts else ""))
    dataset = Dataset(
        candidates=candidates,
        splits=splits,
        impressions=log,
        queries=texts.queries if texts is not None else None,
        docs=texts.docs if texts is not None else None,
        qrels=qrels.drop(columns=[LINE], errors="ignore").reset_index(drop=True)
        if qrels is not None
        else None,
        source=record.source(name),
        split_info=info,
        features=tuple(features),
    )
    dataset.validate()
    return dataset


# ----------------------------------------------------------------------------------- LETOR


@dataclass(frozen=True)
class _LetorFile:
    path: Path
    X: np.ndarray
    y: np.ndarray
    qid: np.ndarray  # str, rows of a query contiguous
    docid: np.ndarray  # str
    line: np.ndarray  # 1-based line of each row
    docids_from: str


def _letor_lines(path: Path) -> tuple[list[int], list[str | None], bool]:
    """Per data row: its line and the docid of its comment (or None); whether rows hold ``qid:``.

    Rows are the lines the SVMlight parser reads: neither blank nor comment-only.
    """
    lines: list[int] = []
    docids: list[str | None] = []
    has_qid = False
    last = ""
    for lineno, raw in text_lines(path, strict=False):  # comments may be in any encoding
        last = raw
        data, _, comment = raw.partition("#")
        if not data.strip():
            continue
        lines.append(lineno)
        has_qid = has_qid or " qid:" in f" {data}"
        match = _DOCID_COMMENT.search(comment)
        if match and "\ufffd" in match.group(1):  # the id itself would be silently changed
            raise DataFormatError(
                f"docid {match.group(1)!r} holds bytes that are not UTF-8; save the file as "
                "UTF-8",
                path=path,
                line=lineno,
                column="docid",
            )
        docids.append(match.group(1) if match else None)
    if last and not last.endswith(("\n", "\r")):
        logger.warning(
            "%s: no newline after line %d: if the file was cut there, its last row lost "
            "features (read as 0)", path, len(lines) and lines[-1],
        )  # fmt: skip
    return lines, docids, has_qid


def _read_letor_file(path: Path) -> _LetorFile:
    data = read_svmlight(path)
    lines, comment_ids, has_qid = _letor_lines(path)
    n = data.X.shape[0]
    if len(lines) != n:  # the parser and the line scan disagree: name rows by index only
        lines = list(range(1, n + 1))
        comment_ids = [None] * n
    if has_qid:
        qid = data.qid.astype(np.int64).astype(str)
    else:  # group sizes from a .query file: numbers local to this file
        qid = np.asarray([f"{path.name}:{q}" for q in data.qid], dtype=object)
    # Rows of a query together, in the order queries first appear, rows in file order.
    first = pd.Series(qid).groupby(qid, sort=False).ngroup().to_numpy()
    order = np.argsort(first, kind="stable")
    qid = np.asarray(qid, dtype=object)[order]
    X, y = data.X[order], data.y[order]
    line = np.asarray(lines, dtype=np.int64)[order]
    comment = [comment_ids[i] for i in order]
    within = pd.Series(qid).groupby(qid, sort=False).cumcount().to_numpy()
    synthetic = np.asarray([f"{q}-{i}" for q, i in zip(qid, within, strict=True)], dtype=object)
    docids_from = "synthetic (<qid>-<row in query>)"
    docid = synthetic
    named_rows = np.asarray([c is not None for c in comment], dtype=bool)
    if n and named_rows.all():
        named = np.asarray(comment, dtype=object)
        twice = pd.DataFrame({"q": qid, "d": named}).duplicated().to_numpy()
        if twice.any():
            i = int(np.flatnonzero(twice)[0])
            first_i = int(np.flatnonzero((qid == qid[i]) & (named == named[i]))[0])
            raise DataFormatError(
                f"document {named[i]!r} is listed twice in query {qid[i]!r} (first on line "
                f"{int(line[first_i])}); {int(twice.sum())} repeated pair(s) in all",
                path=path,
                line=int(line[i]),
                column="docid",
            )
        docid, docids_from = named, "comment (# docid = ...)"
    elif named_rows.any():
        # Some lines name their document and some do not: a cut or edited line, never a
        # reason to replace every real id by a made-up one.
        i = int(np.flatnonzero(~named_rows)[0])
        raise DataFormatError(
            f"no '# docid = ...' comment, where {int(named_rows.sum())} of the file's "
            f"{n} rows have one; was the line cut?",
            path=path,
            line=int(line[i]),
            column="docid",
        )
    elif n:
        logger.warning(
            "%s: no row names its document ('# docid = ...'): ids are <qid>-<row in query>, "
            "which no other file (texts, qrels, a log) can join", path,
        )  # fmt: skip
    return _LetorFile(path, X, y, qid, docid, line, docids_from)


def _import_letor(config: ImportConfig, record: _Record) -> Dataset:
    files = [_read_letor_file(Path(p)) for p in config.letor]
    width = max(f.X.shape[1] for f in files)
    owner: dict[str, Path] = {}
    entries: list[dict[str, Any]] = []
    for f in files:
        first_rows = pd.Series(np.arange(len(f.qid))).groupby(f.qid, sort=False).first()
        for q, row in first_rows.items():
            other = owner.get(str(q))
            if other is not None:
                raise DataFormatError(
                    f"query {q!r} is also in {other}; queries of several LETOR files must not "
                    "overlap (import them as separate datasets)",
                    path=f.path,
                    line=int(f.line[int(row)]),
                    column="qid",
                )
            owner[str(q)] = f.path
        entries.append(
            {
                "source_file": str(f.path),
                "rows": len(f.qid),
                "queries": len(first_rows),
                "features": int(f.X.shape[1]),
                "docids": f.docids_from,
            }
        )
    names = [f"f{i}" for i in range(1, width + 1)]
    blocks = []
    for f in files:
        # SVMlight leaves zeros out: a file with fewer columns has zeros beyond its width.
        X = np.zeros((f.X.shape[0], width), dtype=np.float32)
        X[:, : f.X.shape[1]] = f.X
        block = pd.DataFrame(X, columns=names)
        block.insert(0, C.DOCID, f.docid.astype(str))
        block.insert(0, C.QID, f.qid.astype(str))
        block[C.Y_EXPERT] = f.y.astype(np.int64)
        blocks.append(block)
    candidates = pd.concat(blocks, ignore_index=True)
    record.inputs["letor"] = entries
    record.candidates["rows"] = len(candidates)
    qrels = candidates[[C.QID, C.DOCID, C.Y_EXPERT]].rename(columns={C.Y_EXPERT: C.GRADE})
    qids = pd.Series(pd.unique(candidates[C.QID]), dtype=str)
    has_relevant = candidates.groupby(C.QID, sort=False)[C.Y_EXPERT].max() > 0
    splits, info = make_splits(
        qids,
        pd.Series(dtype=np.int64),
        has_relevant,
        buckets=config.buckets,
        folds=config.folds,
    )
    name = config.name or files[0].path.name
    dataset = Dataset(
        candidates=candidates,
        splits=splits,
        qrels=qrels.reset_index(drop=True),
        source=record.source(name),
        split_info=info,
        features=tuple(names),
    )
    dataset.validate()
    return dataset


__all__ = ["LOGGED_POSITION", "PRODUCER", "ImportConfig", "import_dataset"]
