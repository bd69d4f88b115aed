from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hybridrank.errors import ConfigError, DataFormatError
from hybridrank.neural import BiEncoderRanker, CrossEncoderRanker, QueryTowerRanker, as_pairs
from hybridrank.neural._rankers import text_hash

from .conftest import fast, record_encodes

RANKERS = [CrossEncoderRanker, BiEncoderRanker, QueryTowerRanker]


@pytest.mark.parametrize("cls", RANKERS)
@pytest.mark.parametrize("loss", ["pointwise", "listwise"])
def test_fit_predict_shapes(cls, loss, tiny_bert, pairs_data, capsys) -> None:
    pairs, y, qid = pairs_data
    ranker = cls(**fast(tiny_bert, loss=loss)).fit(pairs, y, qid=qid)
    printed = capsys.readouterr()
    assert "{'loss'" not in printed.out + printed.err  # kept in loss_history_, not printed
    scores = ranker.predict(pairs)
    assert scores.shape == (len(pairs),)
    assert np.isfinite(scores).all()
    assert ranker.loss_history_ and ranker.valid_history_
    assert ranker.device_ == "cpu"
    assert ranker.n_train_queries_ == 6  # 8 queries, 2 held out for validation
    # tuples work as well as a DataFrame
    tuples = list(zip(pairs["query"], pairs["document"], strict=True))
    np.testing.assert_allclose(ranker.predict(tuples[:5]), scores[:5], rtol=1e-5, atol=1e-6)


def test_lambdaloss_runs(tiny_bert, pairs_data) -> None:
    pairs, y, qid = pairs_data
    ranker = CrossEncoderRanker(**fast(tiny_bert, loss="listwise", listwise_loss="lambdaloss"))
    assert ranker.fit(pairs, y, qid=qid).predict(pairs).shape == (len(pairs),)


@pytest.mark.parametrize("cls", RANKERS)
def test_seeded_fits_are_identical(cls, tiny_bert, pairs_data) -> None:
    pairs, y, qid = pairs_data
    a = cls(**fast(tiny_bert, seed=3)).fit(pairs, y, qid=qid).predict(pairs)
    b = cls(**fast(tiny_bert, seed=3)).fit(pairs, y, qid=qid).predict(pairs)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


@pytest.mark.parametrize("cls", RANKERS)
def test_sample_weights_change_the_model(cls, tiny_bert, pairs_data) -> None:
    pairs, y, qid = pairs_data
    kw = fast(tiny_bert, validation_fraction=0.0)
    plain = cls(**kw).fit(pairs, y, qid=qid).predict(pairs)
    ones = cls(**kw).fit(pairs, y, qid=qid, sample_weight=np.ones(len(y))).predict(pairs)
    w = np.where(np.arange(len(y)) % 2 == 0, 5.0, 0.0)
    weighted = cls(**kw).fit(pairs, y, qid=qid, sample_weight=w).predict(pairs)
    np.testing.assert_allclose(plain, ones, rtol=0, atol=1e-6)
    assert np.abs(weighted - plain).max() > 1e-4


def test_listwise_needs_one_weight_per_query(tiny_bert, pairs_data) -> None:
    pairs, y, qid = pairs_data
    w = np.arange(len(y), dtype=float)
    with pytest.raises(DataFormatError, match="one weight per query"):
        CrossEncoderRanker(**fast(tiny_bert, loss="listwise")).fit(
            pairs, y, qid=qid, sample_weight=w
        )


@pytest.mark.parametrize("cls", RANKERS)
def test_save_load_round_trip(cls, tiny_bert, pairs_data, tmp_path) -> None:
    pairs, y, qid = pairs_data
    ranker = cls(**fast(tiny_bert)).fit(pairs, y, qid=qid)
    before = ranker.predict(pairs)
    ranker.save(tmp_path / "run")
    loaded = cls.load(tmp_path / "run")
    np.testing.assert_allclose(loaded.predict(pairs), before, rtol=1e-5, atol=1e-6)
    assert loaded.config_ == ranker.config_
    assert loaded.loss_history_ == ranker.loss_history_
    other = BiEncoderRanker if cls is CrossEncoderRanker else CrossEncoderRanker
    with pytest.raises(DataFormatError, match="matching ranker"):
        other.load(tmp_path / "run")


