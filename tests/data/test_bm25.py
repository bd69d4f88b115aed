from __future__ import annotations

import itertools

import numpy as np
import pytest

from hybridrank import columns as C
from hybridrank.data import FirstStageConfig, bm25_candidates
from hybridrank.errors import ConfigError
from hybridrank.evaluate import ndcg_at_k, offsets_from_qid


def test_candidates_shape_and_order(tiny_collection) -> None:
    cand = bm25_candidates(tiny_collection, FirstStageConfig(k=20))
    offsets = offsets_from_qid(cand[C.QID].to_numpy())
    assert np.diff(offsets).max() <= 20
    assert (cand[C.BM25] > 0).all()
    for start, stop in itertools.pairwise(offsets):
        ranks = cand[C.BM25_RANK].to_numpy()[start:stop]
        scores = cand[C.BM25].to_numpy()[start:stop]
        assert ranks.tolist() == list(range(1, stop - start + 1))
        assert np.all(np.diff(scores) <= 1e-6)
    assert not cand.duplicated([C.QID, C.DOCID]).any()


def test_expert_grades_joined(tiny_collection) -> None:
    cand = bm25_candidates(tiny_collection, FirstStageConfig(k=50))
    grades = tiny_collection.qrels.set_index([C.QID, C.DOCID])[C.GRADE]
    for row in cand.sample(50, random_state=0).itertuples():
        assert row.y_expert == grades.get((row.qid, row.docid), 0)
    # Topical documents rank high: BM25 is a reasonable first stage here.
    v = ndcg_at_k(cand[C.BM25], cand[C.Y_EXPERT], qid=cand[C.QID], k=10)
    assert np.nanmean(v) > 0.5


def test_stopwords_and_unknown_terms(tiny_collection) -> None:
    from dataclasses import replace

    queries = tiny_collection.queries.copy()
    queries.loc[0, C.TEXT] = "zzzunknown"
    queries.loc[1, C.TEXT] = queries.loc[1, C.TEXT] + " the"
    col = replace(tiny_collection, queries=queries)
    cand = bm25_candidates(col, stopwords=frozenset({"the"}))
    assert queries.loc[0, C.QID] not in set(cand[C.QID])
    assert queries.loc[1, C.QID] in set(cand[C.QID])


def test_config_validation() -> None:
    with pytest.raises(ConfigError):
        FirstStageConfig(k=0)
    with pytest.raises(ConfigError, match="unknown keys"):
        FirstStageConfig.from_dict({"kk": 3})
    with pytest.raises(ConfigError, match="stemmer"):
        from hybridrank.data._bm25 import _stemmer

        _stemmer("klingon")
