"""Collections, click logs, the BM25 first stage, the click-world simulator and query splits."""

from __future__ import annotations

from hybridrank.data._bm25 import FirstStageConfig, bm25_candidates, bm25_pair_scores
from hybridrank.data._clicklogs import (
    ctr_by_rank,
    examination_from_ctr,
    read_clara2,
    read_yandex_sample,
)
from hybridrank.data._clickworld import (
    CLICK_SIMULATORS,
    DEFAULT_EXAMINATION,
    CascadeSimulator,
    ClickSimulator,
    PositionBasedSimulator,
    SimulationConfig,
    simulate_click_log,
    zipf_popularity,
)
from hybridrank.data._collection import Collection
from hybridrank.data._dataset import (
    MANIFEST,
    SCHEMA_VERSION,
    TABLES,
    TUNING,
    Dataset,
    SplitInfo,
    TableSpec,
)
from hybridrank.data._letor import LetorData, read_svmlight
from hybridrank.data._loaders import (
    COLLECTION_DOC_FILES,
    collection_qrels_file,
    load_nfcorpus,
    load_trec,
    read_stopwords,
)
from hybridrank.data._logreaders import (
    LOG_READERS,
    ReadReport,
    read_baidu_ultr,
    read_click_log,
    read_impression_log,
    read_tiangong_st,
)
from hybridrank.data._sources import (
    NFCORPUS_SHA256,
    NFCORPUS_URL,
    default_cache_dir,
    fetch_nfcorpus,
    resolve_nfcorpus_dir,
)
from hybridrank.data._splits import choose_tuning_queries, fold_of_rows, query_folds
from hybridrank.data._tables import (
    check_unique_pairs,
    data_row_lines,
    file_lines,
    id_text,
    ids_as_text,
    read_table,
)
from hybridrank.data._text import text_lines

__all__ = [
    "CLICK_SIMULATORS",
    "COLLECTION_DOC_FILES",
    "DEFAULT_EXAMINATION",
    "LOG_READERS",
    "MANIFEST",
    "NFCORPUS_SHA256",
    "NFCORPUS_URL",
    "SCHEMA_VERSION",
    "TABLES",
    "TUNING",
    "CascadeSimulator",
    "ClickSimulator",
    "Collection",
    "Dataset",
    "FirstStageConfig",
    "LetorData",
    "PositionBasedSimulator",
    "ReadReport",
    "SimulationConfig",
    "SplitInfo",
    "TableSpec",
    "bm25_candidates",
    "bm25_pair_scores",
    "check_unique_pairs",
    "choose_tuning_queries",
    "collection_qrels_file",
    "ctr_by_rank",
    "data_row_lines",
    "default_cache_dir",
    "examination_from_ctr",
    "fetch_nfcorpus",
    "file_lines",
    "fold_of_rows",
    "id_text",
    "ids_as_text",
    "load_nfcorpus",
    "load_trec",
    "query_folds",
    "read_baidu_ultr",
    "read_clara2",
    "read_click_log",
    "read_impression_log",
    "read_stopwords",
    "read_svmlight",
    "read_table",
    "read_tiangong_st",
    "read_yandex_sample",
    "resolve_nfcorpus_dir",
    "simulate_click_log",
    "text_lines",
    "zipf_popularity",
]

# Readers of the plain-text collection formats and of qrels (used by `dataset import`).
from hybridrank.data._formats import (
    LINE,
    document_text,
    join_titles,
    read_docs_jsonl,
    read_id_text_tsv,
    read_queries,
    read_queries_jsonl,
    read_trec_qrels,
    read_trec_topics,
)
from hybridrank.data._relevance import (
    QRELS_READERS,
    read_clara2_relevance,
    read_qrels,
)

__all__ += [
    "LINE",
    "QRELS_READERS",
    "document_text",
    "join_titles",
    "read_clara2_relevance",
    "read_docs_jsonl",
    "read_id_text_tsv",
    "read_qrels",
    "read_queries",
    "read_queries_jsonl",
    "read_trec_qrels",
    "read_trec_topics",
]
