"""The click-feature store a bundle carries: the training log's aggregates, looked up per request.

A served model needs the click features of the (query, document) pairs it
ranks. They come from the impression log the model was trained on, so a
bundle keeps the three aggregate tables (:class:`~hybridrank.features.ClickFeatures`)
and this store answers one query's lookup with array operations only:
pairs sorted by ``(qid, docid)`` and searched with ``searchsorted``,
documents and queries through dictionaries built once at load.

A pair, document or query absent from the log gets 0 impressions and clicks
and NaN rates, exactly as :func:`~hybridrank.features.join_click_features`
fills a batch table.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from hybridrank import columns as C
from hybridrank.errors import DataFormatError, MissingInputError
from hybridrank.features import (
    DOC_FEATURES,
    PAIR_FEATURES,
    QUERY_FEATURES,
    ClickFeatures,
    join_click_features,
)

#: Count features: 0 when the log never showed the pair, document or query.
COUNTS = frozenset(
    {"qd_impressions", "qd_clicks", "doc_impressions", "doc_clicks", "doc_n_queries", "q_sessions"}
)
_TABLES = {"pairs": PAIR_FEATURES, "docs": DOC_FEATURES, "queries": QUERY_FEATURES}


def _missing_row(names: Sequence[str]) -> np.ndarray:
    return np.array([0.0 if n in COUNTS else np.nan for n in names], dtype=np.float64)


class ClickFeatureStore:
    """Click features of one impression log, for batch joins and per-query lookups.

    Args:
        features: The aggregates of :func:`~hybridrank.features.compute_click_features`
            (pandas frames).
    """

    def __init__(self, features: ClickFeatures) -> None:
        self.features = features
        pairs = features.pairs.sort_values([C.QID, C.DOCID], kind="stable")
        qids = pairs[C.QID].to_numpy(dtype=object)
        starts = np.flatnonzero(np.r_[True, qids[1:] != qids[:-1]]) if len(qids) else np.zeros(0)
        ends = np.r_[starts[1:], len(qids)].astype(np.int64)
        self._pair_span = {
            str(qids[s]): (int(s), int(e)) for s, e in zip(starts, ends, strict=True)
        }
        self._pair_docs = pairs[C.DOCID].to_numpy(dtype=str)
        self._pairs = pairs[list(PAIR_FEATURES)].to_numpy(dtype=np.float64)
        self._doc_row = {d: i for i, d in enumerate(features.docs[C.DOCID].astype(str))}
        self._docs = features.docs[list(DOC_FEATURES)].to_numpy(dtype=np.float64)
        self._query_index = pd.Index(features.queries[C.QID].astype(str))
        self._query_row = {q: i for i, q in enumerate(self._query_index)}
        self._queries = features.queries[list(QUERY_FEATURES)].to_numpy(dtype=np.float64)
        self._miss = {k: _missing_row(v) for k, v in _TABLES.items()}

    # ------------------------------------------------------------------ lookups

    def frequency(self, qid: str) -> float:
        """Sessions of ``qid`` in the log (0 for a query never seen)."""
        row = self._query_row.get(qid)
        return 0.0 if row is None else float(self._queries[row, 0])

    def frequencies(self, qids: np.ndarray) -> np.ndarray:
        """Sessions of each query id in ``qids`` (0 for a query never seen), one hash pass."""
        rows = self._query_index.get_indexer(np.asarray(qids).astype(str))
        return np.where(rows >= 0, self._queries[np.maximum(rows, 0), 0], 0.0)

    def lookup(self, qid: str, docids: Sequence[str] | np.ndarray) -> dict[str, np.ndarray]:
        """Every click feature for one query's documents: ``{name: array of len(docids)}``."""
        d = np.asarray(docids, dtype=str)
        n = d.shape[0]
        pair = np.tile(self._miss["pairs"], (n, 1))
        span = self._pair_span.get(qid)
        if span is not None and n:
            s, e = span
            known = self._pair_docs[s:e]
            pos = np.searchsorted(known, d)
            pos_c = np.minimum(pos, known.shape[0] - 1)
            hit = known[pos_c] == d
            pair[hit] = self._pairs[s + pos_c[hit]]
        get = self._doc_row.get
        rows = np.array([get(x, -1) for x in d.tolist()], dtype=np.int64)
        doc = np.where((rows >= 0)[:, None], self._docs[np.maximum(rows, 0)], self._miss["docs"])
        qrow = self._query_row.get(qid)
        query = self._miss["queries"] if qrow is None else self._queries[qrow]
        out = {name: pair[:, j] for j, name in enumerate(PAIR_FEATURES)}
        out.update({name: doc[:, j] for j, name in enumerate(DOC_FEATURES)})
        out.update({name: np.full(n, query[j]) for j, name in enumerate(QUERY_FEATURES)})
        return out

    def join(self, candidates: pd.DataFrame) -> pd.DataFrame:
        """A candidate table with every click feature joined on (batch form of :meth:`lookup`)."""
        return join_click_features(candidates, self.features)

    # -------------------------------------------------------------- persistence

    def save(self, directory: str | Path) -> Path:
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        for name in _TABLES:
            getattr(self.features, name).to_parquet(out / f"{name}.parquet", index=False)
        return out

    @classmethod
    def load(cls, directory: str | Path) -> ClickFeatureStore:
        d = Path(directory)
        frames = {}
        for name, cols in _TABLES.items():
            path = d / f"{name}.parquet"
            if not path.exists():
                raise MissingInputError(f"{path}: missing; the bundle has no click-feature store")
            try:
                frame = pd.read_parquet(path)
            except Exception as exc:  # pyarrow: ArrowInvalid, OSError, ... on a damaged file
                raise DataFormatError(f"unreadable parquet ({exc})", path=path) from None
            key = C.QID if name == "queries" else C.DOCID
            need = [key, *cols] + ([C.QID] if name == "pairs" else [])
            missing = [c for c in need if c not in frame.columns]
            if missing:
                raise DataFormatError(f"columns {missing} missing", path=path)
            frames[name] = frame
        return cls(ClickFeatures(**frames))
