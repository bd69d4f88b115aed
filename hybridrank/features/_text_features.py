"""Text features of query-document pairs: lengths, term overlap, TF-IDF cosine."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from hybridrank import columns as C
from hybridrank.errors import MissingColumnError

TEXT_FEATURES: tuple[str, ...] = (
    C.BM25,
    "query_len",
    "doc_len",
    "term_overlap",
    "tfidf_cosine",
)

_TOKEN = r"(?u)\b\w+\b"


def compute_text_features(
    candidates: pd.DataFrame,
    queries: pd.DataFrame,
    docs: pd.DataFrame,
    *,
    stopwords: frozenset[str] | None = None,
) -> pd.DataFrame:
    """Text features for every candidate row, vectorised with sparse matrices.

    Args:
        candidates: Candidate table with ``qid, docid`` (and ``bm25`` from the
            first stage, kept as a feature).
        queries: ``qid, text``.
        docs: ``docid, text``.
        stopwords: Words left out of lengths, overlap and TF-IDF.

    Returns:
        DataFrame aligned with ``candidates`` holding ``query_len`` and
        ``doc_len`` (tokens), ``term_overlap`` (share of the query's distinct
        terms found in the document) and ``tfidf_cosine`` (TF-IDF fitted on the
        documents).
    """
    # Stop words go through the same tokeniser as the text ("you'll" -> "you", "ll").
    stop = (
        sorted({t for w in stopwords for t in re.findall(r"\w+", w.lower())}) if stopwords else None
    )
    qpos = pd.Index(queries[C.QID]).get_indexer(candidates[C.QID])
    dpos = pd.Index(docs[C.DOCID]).get_indexer(candidates[C.DOCID])
    if (qpos < 0).any() or (dpos < 0).any():
        bad = candidates.iloc[int(np.flatnonzero((qpos < 0) | (dpos < 0))[0])]
        raise MissingColumnError(
            f"candidate ({bad[C.QID]!r}, {bad[C.DOCID]!r}) names an unknown query or document"
        )

    # scikit-learn takes a second to import: on first use, not with every CLI command.
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

    tfidf = TfidfVectorizer(token_pattern=_TOKEN, stop_words=stop, sublinear_tf=True)
    dmat = tfidf.fit_transform(docs[C.TEXT])
    qmat = tfidf.transform(queries[C.TEXT])
    cosine = np.asarray(qmat[qpos].multiply(dmat[dpos]).sum(axis=1)).ravel()

    counter = CountVectorizer(token_pattern=_TOKEN, stop_words=stop, binary=False)
    counter.fit(pd.concat([docs[C.TEXT], queries[C.TEXT]], ignore_index=True))
    dcount = counter.transform(docs[C.TEXT])
    qbin = counter.transform(queries[C.TEXT])
    qbin.data[:] = 1
    dbin = dcount.copy()
    dbin.data[:] = 1
    q_terms = np.asarray(qbin.sum(axis=1)).ravel()
    q_len = np.asarray(counter.transform(queries[C.TEXT]).sum(axis=1)).ravel()
    d_len = np.asarray(dcount.sum(axis=1)).ravel()
    shared = np.asarray(qbin[qpos].multiply(dbin[dpos]).sum(axis=1)).ravel()
    with np.errstate(invalid="ignore", divide="ignore"):
        overlap = np.where(q_terms[qpos] > 0, shared / np.maximum(q_terms[qpos], 1), 0.0)
    out = pd.DataFrame(
        {
            "query_len": q_len[qpos].astype(np.float64),
            "doc_len": d_len[dpos].astype(np.float64),
            "term_overlap": overlap,
            "tfidf_cosine": cosine,
        },
        index=candidates.index,
    )
    return out
