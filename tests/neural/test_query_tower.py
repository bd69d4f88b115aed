"""The query tower: only the query encoder trains; documents stay the start model's."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from hybridrank.errors import ConfigError, DataFormatError, MissingInputError
from hybridrank.neural import NeuralConfig, QueryTowerRanker, _query_tower
from hybridrank.neural._query_tower import _segment_log_softmax, in_batch_negatives, query_chunks

from .conftest import fast, record_encodes


def _listwise(tiny_bert: str, **overrides: object) -> dict[str, object]:
    params: dict[str, object] = {"loss": "listwise", "validation_fraction": 0.0, "epochs": 2}
    return fast(tiny_bert, **{**params, **overrides})


def test_documents_stay_the_start_models(tiny_bert, pairs_data) -> None:
    pairs, y, qid = pairs_data
    start = QueryTowerRanker.pretrained(**_listwise(tiny_bert))
    ranker = QueryTowerRanker(**_listwise(tiny_bert)).fit(pairs, y, qid=qid)
    docs = list(dict.fromkeys(pairs["document"]))
    np.testing.assert_allclose(
        ranker.encode_documents(docs), start.encode_documents(docs), rtol=1e-5, atol=1e-6
    )
    queries = list(dict.fromkeys(pairs["query"]))
    moved = np.abs(ranker.encode_queries(queries) - start.encode_queries(queries)).max()
    assert moved > 1e-4  # the query encoder trained
    assert ranker.loss_history_[-1][1] < ranker.loss_history_[0][1]  # the loss fell


def test_share_documents_encodes_each_document_once(tiny_bert, pairs_data, monkeypatch) -> None:
    pairs, y, qid = pairs_data
    start = QueryTowerRanker.pretrained(**_listwise(tiny_bert))
    start.predict(pairs)  # every document now in the start model's cache
    encoded = record_encodes(start.model_, monkeypatch)
    a = QueryTowerRanker(**_listwise(tiny_bert)).share_documents(start).fit(pairs, y, qid=qid)
    b = QueryTowerRanker(**_listwise(tiny_bert)).fit(pairs, y, qid=qid)
    np.testing.assert_allclose(a.predict(pairs), b.predict(pairs), rtol=1e-5, atol=1e-6)
    assert not set(encoded) & set(pairs["document"])  # no document encoded again
    with pytest.raises(ConfigError, match="same start model"):
        QueryTowerRanker(**_listwise(tiny_bert, max_seq_length=16)).share_documents(start)
    # Another inference backend encodes other vectors: not shared either.
    with pytest.raises(ConfigError, match=r"\(onnx-int8\) vs"):
        QueryTowerRanker(**_listwise(tiny_bert, backend="onnx-int8")).share_documents(start)


def test_click_labels_change_the_model_by_their_share(tiny_bert, pairs_data) -> None:
    pairs, y, qid = pairs_data
    # Clicks that contradict the judge: the off-topic documents were clicked.
    y_click = np.where(y > 0, 0.0, 3.0)
    kw = _listwise(tiny_bert)
    plain = QueryTowerRanker(**kw).fit(pairs, y, qid=qid).predict(pairs)
    none = (
        QueryTowerRanker(**kw)
        .fit(pairs, y, qid=qid, y_click=y_click, click_share=np.zeros(len(y)))
        .predict(pairs)
    )
    np.testing.assert_allclose(none, plain, rtol=1e-5, atol=1e-6)  # share 0: the judge alone
    clicked = (
        QueryTowerRanker(**kw)
        .fit(pairs, y, qid=qid, y_click=y_click, click_share=np.ones(len(y)))
        .predict(pairs)
    )
    assert np.abs(clicked - plain).max() > 1e-4
    # Unknown click labels (never shown) leave a query on the judge's loss.
    unknown = (
        QueryTowerRanker(**kw)
        .fit(pairs, y, qid=qid, y_click=np.full(len(y), np.nan), click_share=np.ones(len(y)))
        .predict(pairs)
    )
    np.testing.assert_allclose(unknown, plain, rtol=1e-5, atol=1e-6)


def test_click_inputs_are_checked(tiny_bert, pairs_data) -> None:
    pairs, y, qid = pairs_data
    ranker = QueryTowerRanker(**_listwise(tiny_bert))
    share = np.full(len(y), 0.5)
    with pytest.raises(DataFormatError, match="give both"):
        ranker.fit(pairs, y, qid=qid, y_click=y)
    with pytest.raises(DataFormatError, match=r"\[0, 1\]"):
        ranker.fit(pairs, y, qid=qid, y_click=y, click_share=share * 3)
    varying = share.copy()
    varying[1] = 0.1
    with pytest.raises(DataFormatError, match="one value per query"):
        ranker.fit(pairs, y, qid=qid, y_click=y, click_share=varying)
    with pytest.raises(ConfigError, match="listwise"):
        QueryTowerRanker(**fast(tiny_bert)).fit(pairs, y, qid=qid, y_click=y, click_share=share)


def test_in_batch_negatives_change_the_model_and_zero_changes_nothing(
    tiny_bert, pairs_data
) -> None:
    pairs, y, qid = pairs_data
    kw = _listwise(tiny_bert)
    plain = QueryTowerRanker(**kw).fit(pairs, y, qid=qid).predict(pairs)
    zero = QueryTowerRanker(**kw, negatives=0).fit(pairs, y, qid=qid).predict(pairs)
    np.testing.assert_array_equal(zero, plain)  # off: the same draws, the same model
    with_negatives = QueryTowerRanker(**kw, negatives=2).fit(pairs, y, qid=qid).predict(pairs)
    assert np.abs(with_negatives - plain).max() > 1e-4
    assert QueryTowerRanker(**kw, negatives=2).get_config().negatives == 2


def test_in_batch_negatives_are_the_other_queries_tops_never_the_querys_own() -> None:
    doc_ids = np.array([0, 1, 2, 3, 1, 4, 5, 4])  # rows 0-3: query A; rows 4-7: query B
    tops = [np.array([0, 1]), np.array([4, 5]), np.array([7, 6])]  # queries A, B, C
    own_a = np.arange(0, 4)
    # A: B's row 4 is document 1, which A has: left out; C's row 7 repeats B's document 4.
    np.testing.assert_array_equal(in_batch_negatives(0, tops, own_a, doc_ids), [5, 6])
    np.testing.assert_array_equal(
        in_batch_negatives(1, tops, np.arange(4, 8), doc_ids), [0]
    )  # B has documents 1, 4, 5: A's row 1 (document 1) and all of C's are its own
    assert in_batch_negatives(0, [tops[0]], own_a, doc_ids).size == 0  # a batch of one


def _top_margin(scores: np.ndarray, y: np.ndarray, qid: np.ndarray) -> float:
    """Mean over queries of the teacher's best document's score minus the others' mean."""
    margins = []
    for q in np.unique(qid):
        s, g = scores[qid == q], y[qid == q]
        best = int(np.argmax(g))
        margins.append(s[best] - np.delete(s, best).mean())
    return float(np.mean(margins))


