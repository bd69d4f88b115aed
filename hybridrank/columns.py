"""Column names of every table hybridrank reads or writes: the one schema module.

Tables (pandas DataFrames, stored as parquet):

* Collection: ``docs(docid, text[, title])``,
  ``queries(qid, text[, description, narrative])``, ``qrels(qid, docid, grade)``.
  A query's optional description and narrative (TREC topics, NFCorpus
  ``vid-desc``) say what the searcher meant; LLM judges may read them.
* Impression log, one row per shown result:
  ``session_id, ts, qid, docid, position (1-based), click (0/1), dwell_s``.
* Candidate table, one row per (qid, docid) to rank, rows of a query
  contiguous and sorted by qid: feature columns, the labels ``y_click``,
  ``y_llm``, ``y_expert`` (qrels, evaluation only), ``freq``, ``bucket`` and a
  score column per model.
"""

from __future__ import annotations

from typing import Final

QID: Final = "qid"
DOCID: Final = "docid"
TEXT: Final = "text"
TITLE: Final = "title"
DESCRIPTION: Final = "description"
NARRATIVE: Final = "narrative"
GRADE: Final = "grade"

SESSION_ID: Final = "session_id"
TS: Final = "ts"
POSITION: Final = "position"
CLICK: Final = "click"
DWELL_S: Final = "dwell_s"

Y_CLICK: Final = "y_click"
Y_LLM: Final = "y_llm"
Y_EXPERT: Final = "y_expert"
FREQ: Final = "freq"
#: The mean position a log showed a pair at: a feature of datasets imported from a log.
LOGGED_POSITION: Final = "logged_position_mean"
BUCKET: Final = "bucket"
FOLD: Final = "fold"

BM25: Final = "bm25"
BM25_RANK: Final = "bm25_rank"
#: The LLM judge's raw score of a pair (the ``semantic`` feature).
SEMANTIC: Final = "semantic_similarity"
#: Where a model feature that no candidate table holds comes from, for error messages.
FEATURE_ORIGINS: Final = {
    SEMANTIC: "semantic_similarity is the judge's raw score of the pair (llm_score in a "
    "dataset's llm_labels.parquet, written by `hybridrank annotate`): score new pairs with the "
    "same judge and send it as this column",
}

DOC_COLUMNS: Final = (DOCID, TEXT)
QUERY_COLUMNS: Final = (QID, TEXT)
#: Optional text columns of the queries table (missing where a query has none).
QUERY_CONTEXT_COLUMNS: Final = (DESCRIPTION, NARRATIVE)
QREL_COLUMNS: Final = (QID, DOCID, GRADE)
IMPRESSION_COLUMNS: Final = (SESSION_ID, TS, QID, DOCID, POSITION, CLICK, DWELL_S)
LABEL_COLUMNS: Final = (Y_CLICK, Y_LLM, Y_EXPERT)

__all__ = [
    "BM25",
    "BM25_RANK",
    "BUCKET",
    "CLICK",
    "DESCRIPTION",
    "DOCID",
    "DOC_COLUMNS",
    "DWELL_S",
    "FOLD",
    "FREQ",
    "GRADE",
    "IMPRESSION_COLUMNS",
    "LABEL_COLUMNS",
    "NARRATIVE",
    "POSITION",
    "QID",
    "QREL_COLUMNS",
    "QUERY_COLUMNS",
    "QUERY_CONTEXT_COLUMNS",
    "SESSION_ID",
    "TEXT",
    "TITLE",
    "TS",
    "Y_CLICK",
    "Y_EXPERT",
    "Y_LLM",
]