def test_bi_encoder_caches_document_embeddings(tiny_bert, pairs_data, monkeypatch) -> None:
    pairs, y, qid = pairs_data
    ranker = BiEncoderRanker(**fast(tiny_bert)).fit(pairs, y, qid=qid)
    encoded = record_encodes(ranker.model_, monkeypatch)
    first = ranker.predict(pairs)
    docs = set(pairs["document"])
    queries = set(pairs["query"])
    assert sorted(encoded) == sorted(docs | queries)
    assert ranker.cache_misses_ == len(docs)
    encoded.clear()
    second = ranker.predict(pairs)
    assert set(encoded) == queries  # documents come from the cache
    np.testing.assert_allclose(first, second, rtol=1e-6)
    encoded.clear()
    one = pairs[pairs["query"] == pairs["query"].iloc[0]]
    scores = ranker.rank(one["query"].iloc[0], list(one["document"]))
    assert encoded == [one["query"].iloc[0]]  # one query encoding, no document
    np.testing.assert_allclose(scores, first[: len(one)], rtol=1e-5, atol=1e-6)
    # A bounded cache keeps the most recently used documents and still answers right.
    ranker.max_cached_documents = 3
    encoded.clear()
    np.testing.assert_allclose(ranker.predict(pairs), first, rtol=1e-5, atol=1e-6)
    last_used = list(dict.fromkeys(reversed(list(pairs["document"]))))[:3][::-1]
    assert list(ranker._doc_cache) == [text_hash(d) for d in last_used]


def test_untrained_bi_encoder_is_the_cosine_baseline(tiny_bert, pairs_data) -> None:
    pairs, _, _ = pairs_data
    ranker = BiEncoderRanker.pretrained(**fast(tiny_bert))
    scores = ranker.predict(pairs)
    assert scores.shape == (len(pairs),)
    assert np.all(scores <= 1.0 + 1e-5)


def test_input_errors_name_the_input(tiny_bert, pairs_data) -> None:
    pairs, y, qid = pairs_data
    with pytest.raises(DataFormatError, match="missing \\['document'\\]"):
        as_pairs(pairs.drop(columns="document"))
    bad = pairs.copy()
    bad.loc[3, "document"] = None
    with pytest.raises(DataFormatError, match="row 3"):
        as_pairs(bad)
    ranker = CrossEncoderRanker(**fast(tiny_bert))
    with pytest.raises(DataFormatError, match="labels are missing"):
        ranker.fit(pairs, np.where(np.arange(len(y)) == 2, np.nan, y), qid=qid)
    with pytest.raises(DataFormatError, match="not contiguous"):
        ranker.fit(pairs, y, qid=np.roll(qid, 1))
    with pytest.raises(RuntimeError, match="not fitted"):
        ranker.predict(pairs)
    with pytest.raises(ConfigError, match="architecture"):
        CrossEncoderRanker(architecture="bi-encoder").get_config()
    with pytest.raises(ConfigError, match=r"ONNX backend"):
        import importlib.util

        if importlib.util.find_spec("optimum") is not None:
            pytest.skip("optimum is installed")
        CrossEncoderRanker.pretrained(**fast(tiny_bert, backend="onnx"))


def test_eval_set_and_subsample(tiny_bert, pairs_data) -> None:
    pairs, y, qid = pairs_data
    ranker = CrossEncoderRanker(**fast(tiny_bert, subsample_queries=3, eval_steps=1))
    ranker.fit(pairs, y, qid=qid, eval_set=(pairs.iloc[:12], y[:12]), eval_qid=qid[:12])
    assert ranker.n_train_queries_ == 3
    assert len(ranker.valid_history_) == len(ranker.loss_history_) or ranker.valid_history_


