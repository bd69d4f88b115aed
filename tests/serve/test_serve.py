"""Batch and online ranking with GBDT runs and hybrid bundles."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hybridrank import columns as C
from hybridrank.cli import main
from hybridrank.data import read_table
from hybridrank.ensemble import SigmoidGate, zscore_per_query
from hybridrank.errors import ConfigError, DataFormatError
from hybridrank.features import CLICK_FEATURES
from hybridrank.gbdt import GBDTBundle
from hybridrank.serve import ClickFeatureStore, HybridRanker, build_hybrid_bundle

from .conftest import request_table as _request_table


def test_store_lookup_equals_the_batch_join(runs: dict[str, Path]) -> None:
    store = ClickFeatureStore.load(runs["click"] / "click_features")
    request = _request_table(runs["click"])
    joined = store.join(request)
    qid = str(store.features.queries.sort_values("q_sessions")[C.QID].iloc[-1])
    rows = joined.loc[joined[C.QID] == qid]
    # A document the log never showed for this query, and one it never showed at all.
    docids = [*rows[C.DOCID].tolist(), "never-seen-doc"]
    found = store.lookup(qid, docids)
    for name in CLICK_FEATURES:
        np.testing.assert_allclose(found[name][:-1], rows[name].to_numpy(), equal_nan=True)
    assert found["qd_impressions"][-1] == 0 and np.isnan(found["qd_ctr"][-1])
    assert found["q_sessions"][-1] == store.frequency(qid) > 0
    assert store.frequency("unknown-query") == 0.0
    np.testing.assert_array_equal(
        store.frequencies(np.array([qid, "unknown-query"])), [store.frequency(qid), 0.0]
    )


def test_gbdt_batch_and_online_rankings_agree_with_the_model(runs: dict[str, Path]) -> None:
    ranker = HybridRanker.load(runs["click"])
    assert not ranker.fused
    request = _request_table(runs["click"])
    ranked = ranker.rank_table(request)
    train = pd.read_parquet(runs["click"] / "train_table.parquet")
    expected = GBDTBundle.load(runs["click"]).predict(train)
    np.testing.assert_allclose(ranked["score"].to_numpy(), expected, rtol=1e-6)
    # The model alone reads no store: a request without click features says where they are.
    with pytest.raises(DataFormatError, match=r"click-feature store.*HybridRanker\.load"):
        GBDTBundle.load(runs["click"]).predict(request)
    qid = request[C.QID].iloc[0]
    one = request.loc[request[C.QID] == qid]
    online = ranker.rank(qid, one.sample(frac=1.0, random_state=0))  # order must not matter
    batch = ranked.loc[ranked[C.QID] == qid].sort_values("rank")
    np.testing.assert_allclose(online.scores, batch["score"].to_numpy(), rtol=1e-6)
    assert list(online.to_frame()["rank"]) == list(range(1, len(one) + 1))
    # A list of records works as well as a DataFrame.
    records = ranker.rank(qid, one.to_dict("records"))
    np.testing.assert_allclose(records.scores, online.scores)
    # A record without a feature the others have is an error, never a silent NaN.
    broken = one.to_dict("records")
    del broken[1]["bm25"]
    with pytest.raises(DataFormatError, match=r"record 1 lacks \['bm25'\]"):
        ranker.rank(qid, broken)
    # ... but a title is optional: a GBDT reads no text, with or without titles.
    titled = one.to_dict("records")
    titled[0]["title"] = "A title"
    titled[1]["title"] = None
    np.testing.assert_allclose(np.sort(ranker.rank(qid, titled).scores), np.sort(online.scores))
    with_title = ranker.rank_table(request.assign(title="T"))
    np.testing.assert_allclose(with_title["score"].to_numpy(), ranked["score"].to_numpy())


def test_click_features_sent_with_the_request_win_in_batch_and_online(
    runs: dict[str, Path],
) -> None:
    ranker = HybridRanker.load(runs["click"])
    request = _request_table(runs["click"]).assign(qd_ctr=0.9, q_sessions=1000.0)
    # By default an input column named like a stored click feature is an error, never
    # a silent override: the user says which source wins.
    with pytest.raises(DataFormatError, match=r"click features the bundle's store provides"):
        ranker.rank_table(request)
    batch = ranker.rank_table(request, click_features_from="input")
    store = ClickFeatureStore.load(runs["click"] / "click_features")
    expected_table = store.join(request.drop(columns=["qd_ctr", "q_sessions"])).assign(
        qd_ctr=0.9, q_sessions=1000.0
    )
    expected = GBDTBundle.load(runs["click"]).predict(expected_table)
    np.testing.assert_allclose(batch["score"].to_numpy(), expected, rtol=1e-6)
    qid = request[C.QID].iloc[0]
    online = ranker.rank(qid, request.loc[request[C.QID] == qid])
    one = batch.loc[batch[C.QID] == qid].sort_values("rank")
    np.testing.assert_allclose(online.scores, one["score"].to_numpy(), rtol=1e-6)


def test_missing_feature_is_named(runs: dict[str, Path]) -> None:
    ranker = HybridRanker.load(runs["click"])
    request = _request_table(runs["click"]).drop(columns=["tfidf_cosine"])
    with pytest.raises(DataFormatError, match="tfidf_cosine"):
        ranker.rank_table(request)
    qid = request[C.QID].iloc[0]
    with pytest.raises(DataFormatError, match="tfidf_cosine"):
        ranker.rank(qid, request.loc[request[C.QID] == qid])


def test_fused_bundle_applies_the_gate_per_query(runs: dict[str, Path], tmp_path: Path) -> None:
    gate = SigmoidGate(centre=1.0, slope=3.0)
    path = build_hybrid_bundle(runs["click"], runs["llm"], tmp_path / "hybrid", gate=gate)
    ranker = HybridRanker.load(path)
    assert ranker.fused
    request = _request_table(runs["click"])
    ranked = ranker.rank_table(request)
    click = GBDTBundle.load(runs["click"]).predict(
        pd.read_parquet(runs["click"] / "train_table.parquet")
    )
    llm = GBDTBundle.load(runs["llm"]).predict(pd.read_parquet(runs["llm"] / "train_table.parquet"))
    store = ClickFeatureStore.load(runs["click"] / "click_features")
    freq = np.array([store.frequency(q) for q in request[C.QID]])
    qid = request[C.QID].to_numpy()
    g = gate(freq)
    expected = g * zscore_per_query(click, qid=qid) + (1 - g) * zscore_per_query(llm, qid=qid)
    np.testing.assert_allclose(ranked["score"].to_numpy(), expected, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(ranked["gate"].to_numpy(), g)
    # Online, with the frequency overridden: a head query follows the click model.
    q = qid[0]
    docs = request.loc[request[C.QID] == q]
    head = ranker.rank(q, docs, {"freq": 1e12})
    assert head.components["gate"] == 1.0
    assert (np.diff(head.components["click"]) <= 1e-12).all()
    tail = ranker.rank(q, docs, {"freq": 0})
    g0 = tail.components["gate"]
    assert g0 == pytest.approx(float(gate(0.0)))
    one = np.zeros(len(docs))
    z = g0 * zscore_per_query(tail.components["click"], qid=one) + (1 - g0) * zscore_per_query(
        tail.components["llm"], qid=one
    )
    np.testing.assert_allclose(tail.scores, z, rtol=1e-9)
    # Without a store to count it, a missing frequency is an error, never a silent 0.
    no_store = HybridRanker(ranker.click, llm=ranker.llm, gate=gate)
    full = store.join(request.drop(columns=[C.FREQ]))  # click features sent along, no freq
    with pytest.raises(DataFormatError, match="frequency"):
        no_store.rank(q, full.loc[full[C.QID] == q], on_missing="keep")
    with pytest.raises(DataFormatError, match="frequency") as info:
        no_store.rank_table(full, on_missing="keep")
    assert info.value.column == C.FREQ
    with_freq = no_store.rank_table(full.assign(**{C.FREQ: freq}), on_missing="keep")
    np.testing.assert_allclose(with_freq["gate"].to_numpy(), g)
    # A frequency must be a number >= 0, online and in batch: never a NaN gate.
    for bad in (float("nan"), -1, "abc", None, True, "3"):
        with pytest.raises(DataFormatError, match="a number >= 0") as info:
            ranker.rank(q, docs, {"freq": bad})
        assert info.value.column == C.FREQ
    # An empty request: an empty ranking with the columns of any other.
    full_columns = list(ranker.rank(q, docs, {"freq": 3}).to_frame().columns)
    assert list(ranker.rank(q, docs.iloc[:0], {"freq": 3}).to_frame().columns) == full_columns
    negative = request.assign(**{C.FREQ: np.full(len(request), -3, dtype=np.int64)})
    with pytest.raises(DataFormatError, match=r"frequency -3 is not") as info:
        ranker.rank_table(negative)
    bad_freq = request.assign(**{C.FREQ: freq})
    bad_freq.loc[bad_freq.index[3], C.FREQ] = np.nan
    with pytest.raises(DataFormatError, match="not a number >= 0") as info:
        ranker.rank_table(bad_freq)
    assert (info.value.column, info.value.row) == (C.FREQ, 3)


def test_online_ranking_checks_its_input_as_batch_does(runs: dict[str, Path]) -> None:
    ranker = HybridRanker.load(runs["click"])
    request = _request_table(runs["click"])
    q = request[C.QID].iloc[0]
    docs = request.loc[request[C.QID] == q].reset_index(drop=True)
    # A document given twice would take two places.
    twice = pd.concat([docs, docs.iloc[:1]], ignore_index=True)
    with pytest.raises(DataFormatError, match="given 2 times") as info:
        ranker.rank(q, twice)
    assert (info.value.column, info.value.row) == (C.DOCID, len(docs))
    # NaN: an error naming column and row unless kept; infinity and text always errors.
    holes = docs.copy()
    holes.loc[1, "bm25"] = np.nan
    with pytest.raises(DataFormatError, match="missing values") as info:
        ranker.rank(q, holes)
    assert (info.value.column, info.value.row) == ("bm25", 1)
    assert np.isfinite(ranker.rank(q, holes, on_missing="keep").scores).all()
    records = docs.to_dict("records")
    records[0]["bm25"] = float("inf")
    with pytest.raises(DataFormatError, match="infinite"):
        ranker.rank(q, records)
    records[0]["bm25"] = "high"
    with pytest.raises(DataFormatError, match="not a number") as info:
        ranker.rank(q, records)
    assert info.value.row == 0
    with pytest.raises(ConfigError, match="on_missing"):
        ranker.rank(q, docs, on_missing="drop")
    # Odd requests get hybridrank's own errors (a server catching them answers 400).
    with pytest.raises(DataFormatError, match="got NoneType"):
        ranker.rank(q, None)
    with pytest.raises(ConfigError, match="context must be a mapping"):
        ranker.rank(q, docs, "vitamin d")
    with pytest.raises(DataFormatError, match="missing query id"):
        ranker.rank(None, docs)
    no_ids = docs.assign(**{C.DOCID: None})
    with pytest.raises(DataFormatError, match="missing id") as info:
        ranker.rank(q, no_ids)
    assert (info.value.column, info.value.row) == (C.DOCID, 0)
    # No documents: an empty ranking, whatever form the empty request takes.
    for empty in ([], docs.iloc[:0]):
        assert len(ranker.rank(q, empty).docids) == 0


def test_docs_without_a_bi_encoder_are_named_not_dropped_silently(
    runs: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    docs = pd.DataFrame({C.DOCID: ["d1", "d2"], C.TEXT: ["one", "two"]})
    with caplog.at_level(logging.WARNING, logger="hybridrank.serve"):
        path = build_hybrid_bundle(
            runs["click"], runs["llm"], tmp_path / "hybrid", gate=SigmoidGate(), docs=docs
        )
    assert "no LLM model of this bundle is a bi-encoder (its LLM side: gbdt)" in caplog.text
    assert not list(path.glob("*doc_ids*.json"))


def test_edited_hybrid_bundle_is_refused(runs: dict[str, Path], tmp_path: Path) -> None:
    path = build_hybrid_bundle(
        runs["click"], runs["llm"], tmp_path / "hybrid", gate=SigmoidGate(1.0, 2.0)
    )
    meta = path / "hybrid.json"
    meta.write_text(meta.read_text().replace('"centre": 1.0', '"centre": 9.0'))
    with pytest.raises(DataFormatError, match=r"hybrid\.json was modified"):
        HybridRanker.load(path)
    other = build_hybrid_bundle(
        runs["click"], runs["llm"], tmp_path / "hybrid2", gate=SigmoidGate(1.0, 2.0)
    )
    (other / "doc_ids.json").write_text("[]")  # dropped in: would change what is served
    with pytest.raises(DataFormatError, match=r"doc_ids\.json was added after"):
        HybridRanker.load(other)
    (other / "doc_ids.json").unlink()
    (other / "importance").mkdir()
    (other / "importance" / "gain.csv").write_text("x\n")  # `hybridrank importance` output: fine
    assert HybridRanker.load(other).fused
    with pytest.raises(FileExistsError):
        build_hybrid_bundle(runs["click"], runs["llm"], path, gate=SigmoidGate())


def test_neural_hybrid_uses_stored_document_embeddings(
    runs: dict[str, Path], tmp_path: Path, tiny_bert: str
) -> None:
    from hybridrank.neural import BiEncoderRanker

    model_dir = tmp_path / "neural" / "model"
    BiEncoderRanker.pretrained(model_path=tiny_bert, device="cpu").save(model_dir)
    request = _request_table(runs["click"])
    collection = pd.DataFrame({C.DOCID: request[C.DOCID].unique()})
    collection[C.TEXT] = "document. " + collection[C.DOCID].astype(str)
    path = build_hybrid_bundle(
        runs["click"], tmp_path / "neural", tmp_path / "hybrid",
        gate=SigmoidGate(1.0, 2.0), docs=collection, device="cpu",
    )  # fmt: skip
    assert (path / "doc_embeddings.npy").exists()
    ranker = HybridRanker.load(path, device="cpu")
    q = request[C.QID].iloc[0]
    docs = request.loc[request[C.QID] == q]
    ranking = ranker.rank(q, docs, {"text": "a query", "freq": 0})
    # The stored embeddings give the same scores as encoding the texts now.
    with_text = docs.merge(collection, on=C.DOCID)
    again = ranker.rank(
        q, with_text.assign(docid=with_text[C.DOCID] + "-new"), {"text": "a query", "freq": 0}
    )
    np.testing.assert_allclose(
        np.sort(ranking.components["llm"]), np.sort(again.components["llm"]), rtol=1e-4
    )
    # ... and the same as the bi-encoder's own one-query ranking.
    texts = docs[[C.DOCID]].merge(collection, on=C.DOCID)[C.TEXT].tolist()
    own = BiEncoderRanker.load(path / "llm", device="cpu").rank("a query", texts)
    np.testing.assert_allclose(np.sort(ranking.components["llm"]), np.sort(own), rtol=1e-4)
    with pytest.raises(DataFormatError, match="query text"):
        ranker.rank(q, docs, {"freq": 0})
    with pytest.raises(DataFormatError, match="no stored embedding"):
        ranker.rank(q, docs.assign(docid="x" + docs[C.DOCID]), {"text": "a query"})
    queries = pd.DataFrame({C.QID: request[C.QID].unique(), C.TEXT: "a query"})
    batch = ranker.rank_table(request, queries=queries)
    assert batch["score"].notna().all() and set(batch["rank"]) >= {1}
    # A title sent apart is read as at import: title, then body, one text.
    split = docs.assign(docid=docs[C.DOCID] + "-new", title="document", text=docs[C.DOCID])
    titled = ranker.rank(q, split, {"text": "a query", "freq": 0})
    np.testing.assert_allclose(
        np.sort(titled.components["llm"]), np.sort(again.components["llm"]), rtol=1e-4
    )
    split_batch = ranker.rank_table(split.assign(qid=q), queries=queries)
    np.testing.assert_allclose(
        np.sort(split_batch["llm_score"]), np.sort(again.components["llm"]), rtol=1e-4
    )
    assert split_batch[C.TEXT].tolist() == split[C.TEXT].tolist()  # the output keeps the input


def test_rank_cli_and_bad_inputs(runs: dict[str, Path], tmp_path: Path, capsys) -> None:
    request = _request_table(runs["click"])
    req_path = tmp_path / "candidates.parquet"
    request.to_parquet(req_path)
    out = tmp_path / "ranked.csv"
    assert main(["rank", "--model", str(runs["click"]), "--candidates", str(req_path),
                 "--top-k", "3", "--out", str(out)]) == 0  # fmt: skip
    ranked = read_table(out)
    assert ranked.groupby(C.QID)["rank"].max().max() == 3
    assert "GBDT bundle" in capsys.readouterr().out
    # A truncated parquet file: a clear error naming it, exit status 2.
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(req_path.read_bytes()[: req_path.stat().st_size // 2])
    assert main(["rank", "--model", str(runs["click"]), "--candidates", str(broken),
                 "--out", str(tmp_path / "x.parquet")]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "broken.parquet" in err and "truncated" in err
    with pytest.raises(DataFormatError, match=r"broken\.parquet"):
        read_table(broken)
    # The suffix picks the format: another suffix is refused, not written as parquet.
    assert main(["rank", "--model", str(runs["click"]), "--candidates", str(req_path),
                 "--out", str(tmp_path / "ranked.txt")]) == 2  # fmt: skip
    assert "name a .csv or .parquet file" in capsys.readouterr().err
    assert not (tmp_path / "ranked.txt").exists()
    # The ranking never replaces its own input.
    before = req_path.read_bytes()
    assert main(["rank", "--model", str(runs["click"]), "--candidates", str(req_path),
                 "--out", str(req_path)]) == 2  # fmt: skip
    assert "is the --candidates file" in capsys.readouterr().err
    assert req_path.read_bytes() == before
    gate_cli = ["bundle", "--click", str(runs["click"]), "--llm", str(runs["llm"]),
                "--out", str(tmp_path / "b")]  # fmt: skip
    assert main([*gate_cli, "--gate", "sigmoid:centre=abc"]) == 2
    assert "not a number" in capsys.readouterr().err
    assert main([*gate_cli, "--gate", "sigmoid:centre=1.6,slope=2.5,foo=1"]) == 2
    err = capsys.readouterr().err
    assert (
        "unknown parameter ['foo']; it takes ['centre', 'slope']" in err and "__init__" not in err
    )
    # A study not run yet: one clear line, and no storage left behind.
    never = tmp_path / "never.yaml"
    never.write_text(f"study: {{kind: stacker, out: {tmp_path / 'never-run'}}}\n")
    assert main([*gate_cli, "--study", str(never)]) == 2
    assert "run `hybridrank study run` first" in capsys.readouterr().err
    assert not (tmp_path / "never-run" / "study.db").exists()
    # A study's gate is served with the normalisation it was tuned with.
    import optuna

    from hybridrank.tuning import StudySpec

    ranked_spec = tmp_path / "ranked.yaml"
    ranked_spec.write_text(
        f"study: {{kind: stacker, out: {tmp_path / 'ranked-study'}, "
        "experiment: {stacker: {normalisation: rank}}}\n"
    )
    spec = StudySpec.from_yaml(ranked_spec)
    (tmp_path / "ranked-study").mkdir()
    tuned = optuna.create_study(study_name=spec.study_name, storage=spec.open_storage(),
                                direction="maximize")  # fmt: skip
    tuned.enqueue_trial({"centre": 1.0, "slope": 2.0})
    tuned.optimize(lambda t: t.suggest_float("centre", 0, 5) + t.suggest_float("slope", 0, 8), 1)
    assert main([*gate_cli, "--study", str(ranked_spec), "--normalisation", "zscore"]) == 2
    assert "the study tuned its gate with rank" in capsys.readouterr().err
    # A hybrid bundle where a GBDT run goes: one line, not a traceback.
    assert main(["bundle", "--click", str(tmp_path / "b-study-missing"), "--llm", str(runs["llm"]),
                 "--gate", "sigmoid:centre=1,slope=2", "--out", str(tmp_path / "bq")]) == 2  # fmt: skip
    capsys.readouterr()
    study_cli = [*gate_cli[:-1], str(tmp_path / "b-study"), "--study", str(ranked_spec)]
    assert main(study_cli) == 0
    assert json.loads((tmp_path / "b-study" / "hybrid.json").read_text())["normalisation"] == "rank"
    assert main(["bundle", "--click", str(tmp_path / "b-study"), "--llm", str(runs["llm"]),
                 "--gate", "sigmoid:centre=1,slope=2", "--out", str(tmp_path / "bq")]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "not a `hybridrank train gbdt` run (a hybrid bundle)" in err and "Traceback" not in err
    assert main([*gate_cli, "--gate", "sigmoid:centre=1.5,slope=2"]) == 0
    meta = json.loads((tmp_path / "b" / "hybrid.json").read_text())
    assert meta["gate"] == {"kind": "sigmoid", "params": {"centre": 1.5, "slope": 2.0}}
    with pytest.raises(ConfigError):
        HybridRanker(GBDTBundle.load(runs["click"]), gate=SigmoidGate())


def test_rank_table_refuses_silently_wrong_input(runs: dict[str, Path], tmp_path: Path) -> None:
    ranker = HybridRanker.load(runs["click"])
    request = _request_table(runs["click"])
    # Duplicate (qid, docid) rows would let one document take two places.
    dup = pd.concat([request.iloc[:1], request]).sort_values(C.QID, kind="stable")
    with pytest.raises(DataFormatError, match="duplicate") as info:
        ranker.rank_table(dup)
    assert info.value.column == C.DOCID
    # An input column with an output's name is never overwritten.
    with pytest.raises(DataFormatError, match="outputs") as info:
        ranker.rank_table(request.assign(llm_score=1.0))
    assert info.value.column == "llm_score"
    # NaN in a feature: an error naming column and row, unless the user keeps it as missing.
    holes = request.copy()
    holes.loc[holes.index[4], "bm25"] = np.nan
    with pytest.raises(DataFormatError, match="missing values") as info:
        ranker.rank_table(holes)
    assert (info.value.column, info.value.row) == ("bm25", 4)
    kept = ranker.rank_table(holes, on_missing="keep")
    assert np.isfinite(kept["score"]).all()
    # Infinite values are always an error.
    inf = request.copy()
    inf.loc[inf.index[2], "bm25"] = np.inf
    with pytest.raises(DataFormatError, match="infinite") as info:
        ranker.rank_table(inf, on_missing="keep")
    assert info.value.row == 2


def test_rank_cli_refuses_a_cut_csv_and_a_negative_top_k(
    runs: dict[str, Path], tmp_path: Path, capsys
) -> None:
    request = _request_table(runs["click"])
    text = request.to_csv(index=False)
    cut = tmp_path / "cut.csv"
    cut.write_text(text[: len(text) - 40])  # a row cut mid-line
    out = tmp_path / "ranked.csv"
    args = ["rank", "--model", str(runs["click"]), "--candidates", str(cut), "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "cut.csv, line" in err and "fields" in err and not out.exists()
    # A table check names the CSV's line (the header is line 1), not a 0-based row.
    holes = request.copy()
    holes.loc[holes.index[4], "bm25"] = np.nan
    holes_path = tmp_path / "holes.csv"
    holes_path.write_text(holes.to_csv(index=False))
    assert main([*args[:3], "--candidates", str(holes_path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "holes.csv, line 6, column 'bm25': 1 missing values" in err and not out.exists()
    # A header-only file is refused by name.
    header_only = tmp_path / "header.csv"
    header_only.write_text(text.splitlines()[0] + "\n")
    assert main([*args[:3], "--candidates", str(header_only), "--out", str(out)]) == 2
    assert "header.csv: holds no rows" in capsys.readouterr().err
    # A document listed twice in --docs would give its candidates twice.
    docs = tmp_path / "docs.csv"
    ids = request[C.DOCID].unique()[:2].tolist()
    docs.write_text(f"docid,text\n{ids[0]},a\n{ids[1]},b\n{ids[0]},c\n")
    good = tmp_path / "good.csv"
    good.write_text(text)
    assert main([*args[:3], "--candidates", str(good), "--docs", str(docs), "--out", str(out)]) == 2
    assert f"docs.csv, line 4, column 'docid': document {ids[0]!r} is listed again" in (
        capsys.readouterr().err
    )
    # So is a query listed twice in --queries (one text would silently win).
    queries = tmp_path / "queries.tsv"
    queries.write_text("qid\ttext\nq1\ta\nq2\tb\nq1\tc\n")
    assert main([*args[:3], "--candidates", str(good), "--queries", str(queries),
                 "--out", str(out)]) == 2  # fmt: skip
    assert "queries.tsv, line 4, column 'qid': query 'q1' is listed again" in (
        capsys.readouterr().err
    )
    for bad in ("-1", "0"):
        with pytest.raises(SystemExit):
            main([*args[:-2], "--top-k", bad, "--out", str(out)])
        assert f"expected a whole number >= 1, got {bad}" in capsys.readouterr().err
    assert not out.exists()


def test_importance_on_a_users_table_names_what_it_needs(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    table = pd.read_parquet(runs["llm"] / "train_table.parquet")
    plain = tmp_path / "plain.parquet"
    table.drop(columns=["y_expert", "bucket"]).to_parquet(plain)
    assert (
        main(["importance", str(runs["llm"]), "--data", str(plain), "--out", str(tmp_path / "a")])
        == 2
    )
    err = capsys.readouterr().err
    assert "plain.parquet: no 'y_expert' column" in err and "Traceback" not in err
    # Another label, no bucket column: the overall table only.
    graded = tmp_path / "graded.parquet"
    table.drop(columns=["bucket"]).rename(columns={"y_expert": "grade"}).to_parquet(graded)
    out = tmp_path / "b"
    args = ["importance", str(runs["llm"]), "--data", str(graded), "--label", "grade"]
    assert main([*args, "--repeats", "1", "--out", str(out)]) == 0
    assert "no `bucket` column: overall importance only" in capsys.readouterr().out
    assert (out / "importance.csv").exists() and (out / "importance.md").exists()
    assert main([*args, "--repeats", "1", "--out", str(out)]) == 0  # its own tables: replaced
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    assert main([*args, "--out", str(mine)]) == 2
    assert "not written by hybridrank" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    table.assign(y_expert=table["y_expert"].astype(object)).head(3).assign(
        y_expert=["2", "x", "1"]
    ).to_csv(bad, index=False)
    assert (
        main(["importance", str(runs["llm"]), "--data", str(bad), "--out", str(tmp_path / "c")])
        == 2
    )
    assert "bad.csv, line 3, column 'y_expert': label 'x' is not a grade" in capsys.readouterr().err


def test_integer_ids_are_the_same_queries_as_their_text(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    from hybridrank.features import compute_click_features
    from hybridrank.serve import ClickFeatureStore

    loaded = _fused(runs, tmp_path)
    # A store whose queries have numeric ids, as a parquet log with integer qids gives.
    log = pd.DataFrame(
        [(s, float(s), "7", str(p), p, int(p == 1), np.nan) for s in range(40) for p in (1, 2)],
        columns=list(C.IMPRESSION_COLUMNS),
    )
    ranker = loaded.set_params(store=ClickFeatureStore(compute_click_features(log)))
    request = _request_table(runs["click"])
    docs = request.loc[request[C.QID] == request[C.QID].iloc[0]].assign(qid="7")
    docs = docs.assign(docid=[str(i) for i in range(1, len(docs) + 1)])
    seen, never = ranker.rank("7", docs), ranker.rank("8", docs)
    assert seen.components["gate"] > never.components["gate"]  # 40 sessions against none
    # Online: an integer (or whole float) query id is its text, never another query.
    for same in (7, np.int64(7), 7.0):
        assert ranker.rank(same, docs).components["gate"] == seen.components["gate"]
    with pytest.raises(DataFormatError, match="query id must be text or a whole number"):
        ranker.rank(2.5, docs)
    # Batch: integer id columns are their text (they were a pandas merge error).
    numbered = docs.assign(qid=7, docid=range(1, len(docs) + 1))
    got = ranker.rank_table(numbered)
    want = ranker.rank_table(docs)
    np.testing.assert_allclose(got["gate"].to_numpy(), want["gate"].to_numpy())
    np.testing.assert_allclose(got["score"].to_numpy(), want["score"].to_numpy())
    assert got[C.QID].tolist() == want[C.QID].tolist()
    with pytest.raises(DataFormatError, match=r"id 0\.5 is not text or a whole number"):
        ranker.rank_table(docs.assign(qid=0.5))
    with pytest.raises(ConfigError, match=r"context keys \['frequency'\] are not read"):
        ranker.rank("0", docs, {"frequency": 5})


def _fused(runs: dict[str, Path], tmp_path: Path) -> HybridRanker:
    """The click and LLM runs fused under a fixed sigmoid gate, as ``tmp_path / "hybrid"``."""
    build_hybrid_bundle(runs["click"], runs["llm"], tmp_path / "hybrid", gate=SigmoidGate(1.0, 2.0))
    return HybridRanker.load(tmp_path / "hybrid")


def test_text_and_booleans_are_not_numbers_online_or_in_batch(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    ranker = _fused(runs, tmp_path)
    path = tmp_path / "hybrid"
    request = _request_table(runs["click"])
    q = request[C.QID].iloc[0]
    docs = request.loc[request[C.QID] == q].reset_index(drop=True)
    for bad, shown in (
        (docs[C.BM25].astype(str), "a number given as text: '"),
        (docs[C.BM25] > 0, "not a number: True"),
    ):
        with pytest.raises(DataFormatError, match=rf"column 'bm25': {shown}"):
            ranker.rank(q, docs.assign(bm25=bad))
        batch = request.assign(bm25=request[C.BM25].astype(object))
        batch.loc[: len(bad) - 1, C.BM25] = bad.to_numpy()  # the first query's rows
        with pytest.raises(DataFormatError, match=f"row 0, column 'bm25': {shown}"):
            ranker.rank_table(batch)
    # Records mixing numbers and text: the text is named, not the first (float) record.
    records = docs.to_dict("records")
    records[2][C.BM25] = "3"
    with pytest.raises(DataFormatError, match=r"row 2, column 'bm25': a number given as text"):
        ranker.rank(q, records)
    # A CSV column with one word in it is read as text whole: the word's line is named,
    # not the column's first (valid) number.
    csv = tmp_path / "worded.csv"
    worded = request.astype({C.BM25: object})
    worded.loc[7, C.BM25] = "high"
    worded.to_csv(csv, index=False)
    assert main(["rank", "--model", str(path), "--candidates", str(csv),
                 "--out", str(tmp_path / "r.csv")]) == 2  # fmt: skip
    assert "line 9, column 'bm25': not a number: 'high'" in capsys.readouterr().err
    columns = {C.DOCID: docs[C.DOCID].tolist(), C.BM25: docs[C.BM25].tolist()[:-1]}
    with pytest.raises(DataFormatError, match="the columns of docs differ in length"):
        ranker.rank(q, columns)
    with pytest.raises(DataFormatError, match=r"docs name the columns \['bm25'\] twice"):
        ranker.rank(q, pd.concat([docs, docs[[C.BM25]]], axis=1))
    with pytest.raises(DataFormatError, match="frequency True is not a number"):
        ranker.rank_table(request.assign(freq=True))


def test_a_retrain_killed_between_its_renames_is_completed_on_load(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    import os
    import shutil

    run = tmp_path / "gbdt"
    shutil.copytree(runs["click"], run)
    # The new run staged by a killed writer (a pid no process has), the target gone.
    os.replace(run, tmp_path / ".gbdt.tmp-999999999")
    ranker = HybridRanker.load(run)
    assert run.is_dir() and ranker.click is not None
    # A corrupt manifest is named, not a JSON traceback.
    (run / "manifest.json").write_text("{not json")
    with pytest.raises(DataFormatError, match=r"manifest\.json") as err:
        HybridRanker.load(run)
    assert "not JSON" in str(err.value)
    # An experiment's scores read by `evaluate` after a rerun killed mid-swap.
    exp = tmp_path / "exp"
    staged = tmp_path / ".exp.tmp-999999999"
    staged.mkdir()
    pd.DataFrame({C.QID: ["q"], C.DOCID: ["d"], "s": [1.0]}).to_parquet(staged / "scores.parquet")
    (staged / "info.json").write_text("{}")
    assert read_table(exp / "scores.parquet")["s"].tolist() == [1.0]
    assert exp.is_dir()


def test_a_full_disk_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys) -> None:
    import errno

    from hybridrank.cli import build_parser

    def full(args: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "report.csv"))

    args = build_parser().parse_args(["evaluate", "--candidates", "x.parquet"])
    args.func = full
    monkeypatch.setattr("hybridrank.cli.build_parser", lambda: _Fixed(args))
    assert main(["evaluate", "--candidates", "x.parquet"]) == 1
    err = capsys.readouterr().err
    assert "report.csv: No space left on device" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


class _Fixed:
    """A parser stand-in that returns prepared arguments."""

    def __init__(self, args: object) -> None:
        self.args = args

    def parse_args(self, argv: object) -> object:
        return self.args


def test_a_request_without_a_model_feature_names_the_member_and_the_features_origin(
    runs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ranker = _fused(runs, tmp_path)
    request = _request_table(runs["click"]).drop(columns=[C.BM25])
    monkeypatch.setitem(C.FEATURE_ORIGINS, C.BM25, "bm25 is BM25 of the pair's texts")
    with pytest.raises(DataFormatError) as info:
        ranker.rank_table(request, source="req.csv")
    message = str(info.value)
    assert "1 feature(s) the click model was trained on missing: ['bm25']" in message
    assert "; bm25 is BM25 of the pair's texts" in message and "req.csv" in message
    assert info.value.column == C.BM25