def test_document_offsets_move_the_training_documents_towards_the_teacher(
    tiny_bert, pairs_data, tmp_path
) -> None:
    pairs, y, qid = pairs_data
    kw = _listwise(tiny_bert)
    plain = QueryTowerRanker(**kw).fit(pairs, y, qid=qid)
    moved = QueryTowerRanker(**kw, document_steps=60, document_learning_rate=1e-2).fit(
        pairs, y, qid=qid
    )
    assert plain.document_offsets_ == {}
    queries = list(dict.fromkeys(pairs["query"]))
    np.testing.assert_allclose(  # the first stage is the same: the same query encoder
        moved.encode_queries(queries), plain.encode_queries(queries), rtol=1e-5, atol=1e-6
    )
    docs = list(dict.fromkeys(pairs["document"]))
    assert len(moved.document_offsets_) == len(docs)
    before, after = plain.predict(pairs), moved.predict(pairs)
    assert _top_margin(after, y, qid) > _top_margin(before, y, qid) + 1e-3
    unseen = ["a note on the weather in spring"]  # in no training query: its start vector
    np.testing.assert_allclose(
        moved.encode_documents(unseen), plain.encode_documents(unseen), rtol=1e-5, atol=1e-6
    )
    vectors = moved.encode_documents(docs)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    # Every scoring path sees the offsets: one query's rank() and the uncached scores.
    first = qid == qid[0]
    own = pairs.loc[first, "document"].tolist()
    np.testing.assert_allclose(
        moved.rank(pairs.loc[first, "query"].iloc[0], own), after[first], rtol=1e-5, atol=1e-6
    )
    uncached = moved._score(
        pairs["query"].tolist(), pairs["document"].tolist(), moved.config_, cached=False,
        show=False,
    )  # fmt: skip
    np.testing.assert_allclose(uncached, after, rtol=1e-5, atol=1e-6)
    # They are saved with the model; a model saved without them has none.
    moved.save(tmp_path / "moved")
    loaded = QueryTowerRanker.load(tmp_path / "moved")
    np.testing.assert_allclose(loaded.predict(pairs), after, rtol=1e-5, atol=1e-6)
    plain.save(tmp_path / "plain")
    assert not (tmp_path / "plain" / "document_offsets.npz").exists()
    assert QueryTowerRanker.load(tmp_path / "plain").document_offsets_ == {}
    saved = tmp_path / "moved" / "document_offsets.npz"
    with np.load(saved) as f:
        keys, offsets = f["keys"], f["offsets"]
    np.savez(saved, keys=keys, offsets=offsets[:, :-1])  # one dimension short
    with pytest.raises(DataFormatError, match="dimensions"):
        QueryTowerRanker.load(tmp_path / "moved")
    saved.unlink()
    with pytest.raises(MissingInputError, match="document offsets"):
        QueryTowerRanker.load(tmp_path / "moved")


