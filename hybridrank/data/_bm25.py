"""First stage: BM25 top-K candidates per query with ``bm25s``."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from hybridrank import columns as C
from hybridrank._config import config_from_dict, config_to_dict
from hybridrank.data._collection import Collection
from hybridrank.errors import ConfigError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FirstStageConfig:
    """BM25 first stage.

    Attributes:
        k: Candidates kept per query (top-K by BM25).
        k1: BM25 term-frequency saturation.
        b: BM25 length normalisation.
        method: BM25 variant of ``bm25s`` (``lucene``, ``robertson``, ``atire``,
            ``bm25l``, ``bm25+``).
        token_pattern: Regex of one token. The default takes runs of word
            characters, which matches collections shipped lower-cased with
            punctuation stripped (NFCorpus) and strips it from raw queries.
        stemmer: Snowball stemmer language applied to documents and queries
            alike (PyStemmer), or None for none. On NFCorpus titles stemming
            finds candidates for 612 instead of 597 of the 650 queries.
    """

    k: int = 50
    k1: float = 1.2
    b: float = 0.75
    method: str = "lucene"
    token_pattern: str = r"(?u)\b\w+\b"
    stemmer: str | None = "english"

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ConfigError(f"first_stage.k must be >= 1, got {self.k}")
        if self.k1 < 0 or not 0 <= self.b <= 1:
            raise ConfigError(f"first_stage: need k1 >= 0 and 0 <= b <= 1, got {self.k1}, {self.b}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> FirstStageConfig:
        return config_from_dict(cls, values, "first_stage")

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)


def _stemmer(language: str | None) -> Any:
    """A PyStemmer object (bm25s calls its batch ``stemWords``), or None."""
    if language is None:
        return None
    import Stemmer

    try:
        stem = Stemmer.Stemmer(language)
    except KeyError:
        raise ConfigError(
            f"first_stage.stemmer: no Snowball stemmer for {language!r}; "
            f"choose from {Stemmer.algorithms()} or null"
        ) from None
    return stem


def _bm25_index(
    collection: Collection, config: FirstStageConfig, stopwords: frozenset[str] | None
) -> tuple[Any, list[list[str]]]:
    """The collection's BM25 index and each query's terms that the corpus holds."""
    words = sorted(stopwords) if stopwords else []
    stemmer = _stemmer(config.stemmer)
    import bm25s  # with numba, half a second to import: on first use

    # bm25s sets its logger to DEBUG when imported; it follows ours (the CLI's -v) instead.
    logging.getLogger("bm25s").setLevel(logging.NOTSET)

    doc_tokens = bm25s.tokenize(
        collection.docs[C.TEXT].tolist(),
        token_pattern=config.token_pattern,
        stopwords=words,
        stemmer=stemmer,
        show_progress=False,
    )
    retriever = bm25s.BM25(k1=config.k1, b=config.b, method=config.method)
    retriever.index(doc_tokens, show_progress=False)
    query_tokens = bm25s.tokenize(
        collection.queries[C.TEXT].tolist(),
        token_pattern=config.token_pattern,
        stopwords=words,
        stemmer=stemmer,
        show_progress=False,
    )
    # bm25s treats a query token unseen in the corpus as an error, so map the
    # query vocabulary onto the corpus vocabulary and drop unknown terms.
    corpus_vocab: dict[str, int] = doc_tokens.vocab
    inverse = {i: t for t, i in query_tokens.vocab.items()}
    query_lists = [
        [inverse[i] for i in ids if inverse[i] in corpus_vocab] for ids in query_tokens.ids
    ]
    return retriever, query_lists


def bm25_pair_scores(
    collection: Collection,
    pairs: pd.DataFrame,
    config: FirstStageConfig | None = None,
    *,
    stopwords: frozenset[str] | None = None,
) -> np.ndarray:
    """BM25 score of each (qid, docid) row of ``pairs``, as :func:`bm25_candidates` scores.

    For candidates that did not come from BM25 (the documents a click log
    showed): the same index, every pair scored, not only each query's top K.
    A pair whose query or document the collection lacks, or that shares no
    term with the query, scores 0.
    """
    config = config or FirstStageConfig()
    out = np.zeros(len(pairs), dtype=np.float64)
    if pairs.empty:
        return out
    retriever, query_lists = _bm25_index(collection, config, stopwords)
    q_pos = pd.Index(collection.queries[C.QID].astype(str)).get_indexer(
        pd.Index(pairs[C.QID].astype(str))
    )
    d_pos = pd.Index(collection.docs[C.DOCID].astype(str)).get_indexer(
        pd.Index(pairs[C.DOCID].astype(str))
    )
    for q in np.unique(q_pos[(q_pos >= 0) & (d_pos >= 0)]):
        if not query_lists[q]:
            continue
        rows = np.flatnonzero((q_pos == q) & (d_pos >= 0))
        out[rows] = retriever.get_scores(query_lists[q])[d_pos[rows]]
    return out


def bm25_candidates(
    collection: Collection,
    config: FirstStageConfig | None = None,
    *,
    stopwords: frozenset[str] | None = None,
) -> pd.DataFrame:
    """Retrieve the BM25 top-K documents for every query of the collection.

    Documents with a zero score (no query term matched) are not candidates, so
    a query may get fewer than K. The expert grade of each candidate is joined
    as ``y_expert`` (0 where unjudged).

    Returns:
        Candidate table ``qid, docid, bm25, bm25_rank, y_expert`` sorted by qid
        then by rank; ``bm25_rank`` is 1-based.
    """
    config = config or FirstStageConfig()
    retriever, query_lists = _bm25_index(collection, config, stopwords)
    empty = [i for i, q in enumerate(query_lists) if not q]
    k = min(config.k, collection.n_docs)
    nonempty = [i for i, q in enumerate(query_lists) if q]
    docs_idx = np.zeros((len(query_lists), k), dtype=np.int64)
    scores = np.zeros((len(query_lists), k), dtype=np.float32)
    if nonempty:
        found, found_scores = retriever.retrieve(
            [query_lists[i] for i in nonempty], k=k, show_progress=False, n_threads=0
        )
        docs_idx[nonempty] = found
        scores[nonempty] = found_scores
    if empty:
        logger.warning("%d queries share no term with the corpus and get no candidates", len(empty))

    qids = collection.queries[C.QID].to_numpy()
    docids = collection.docs[C.DOCID].to_numpy()
    keep = scores > 0
    n_q, _ = scores.shape
    table = pd.DataFrame(
        {
            C.QID: np.repeat(qids, k)[keep.ravel()],
            C.DOCID: docids[docs_idx.ravel()][keep.ravel()],
            C.BM25: scores.ravel()[keep.ravel()].astype("float64"),
            C.BM25_RANK: np.tile(np.arange(1, k + 1), n_q)[keep.ravel()].astype("int32"),
        }
    )
    short = int((keep.sum(axis=1) < k).sum())
    if short:
        logger.info("%d queries have fewer than %d matching documents", short, k)
    grades = collection.qrels.set_index([C.QID, C.DOCID])[C.GRADE]
    index = pd.MultiIndex.from_arrays([table[C.QID], table[C.DOCID]])
    table[C.Y_EXPERT] = grades.reindex(index).fillna(0).astype("int64").to_numpy()
    order = np.lexsort((table[C.BM25_RANK].to_numpy(), table[C.QID].to_numpy()))
    return table.iloc[order].reset_index(drop=True)