@pytest.mark.gpu
def test_cuda_bf16_fit(tiny_bert, pairs_data) -> None:
    pairs, y, qid = pairs_data
    ranker = CrossEncoderRanker(**fast(tiny_bert, device="cuda")).fit(pairs, y, qid=qid)
    assert ranker.device_ == "cuda"
    assert np.isfinite(ranker.predict(pairs)).all()


@pytest.mark.slow
@pytest.mark.shared_data
def test_real_minilm_few_steps_on_nfcorpus(shared_datasets) -> None:
    from hybridrank.pipelines import attach_texts, build_world

    world = build_world()
    table = attach_texts(world.table(), world.queries, world.docs)
    qids = table["qid"].drop_duplicates().iloc[:6]
    sub = table[table["qid"].isin(qids)].reset_index(drop=True)
    y = (sub["bm25_rank"] <= 5).astype(float).to_numpy() * 3
    ranker = CrossEncoderRanker(
        device="cpu", max_seq_length=64, batch_size=16, epochs=1, subsample_queries=4
    )
    ranker.fit(sub[["query", "document"]], y, qid=sub["qid"].to_numpy())
    scores = ranker.predict(sub[["query", "document"]])
    assert scores.shape == (len(sub),) and np.isfinite(scores).all()
    assert ranker.loss_history_
    assert pd.Series(scores).nunique() > 1


@pytest.mark.parametrize("cls", RANKERS)
def test_validation_starts_from_the_untrained_weights(cls, tiny_bert, pairs_data) -> None:
    """Step 0 is evaluated, so the weights kept never score below the start on validation."""
    pairs, y, qid = pairs_data
    ranker = cls(**fast(tiny_bert, eval_steps=2, early_stopping_patience=None)).fit(
        pairs, y, qid=qid
    )
    steps = [s for s, _ in ranker.valid_history_]
    assert steps[0] == 0 and len(steps) >= 2
    assert ranker.best_score_ == max(v for _, v in ranker.valid_history_)
    assert ranker.best_score_ >= ranker.valid_history_[0][1]


def test_a_fit_that_only_hurts_returns_the_start(tiny_bert, pairs_data) -> None:
    """A learning rate that wrecks the model: the untrained weights come back."""
    pairs, y, qid = pairs_data
    kw = fast(tiny_bert, learning_rate=50.0, warmup_ratio=0.0, eval_steps=1)
    start = BiEncoderRanker.pretrained(**kw).predict(pairs)
    ranker = BiEncoderRanker(**kw).fit(pairs, y, qid=qid)
    best_step = max(ranker.valid_history_, key=lambda sv: sv[1])[0]
    if best_step == 0:
        np.testing.assert_allclose(ranker.predict(pairs), start, rtol=1e-5, atol=1e-6)
    else:  # the wrecked model happened to score higher on validation
        assert ranker.best_score_ > ranker.valid_history_[0][1]


def test_validation_is_held_out_before_subsampling(tiny_bert, pairs_data) -> None:
    pairs, y, qid = pairs_data
    ranker = CrossEncoderRanker(**fast(tiny_bert, subsample_queries=2, validation_fraction=0.25))
    ranker.fit(pairs, y, qid=qid)
    assert ranker.n_train_queries_ == 2  # 2 of the 6 queries left after 2 validation queries
    assert ranker.valid_history_


@pytest.mark.parametrize("cls", RANKERS)
def test_listwise_skips_lists_without_ranking_information(cls, tiny_bert, pairs_data) -> None:
    pairs, y, qid = pairs_data
    flat = y.copy()
    flat[qid == "q0"] = 1.0  # every document of q0 equally relevant
    ranker = cls(**fast(tiny_bert, loss="listwise", validation_fraction=0.0)).fit(
        pairs, flat, qid=qid
    )
    assert ranker.n_train_queries_ == 7
    pointwise = cls(**fast(tiny_bert, validation_fraction=0.0)).fit(pairs, flat, qid=qid)
    assert pointwise.n_train_queries_ == 8