def test_segment_log_softmax_is_torchs_within_each_query() -> None:
    import torch

    x = torch.tensor([0.5, -1.0, 2.0, 3.0, -torch.inf, 1.0, -torch.inf, -torch.inf])
    segment = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2])
    out = _segment_log_softmax(x, segment, 3)
    torch.testing.assert_close(out[:3], torch.log_softmax(x[:3], dim=0))
    torch.testing.assert_close(out[3:6], torch.log_softmax(x[3:6], dim=0))
    assert out[4] == -torch.inf  # a -inf entry: probability 0
    assert torch.isnan(out[6:]).all()  # a list with no finite entry has no distribution


@pytest.mark.parametrize("max_rows", [1, 3, 5, 12, 100])
def test_query_chunks_cover_every_query_once_within_the_row_limit(max_rows: int) -> None:
    sizes = np.array([4, 1, 5, 2, 2, 7, 1])
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    ranges = query_chunks(offsets, max_rows)
    assert ranges[0][0] == 0 and ranges[-1][1] == len(sizes)
    assert all(b == c for (_, b), (c, _) in itertools.pairwise(ranges))
    for a, b in ranges:
        assert b > a
        assert offsets[b] - offsets[a] <= max_rows or b == a + 1  # a long query alone
    if max_rows >= sizes.sum():
        assert ranges == [(0, len(sizes))]
    assert query_chunks(np.array([0]), max_rows) == []
    with pytest.raises(ValueError, match="max_rows"):
        query_chunks(offsets, 0)


@pytest.mark.parametrize("rows", [3, 13])  # each query alone; two queries a chunk
def test_document_offsets_are_the_same_in_chunks_as_in_one_batch(
    tiny_bert, pairs_data, monkeypatch, rows: int
) -> None:
    pairs, y, qid = pairs_data
    kw = _listwise(tiny_bert, epochs=0, document_steps=20, document_learning_rate=1e-2)
    whole = QueryTowerRanker(**kw).fit(pairs, y, qid=qid)
    monkeypatch.setattr(_query_tower, "OFFSET_CHUNK_ROWS", rows)
    chunked = QueryTowerRanker(**kw).fit(pairs, y, qid=qid)
    assert whole.document_offsets_.keys() == chunked.document_offsets_.keys()
    for key, value in whole.document_offsets_.items():
        np.testing.assert_allclose(chunked.document_offsets_[key], value, rtol=1e-4, atol=1e-6)
    assert max(np.abs(v).max() for v in whole.document_offsets_.values()) > 1e-3  # they moved


def test_document_offsets_are_the_rankers_own_over_a_shared_cache(tiny_bert, pairs_data) -> None:
    pairs, y, qid = pairs_data
    start = QueryTowerRanker.pretrained(**_listwise(tiny_bert))
    before = start.predict(pairs)
    kw = _listwise(tiny_bert, epochs=0, document_steps=30)
    fold = QueryTowerRanker(**kw).share_documents(start).fit(pairs, y, qid=qid)
    alone = QueryTowerRanker(**kw).fit(pairs, y, qid=qid)
    np.testing.assert_allclose(start.predict(pairs), before)  # the shared cache stays raw
    np.testing.assert_allclose(fold.predict(pairs), alone.predict(pairs), rtol=1e-5, atol=1e-6)
    refit = fold.fit(pairs, y, qid=qid)  # trains against raw vectors, not its old offsets
    np.testing.assert_allclose(refit.predict(pairs), alone.predict(pairs), rtol=1e-5, atol=1e-6)


def test_epochs_zero_trains_the_document_offsets_alone(tiny_bert, pairs_data) -> None:
    pairs, y, qid = pairs_data
    start = QueryTowerRanker.pretrained(**_listwise(tiny_bert))
    ranker = QueryTowerRanker(**_listwise(tiny_bert, epochs=0, document_steps=30)).fit(
        pairs, y, qid=qid
    )
    queries = list(dict.fromkeys(pairs["query"]))
    np.testing.assert_allclose(
        ranker.encode_queries(queries), start.encode_queries(queries), rtol=1e-5, atol=1e-6
    )
    assert ranker.best_step_ == 0 and ranker.loss_history_ == []
    assert _top_margin(ranker.predict(pairs), y, qid) > _top_margin(start.predict(pairs), y, qid)
    with pytest.raises(ConfigError, match="epochs must be >= 1"):
        NeuralConfig(architecture="query-tower", loss="listwise", epochs=0)
    with pytest.raises(ConfigError, match="epochs must be >= 1"):
        NeuralConfig(architecture="bi-encoder", epochs=0)


def test_document_offsets_follow_the_click_teacher_by_its_share(tiny_bert, pairs_data) -> None:
    pairs, y, qid = pairs_data
    kw = _listwise(tiny_bert, document_steps=30, document_learning_rate=1e-2)
    y_click = np.where(y > 0, 0.0, 3.0)  # clicks that contradict the judge
    judge = QueryTowerRanker(**kw).fit(pairs, y, qid=qid)
    share_0 = QueryTowerRanker(**kw).fit(
        pairs, y, qid=qid, y_click=y_click, click_share=np.zeros(len(y))
    )
    clicked = QueryTowerRanker(**kw).fit(
        pairs, y, qid=qid, y_click=y_click, click_share=np.ones(len(y))
    )
    docs = list(dict.fromkeys(pairs["document"]))
    np.testing.assert_allclose(
        share_0.encode_documents(docs), judge.encode_documents(docs), rtol=1e-5, atol=1e-6
    )
    # A query without any click label keeps the judge's teacher (no NaN spreads).
    partly = np.where(qid == qid[0], np.nan, y_click)
    some = QueryTowerRanker(**kw).fit(
        pairs, y, qid=qid, y_click=partly, click_share=np.ones(len(y))
    )
    assert all(np.isfinite(v).all() for v in some.document_offsets_.values())
    # All weight on the contradicting clicks: the offsets take the judge's best documents'
    # lead down further than the query encoder alone (the same first stage) did.
    encoder_only = QueryTowerRanker(**_listwise(tiny_bert)).fit(
        pairs, y, qid=qid, y_click=y_click, click_share=np.ones(len(y))
    )
    assert (
        _top_margin(clicked.predict(pairs), y, qid)
        < _top_margin(encoder_only.predict(pairs), y, qid) - 1e-3
    )


@pytest.mark.parametrize(
    ("params", "match"),
    [
        (
            {"architecture": "query-tower", "loss": "listwise", "document_steps": -1},
            "document_steps must be >= 0",
        ),
        (
            {"architecture": "bi-encoder", "loss": "listwise", "document_steps": 10},
            "document_steps needs architecture: query-tower",
        ),
        (
            {"architecture": "query-tower", "loss": "listwise", "document_learning_rate": 0.0},
            "document_learning_rate",
        ),
        (
            {"architecture": "query-tower", "loss": "listwise", "document_weight_decay": -1.0},
            "document_weight_decay",
        ),
        (
            {"architecture": "query-tower", "loss": "listwise", "negatives": -1},
            "negatives must be >= 0",
        ),
        (
            {"architecture": "bi-encoder", "loss": "listwise", "negatives": 4},
            "negatives needs architecture: query-tower",
        ),
        ({"architecture": "query-tower", "loss": "pointwise", "negatives": 4}, "negatives needs"),
        (
            {"architecture": "query-tower", "loss": "listwise", "listwise_loss": "lambdaloss"},
            "listnet",
        ),
        ({"architecture": "query-tower", "temperature": 0.0}, "temperature"),
        ({"architecture": "bi-encoder", "clicks": True}, "clicks needs"),
    ],
)
def test_config_checks(params: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        NeuralConfig(**params)  # type: ignore[arg-type]


def test_save_load_keeps_the_frozen_document_encoder(tiny_bert, pairs_data, tmp_path) -> None:
    pairs, y, qid = pairs_data
    ranker = QueryTowerRanker(**_listwise(tiny_bert)).fit(pairs, y, qid=qid)
    ranker.save(tmp_path / "qt")
    assert (tmp_path / "qt" / "document_model").is_dir()
    loaded = QueryTowerRanker.load(tmp_path / "qt")
    np.testing.assert_allclose(loaded.predict(pairs), ranker.predict(pairs), rtol=1e-5, atol=1e-6)
    assert loaded.best_step_ == ranker.best_step_


def test_a_failed_save_leaves_the_previous_model(
    tiny_bert, pairs_data, tmp_path, monkeypatch
) -> None:
    """Saving over a model writes a sibling and renames it: a crash half-way (here, in the
    query encoder's files) leaves the saved model whole and loadable."""
    pairs, y, qid = pairs_data
    ranker = QueryTowerRanker(**_listwise(tiny_bert)).fit(pairs, y, qid=qid)
    ranker.save(tmp_path / "qt")
    before = QueryTowerRanker.load(tmp_path / "qt").predict(pairs)

    def crash(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError("disk full")

    monkeypatch.setattr(ranker.model_, "save_pretrained", crash)
    with pytest.raises(OSError, match="disk full"):
        ranker.save(tmp_path / "qt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["qt"]  # no half-written sibling
    np.testing.assert_allclose(QueryTowerRanker.load(tmp_path / "qt").predict(pairs), before)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    monkeypatch.undo()
    with pytest.raises(FileExistsError, match="not written by hybridrank"):
        ranker.save(tmp_path / "notes")  # a folder of the user's is never replaced
    assert (tmp_path / "notes" / "todo.txt").read_text() == "mine"


def test_the_judges_embeddings_seed_the_document_cache(tiny_bert, pairs_data, monkeypatch) -> None:
    """The embedded judge's head view is the frozen document model's input: reused, not
    encoded again, and scoring as if the ranker had encoded it."""
    from hybridrank.errors import NotFittedError
    from hybridrank.labels.llm import EmbeddingJudge, Pair
    from hybridrank.neural import BiEncoderRanker

    pairs, y, qid = pairs_data
    judge = EmbeddingJudge(model_path=tiny_bert, max_seq_length=32, head_tokens=16, batch_size=8)
    judge.annotate(
        [Pair(str(q), str(i), qt, dt) for i, (q, qt, dt) in enumerate(
            zip(qid, pairs["query"], pairs["document"], strict=True))]
    )  # fmt: skip
    embedded = judge.embedded(16)
    assert set(pairs["document"]) <= set(embedded) and not judge.embedded(24)
    made_by = {"model_path": tiny_bert, "max_seq_length": 16}
    kw = _listwise(tiny_bert, max_seq_length=16)
    fresh = QueryTowerRanker.pretrained(**kw).predict(pairs)
    start = QueryTowerRanker.pretrained(**kw)
    assert start.add_document_embeddings(embedded, **made_by) == len(embedded)
    assert start.add_document_embeddings(embedded, **made_by) == 0  # already there
    encoded = record_encodes(start.model_, monkeypatch)
    np.testing.assert_allclose(start.predict(pairs), fresh, rtol=1e-5, atol=1e-6)
    assert not set(encoded) & set(pairs["document"])

    # Vectors of another length, a wrong shape or scale, or a fine-tuned document model.
    with pytest.raises(ConfigError, match="@32"):
        start.add_document_embeddings(judge.embedded(32), model_path=tiny_bert, max_seq_length=32)
    first = next(iter(embedded.values()))
    with pytest.raises(DataFormatError, match="dimensions"):
        start.add_document_embeddings({"new": np.zeros(7)}, **made_by)
    with pytest.raises(DataFormatError, match="normalised"):
        start.add_document_embeddings({"new": 2 * first}, **made_by)
    with pytest.raises(NotFittedError):
        QueryTowerRanker(**kw).add_document_embeddings(embedded, **made_by)
    bi = fast(tiny_bert, max_seq_length=16)
    tuned = BiEncoderRanker(**bi).fit(pairs, y, qid=qid)
    with pytest.raises(ConfigError, match="fine-tuned"):
        tuned.add_document_embeddings(embedded, **made_by)
    assert BiEncoderRanker.pretrained(**bi).add_document_embeddings(embedded, **made_by) > 0
