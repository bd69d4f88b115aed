"""``dataset import``: click logs, texts, qrels and LETOR files -> the dataset layout."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hybridrank import columns as C
from hybridrank.data import Dataset
from hybridrank.errors import ConfigError, DataFormatError, MissingInputError
from hybridrank.features import TEXT_FEATURES
from hybridrank.pipelines._import import LOGGED_POSITION, ImportConfig, import_dataset
from hybridrank.pipelines._world import FoldConfig

from ..conftest import make_collection, write_trec_dir

# ------------------------------------------------------------------------------ fixtures


def _write_log(collection_root: Path, path: Path, *, seed: int = 0, n_sessions: int = 120) -> Path:
    """A canonical impressions CSV over the collection: 5 shown documents per session."""
    rng = np.random.default_rng(seed)
    queries = pd.read_csv(collection_root / "queries.tsv", sep="\t", header=None)[0].tolist()
    docs = pd.read_csv(collection_root / "docs.tsv", sep="\t", header=None)[0].tolist()
    # Zipf-like popularity over a subset of the queries, so some queries are never logged.
    logged = queries[:10]
    popularity = 1.0 / np.arange(1, len(logged) + 1)
    popularity /= popularity.sum()
    pools = {q: list(rng.choice(docs, size=7, replace=False)) for q in logged}
    rows = []
    for s in range(n_sessions):
        q = logged[int(rng.choice(len(logged), p=popularity))]
        shown = list(rng.permutation(pools[q])[:5])
        for pos, d in enumerate(shown, start=1):
            click = int(rng.random() < 0.3 / pos)
            dwell = f"{rng.uniform(1, 60):.1f}" if click else ""
            rows.append(f"{s},{1000.0 + s},{q},{d},{pos},{click},{dwell}")
    path.write_text("session_id,ts,qid,docid,position,click,dwell_s\n" + "\n".join(rows) + "\n")
    return path


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    collection = make_collection(n_queries=14, n_docs=80, seed=3, vocab_size=120)
    root = write_trec_dir(collection, tmp_path / "col")
    log = _write_log(root, tmp_path / "log.csv")
    return {
        "root": root,
        "queries": root / "queries.tsv",
        "docs": root / "docs.tsv",
        "qrels": root / "qrels",
        "log": log,
    }


def _config(files: dict[str, Path], **kw: object) -> ImportConfig:
    base = ImportConfig(
        log=str(files["log"]),
        log_format="impressions",
        queries=str(files["queries"]),
        docs=str(files["docs"]),
        qrels=str(files["qrels"]),
        folds=FoldConfig(n_folds=3, tuning_queries=2),
    )
    return replace(base, **kw)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ click logs


def test_import_log_with_texts_and_qrels(files: dict[str, Path]) -> None:
    ds = import_dataset(_config(files))
    log = pd.read_csv(files["log"])
    log[C.QID] = log[C.QID].astype(str)
    log[C.DOCID] = log[C.DOCID].astype(str)
    cand = ds.candidates

    # Candidates: exactly the shown pairs, with their mean logged position.
    shown = log.groupby([C.QID, C.DOCID])[C.POSITION].mean()
    assert len(cand) == len(shown)
    got = cand.set_index([C.QID, C.DOCID])[LOGGED_POSITION]
    pd.testing.assert_series_equal(
        got.sort_index(), shown.sort_index().astype(float), check_names=False
    )
    # Ordered by qid, then by mean logged position within a query.
    assert cand[C.QID].is_monotonic_increasing
    for _, rows in cand.groupby(C.QID, sort=False):
        assert rows[LOGGED_POSITION].is_monotonic_increasing

    # Features: the logged order and the text features (no BM25 without bm25_top_k).
    assert ds.features[0] == LOGGED_POSITION
    assert set(ds.features[1:]) == set(TEXT_FEATURES) - {C.BM25}
    assert C.BM25 not in cand

    # Expert grades joined, 0 where unjudged.
    qrels = pd.read_csv(files["qrels"], sep=" ", header=None, names=["q", "it", "d", "g"])
    grades = {(str(q), str(d)): g for q, d, g in qrels[["q", "d", "g"]].itertuples(index=False)}
    expect = [grades.get((q, d), 0) for q, d in cand[[C.QID, C.DOCID]].itertuples(index=False)]
    assert cand[C.Y_EXPERT].tolist() == expect

    # Splits: every query with text, frequency = its sessions in the log.
    assert len(ds.splits) == 14
    freq = ds.splits.set_index(C.QID)[C.FREQ]
    sessions = log.groupby(C.QID)[C.SESSION_ID].nunique()
    assert freq.reindex(sessions.index).tolist() == sessions.tolist()
    assert (freq.drop(sessions.index) == 0).all()
    assert ds.split_info.n_folds == 3

    assert ds.impressions is not None and len(ds.impressions) == len(log)
    assert ds.source["producer"] == "dataset import"
    assert ds.source["inputs"]["log"]["format"] == "impressions"
    assert ds.source["inputs"]["log"]["rows"] == len(log)
    assert ds.source["dropped"] == {}


def test_import_log_extended_by_bm25(files: dict[str, Path]) -> None:
    plain = import_dataset(_config(files))
    ds = import_dataset(_config(files, bm25_top_k=5))
    cand = ds.candidates
    shown = set(map(tuple, plain.candidates[[C.QID, C.DOCID]].to_numpy()))
    pairs = list(map(tuple, cand[[C.QID, C.DOCID]].to_numpy()))
    assert shown <= set(pairs)
    added = len(cand) - len(shown)
    assert added > 0
    assert ds.source["candidates"]["added_by_bm25"] == added
    # Shown documents first (logged order), then BM25 additions by rank.
    for _, rows in cand.groupby(C.QID, sort=False):
        logged = rows[LOGGED_POSITION].notna().to_numpy()
        assert not (np.diff(logged.astype(int)) > 0).any()  # no shown row after an added one
        assert rows.loc[~logged, C.BM25_RANK].is_monotonic_increasing
    # Queries never logged get BM25 candidates; every row has a BM25 score, a shown
    # document outside the top K its own (as if BM25 had retrieved it), not 0.
    assert cand[C.QID].nunique() > plain.candidates[C.QID].nunique()
    assert cand[C.BM25].notna().all() and (cand[C.BM25] >= 0).all()
    assert set(TEXT_FEATURES) <= set(ds.features)
    from hybridrank.data import FirstStageConfig, bm25_pair_scores, load_trec

    everything = bm25_pair_scores(
        load_trec(files["root"]), cand[[C.QID, C.DOCID]], FirstStageConfig(k=5)
    )
    np.testing.assert_allclose(cand[C.BM25].to_numpy(), everything, rtol=1e-6)
    outside = cand[C.BM25_RANK].isna().to_numpy()
    assert outside.any() and (cand.loc[outside, C.BM25] > 0).any()


def test_round_trip(files: dict[str, Path], tmp_path: Path) -> None:
    ds = import_dataset(_config(files, bm25_top_k=5))
    out = ds.write(tmp_path / "ds")
    back = Dataset.read(out)
    for name in ("candidates", "splits", "impressions", "queries", "docs", "qrels"):
        got, want = back.table_frame(name), ds.table_frame(name)
        assert got is not None and want is not None
        pd.testing.assert_frame_equal(got, want, check_dtype=False, obj=name)
    assert back.features == ds.features
    assert back.source["inputs"] == ds.source["inputs"]
    assert back.split_info == ds.split_info
    # The manifest records the tuning queries drawn beside the count asked for.
    assert back.split_info.tuning_chosen == len(ds.tuning_qids)
    assert ImportConfig.from_dict(back.source["config"]) == _config(files, bm25_top_k=5)


def test_texts_only_needs_bm25(files: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match="bm25_top_k"):
        ImportConfig(collection=str(files["root"]))
    ds = import_dataset(
        ImportConfig(collection=str(files["root"]), bm25_top_k=4, folds=FoldConfig(n_folds=2))
    )
    assert ds.impressions is None
    assert ds.candidates.groupby(C.QID).size().max() <= 4
    assert (ds.splits[C.FREQ] == 0).all()
    assert ds.qrels is not None and C.Y_EXPERT in ds.candidates
    assert LOGGED_POSITION not in ds.features


def test_import_a_beir_collection(tmp_path: Path) -> None:
    root = tmp_path / "beir"
    (root / "qrels").mkdir(parents=True)
    # Each query's word is in its document's title only: found only if titles are read.
    docs = [(f"d{i}", f"title {w}", f"body {i}") for i, w in enumerate("abcdefghij")]
    (root / "corpus.jsonl").write_text(
        "".join(f'{{"_id": "{d}", "title": "{t}", "text": "{b}"}}\n' for d, t, b in docs)
    )
    (root / "queries.jsonl").write_text(
        "".join(f'{{"_id": "q{w}", "text": "{w}"}}\n' for w in "abcdefghij")
    )
    (root / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n"
        + "".join(f"q{w}\td{i}\t1\n" for i, w in enumerate("abcdefghij"))
    )
    ds = import_dataset(
        ImportConfig(collection=str(root), bm25_top_k=3, folds=FoldConfig(n_folds=2))
    )
    assert ds.qrels is not None and len(ds.qrels) == 10
    # BM25 ranks each query's document first, by its title.
    top = ds.candidates.loc[ds.candidates[C.BM25_RANK] == 1]
    assert (top[C.QID].str[1:] == top[C.DOCID].map(dict((d, t[-1]) for d, t, _ in docs))).all()
    assert (top[C.Y_EXPERT] == 1).all()


# ------------------------------------------------------------------------------ bad input


def test_unknown_ids_error_and_drop(files: dict[str, Path], tmp_path: Path) -> None:
    qrels = tmp_path / "qrels"
    qrels.write_text(files["qrels"].read_text() + "Q1 0 NOPE 2\nNOQ 0 D1 1\n")
    n_lines = len(qrels.read_text().splitlines())
    with pytest.raises(DataFormatError, match="unknown_ids: drop") as err:
        import_dataset(_config(files, qrels=str(qrels)))
    assert err.value.line == n_lines - 1 and err.value.column == C.DOCID
    ds = import_dataset(_config(files, qrels=str(qrels), unknown_ids="drop"))
    assert ds.source["dropped"]["qrels_rows_unknown_ids"]["count"] == 2
    assert ds.qrels is not None and len(ds.qrels) == n_lines - 2

    log = tmp_path / "log.csv"
    log.write_text(files["log"].read_text() + "9999,1.0,Q0,NOPE,1,0,\n9998,1.0,NOQ,D1,1,1,3\n")
    with pytest.raises(DataFormatError, match="--unknown-ids drop"):
        import_dataset(_config(files, log=str(log)))
    ds = import_dataset(_config(files, log=str(log), unknown_ids="drop"))
    dropped = ds.source["dropped"]
    assert dropped["log_rows_unknown_doc"]["count"] == 1
    assert dropped["log_sessions_unknown_query"]["count"] == 1
    assert ds.impressions is not None
    assert not ds.impressions[C.DOCID].eq("NOPE").any()


def test_bad_log_rows_error_or_skip(files: dict[str, Path], tmp_path: Path) -> None:
    log = tmp_path / "log.csv"
    log.write_text(files["log"].read_text() + "77777,1.0,Q0,D1,-3,0,\n")
    with pytest.raises(DataFormatError, match="position"):
        import_dataset(_config(files, log=str(log)))
    ds = import_dataset(_config(files, log=str(log), on_bad="skip"))
    assert ds.source["dropped"]["log_records_bad"]["count"] == 1
    assert ds.source["inputs"]["log"]["read_report"]["rows_skipped"] == 1


def test_config_checks_and_yaml(files: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="log_format"):
        ImportConfig(log="x.csv")
    with pytest.raises(ConfigError, match="log_format"):
        ImportConfig(log="x.csv", log_format="nope")
    with pytest.raises(ConfigError, match="nothing to import"):
        ImportConfig()
    with pytest.raises(ConfigError, match="letor"):
        ImportConfig(letor=("a.txt",), log="x", log_format="yandex")
    with pytest.raises(ConfigError, match=r"dataset\.folds"):
        ImportConfig.from_dict({"log": "x", "log_format": "yandex", "folds": {"bad": 1}})
    with pytest.raises(ConfigError, match="unknown keys"):
        ImportConfig.from_dict({"log": "x", "log_format": "yandex", "nope": 1})
    yml = tmp_path / "import.yaml"
    yml.write_text(
        "dataset:\n"
        f"  log: {files['log']}\n"
        "  log_format: impressions\n"
        "  on_bad: skip\n"
        "  unknown_ids: drop\n"
        "  letor: []\n"
        "  folds: {n_folds: 4, tuning_queries: 0}\n"
        "  buckets: {edges: [1, 10]}\n"
    )
    with pytest.raises(ConfigError, match="letor"):  # not a path, not a list: the config says
        ImportConfig.from_dict({"letor": 5})
    from hybridrank.pipelines import check_input_paths

    check_input_paths({"letor": 5, "log": None, "folds": {"n_folds": 3}})  # no path named
    with pytest.raises(ConfigError, match=r"dataset.folds must be a mapping such as \{n_folds"):
        ImportConfig.from_dict({"log": "x", "log_format": "yandex", "folds": 3})
    with pytest.raises(
        ConfigError,
        match=r"dataset.tuning_queries belongs under folds: \(folds: "
        r"\{tuning_queries: 10\}; the YAML twin of --tuning-queries\)",
    ):
        ImportConfig.from_dict({"log": "x", "log_format": "yandex", "tuning_queries": 10})
    cfg = ImportConfig.from_yaml(yml)
    assert cfg.on_bad == "skip" and cfg.unknown_ids == "drop"
    assert cfg.folds.n_folds == 4 and cfg.buckets.edges == (1, 10)
    assert ImportConfig.from_dict(cfg.to_dict()) == cfg
    # Readers that stop at the first bad record refuse on_bad: skip, and say so.
    yandex = tmp_path / "yandex"
    yandex.write_text("q1\tu1,u2 : u1\n")
    with pytest.raises(ConfigError, match="stops at the first bad record"):
        import_dataset(ImportConfig(log=str(yandex), log_format="yandex", on_bad="skip"))


# ------------------------------------------------------------------------------ LETOR


def _write_letor(path: Path, rows: list[tuple[int, str, dict[int, float], str]]) -> Path:
    lines = []
    for label, qid, feats, comment in rows:
        body = " ".join(f"{i}:{v}" for i, v in sorted(feats.items()))
        lines.append(f"{label} qid:{qid} {body}" + (f" #docid = {comment}" if comment else ""))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_import_letor(tmp_path: Path) -> None:
    a = _write_letor(
        tmp_path / "a.txt",
        [
            (2, "10", {1: 0.5, 2: 1.0, 3: 0.25}, "GX-1"),
            (0, "10", {1: 0.1, 3: 0.75}, "GX-2"),
            (1, "10", {2: 0.3}, "GX-3"),
            (0, "7", {1: 0.9, 2: 0.2}, "GX-1"),
            (1, "7", {3: 0.6}, "GX-4"),
        ],
    )
    b = _write_letor(
        tmp_path / "b.txt",
        [(0, "3", {1: 1.0, 4: 2.0}, ""), (3, "3", {2: 1.0}, ""), (1, "5", {1: 0.5}, "")],
    )
    ds = import_dataset(ImportConfig(letor=(str(a), str(b)), folds=FoldConfig(n_folds=2)))
    cand = ds.candidates
    # Queries and rows in file order; docids from comments, else <qid>-<row in query>.
    assert cand[C.QID].tolist() == ["10", "10", "10", "7", "7", "3", "3", "5"]
    assert cand[C.DOCID].tolist() == ["GX-1", "GX-2", "GX-3", "GX-1", "GX-4", "3-0", "3-1", "5-0"]
    assert ds.features == ("f1", "f2", "f3", "f4")
    np.testing.assert_array_equal(
        cand[list(ds.features)].to_numpy(),
        np.array(
            [
                [0.5, 1.0, 0.25, 0],
                [0.1, 0, 0.75, 0],
                [0, 0.3, 0, 0],
                [0.9, 0.2, 0, 0],
                [0, 0, 0.6, 0],
                [1.0, 0, 0, 2.0],
                [0, 1.0, 0, 0],
                [0.5, 0, 0, 0],
            ],
            dtype=np.float32,
        ),
    )
    assert cand[C.Y_EXPERT].tolist() == [2, 0, 1, 0, 1, 0, 3, 1]
    assert ds.qrels is not None and ds.qrels[C.GRADE].tolist() == cand[C.Y_EXPERT].tolist()
    assert (ds.splits[C.FREQ] == 0).all() and ds.splits[C.BUCKET].nunique() == 1
    assert ds.impressions is None
    files = ds.source["inputs"]["letor"]
    assert [f["source_file"] for f in files] == [str(a), str(b)]
    assert [f["queries"] for f in files] == [2, 2]
    Dataset.read(ds.write(tmp_path / "ds"))

    # One row without its docid comment (a cut or edited line), or a document twice in a
    # query: an error naming the line, never made-up ids for every row.
    cut = _write_letor(tmp_path / "cut.txt", [(2, "10", {1: 0.5}, "GX-1"), (0, "10", {1: 0.1}, ""),
                                              (1, "11", {1: 0.3}, "GX-3")])  # fmt: skip
    with pytest.raises(DataFormatError, match=r"no '# docid = \.\.\.' comment, where 2 of") as err:
        import_dataset(ImportConfig(letor=(str(cut),)))
    assert (err.value.line, err.value.column) == (2, "docid")
    twice = _write_letor(tmp_path / "twice.txt", [(2, "10", {1: 0.5}, "GX-1"),
                                                  (0, "10", {1: 0.1}, "GX-1")])  # fmt: skip
    with pytest.raises(DataFormatError, match=r"'GX-1' is listed twice in query '10' \(first on line 1\)") as err:
        import_dataset(ImportConfig(letor=(str(twice),)))
    assert err.value.line == 2
    overlap = _write_letor(tmp_path / "c.txt", [(1, "99", {1: 1.0}, ""), (0, "7", {1: 0.0}, "")])
    with pytest.raises(DataFormatError, match=r"query '7' is also in .*a\.txt") as err:
        import_dataset(ImportConfig(letor=(str(a), str(overlap))))
    assert err.value.path == str(overlap) and err.value.line == 2


# ------------------------------------------------------------------------------ CLI


def _cli(argv: list[str]) -> int:
    """``hybridrank.cli.main`` when it mounts the dataset group, else our parser alone."""
    try:
        from hybridrank.cli import main

        return int(main(argv))
    except (ImportError, SystemExit) as exc:  # the group is not mounted (yet)
        if isinstance(exc, SystemExit) and exc.code == 0:
            return 0
    from hybridrank.cli._dataset import register

    parser = argparse.ArgumentParser(prog="hybridrank")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_cli_import_and_info(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    yml = tmp_path / "import.yaml"
    yml.write_text(f"dataset:\n  log: {files['log']}\n  log_format: impressions\n  bm25_top_k: 3\n")
    out = tmp_path / "ds"
    rc = _cli(
        [
            "dataset", "import", "--out", str(out), "--config", str(yml),
            "--queries", str(files["queries"]), "--docs", str(files["docs"]),
            "--qrels", str(files["qrels"]), "--qrels-format", "trec",
            "--bm25-top-k", "4", "--folds", "3", "--tuning-queries", "2", "--seed", "7",
            "--unknown-ids", "drop", "--on-bad", "skip",
        ]
    )  # fmt: skip
    assert rc == 0
    printed = capsys.readouterr().out
    assert "producer: dataset import" in printed
    ds = Dataset.read(out)
    assert ds.source["config"]["bm25_top_k"] == 4  # the flag beats the YAML
    assert ds.split_info.n_folds == 3 and ds.split_info.fold_seed == 7
    assert ds.source["config"]["unknown_ids"] == "drop"

    assert _cli(["dataset", "info", str(out)]) == 0
    info = capsys.readouterr().out
    counts = ds.summary()
    for key in ("queries", "candidates", "sessions", "impressions", "clicks"):
        assert f"{key}: {counts[key]}" in info
    assert "labels: qrels" in info and "texts: queries, docs" in info
    assert LOGGED_POSITION in info
    assert "tuning queries requested 2, chosen" in info
    assert "| bucket" in info and "| low" in info


def test_missing_input_names_the_option(files: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(MissingInputError, match="--qrels"):
        import_dataset(_config(files, qrels=str(tmp_path / "nope")))
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "qrels").write_text("")
    with pytest.raises(MissingInputError, match="docs"):
        import_dataset(ImportConfig(collection=str(empty), bm25_top_k=3))


# ------------------------------------------------------------------------------ real data


@pytest.mark.shared_data
def test_shared_clara2_with_relevance(shared_datasets: Path) -> None:
    root = shared_datasets / "clicklogs" / "clara2"
    ds = import_dataset(
        ImportConfig(
            log=str(root / "CLARA2SearchLog_beta"),
            log_format="clara2",
            qrels=str(root / "CLARA2QueryUrlRelevance_beta"),
            qrels_format="clara2",
        )
    )
    counts = ds.summary()
    assert counts["sessions"] == 31_564
    assert counts["queries"] == 1_951
    assert counts["impressions"] == 315_640
    assert counts["candidates"] == 41_073
    assert ds.qrels is not None and len(ds.qrels) == 48_691
    assert int((ds.candidates[C.Y_EXPERT] >= 0).sum()) == counts["candidates"]
    assert ds.splits[C.FREQ].sum() == 31_564
    unused = ds.source["unmatched"]
    assert unused["qrels_queries_not_in_dataset"]["count"] == 324
    assert ds.features == (LOGGED_POSITION,)


@pytest.mark.shared_data
def test_shared_yandex_log_only(shared_datasets: Path) -> None:
    path = shared_datasets / "clicklogs" / "yandex-wscd-sample" / "trainSample"
    ds = import_dataset(ImportConfig(log=str(path), log_format="yandex"))
    counts = ds.summary()
    assert counts["sessions"] == 35_064
    assert counts["queries"] == 20
    assert counts["impressions"] == 350_640
    assert ds.qrels is None and C.Y_EXPERT not in ds.candidates
    assert ds.tuning_qids == set()
    assert (ds.splits[C.BUCKET] == "high").all()


@pytest.mark.shared_data
def test_shared_cisi_bm25(shared_datasets: Path) -> None:
    ds = import_dataset(ImportConfig(collection=str(shared_datasets / "cisi"), bm25_top_k=50))
    counts = ds.summary()
    assert counts["queries"] == 112
    assert counts["docs_rows"] == 1_460
    assert counts["qrels_rows"] == 3_114
    assert ds.candidates.groupby(C.QID).size().max() == 50
    with_relevant = ds.candidates.groupby(C.QID)[C.Y_EXPERT].max() > 0
    assert 60 <= int(with_relevant.sum()) <= 76  # 76 queries are judged
    assert set(ds.features) == set(TEXT_FEATURES)


@pytest.mark.shared_data
def test_shared_letor_mq2008(shared_datasets: Path, tmp_path: Path) -> None:
    path = shared_datasets / "letor" / "mq2008-fold1" / "vali.txt"
    ds = import_dataset(ImportConfig(letor=(str(path),)))
    assert len(ds.candidates) == 2_707
    assert len(ds.splits) == 157
    assert len(ds.features) == 46
    assert set(ds.candidates[C.Y_EXPERT]) == {0, 1, 2}
    assert ds.candidates[C.DOCID].iloc[0].startswith("GX")
    assert ds.source["inputs"]["letor"][0]["docids"].startswith("comment")
    Dataset.read(ds.write(tmp_path / "mq"))


# ------------------------------------------------------------------ descriptions, narratives


def test_import_query_descriptions_and_narratives(files: dict[str, Path], tmp_path: Path) -> None:
    qids = pd.read_csv(files["queries"], sep="\t", header=None)[0].astype(str).tolist()
    desc = tmp_path / "dev.vid-desc.queries"  # the NFCorpus layout: QID<TAB>TEXT
    desc.write_text("".join(f"{q}\tdescription of {q}\n" for q in qids[:5]) + "Q-unknown\tnobody\n")
    narr = tmp_path / "narratives.tsv"
    narr.write_text(f"{qids[0]}\ta relevant document names the cause\n")
    config = _config(files, query_descriptions=str(desc), query_narratives=str(narr))
    with pytest.raises(DataFormatError, match="'Q-unknown', which has no text") as info:
        import_dataset(config)
    assert info.value.line == 6
    ds = import_dataset(replace(config, unknown_ids="drop"))
    assert ds.queries is not None
    by_qid = ds.queries.set_index(C.QID)
    assert by_qid.loc[qids[0], C.DESCRIPTION] == f"description of {qids[0]}"
    assert by_qid[C.DESCRIPTION].notna().sum() == 5
    assert by_qid.loc[qids[0], C.NARRATIVE] == "a relevant document names the cause"
    assert by_qid[C.NARRATIVE].notna().sum() == 1
    assert ds.source["dropped"]["query_descriptions_unknown_query"]["count"] == 1
    assert ds.source["inputs"]["query_descriptions"]["matched"] == 5
    written = Dataset.read(ds.write(tmp_path / "ds"))
    assert written.queries is not None and written.queries[C.DESCRIPTION].notna().sum() == 5


def test_import_queries_with_their_own_descriptions(files: dict[str, Path], tmp_path: Path) -> None:
    qids = pd.read_csv(files["queries"], sep="\t", header=None)
    topics = tmp_path / "topics.txt"
    topics.write_text(
        "".join(
            f"<top>\n<num> Number: {q}\n<title> {t}\n<desc> Description:\nwhat {t} means\n</top>\n"
            for q, t in qids.itertuples(index=False)
        )
    )
    ds = import_dataset(_config(files, queries=str(topics)))
    assert ds.queries is not None and ds.queries[C.DESCRIPTION].str.startswith("what ").all()
    assert ds.source["inputs"]["queries"]["with_description"] == len(qids)
    # The texts are the titles: the candidates and text features are those of the TSV import.
    pd.testing.assert_frame_equal(ds.candidates, import_dataset(_config(files)).candidates)
    desc = tmp_path / "desc.tsv"
    desc.write_text(f"{qids.iloc[0, 0]}\tagain\n")
    with pytest.raises(DataFormatError, match="already hold a description column"):
        import_dataset(_config(files, queries=str(topics), query_descriptions=str(desc)))


def test_query_descriptions_need_query_texts(files: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match=r"dataset\.query_descriptions adds to query texts"):
        ImportConfig(log=str(files["log"]), log_format="impressions", query_descriptions="d.tsv")
    with pytest.raises(ConfigError, match="letor"):
        ImportConfig(letor=("a.txt",), query_narratives="n.tsv")
    with pytest.raises(MissingInputError, match="--query-descriptions"):
        import_dataset(_config(files, query_descriptions="no/such/file"))


def test_cli_import_with_query_descriptions(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    qid = pd.read_csv(files["queries"], sep="\t", header=None)[0].astype(str).iloc[0]
    desc = tmp_path / "desc.tsv"
    desc.write_text(f"{qid}\twhat the searcher meant\n")
    out = tmp_path / "ds"
    argv = ["dataset", "import", "--out", str(out), "--queries", str(files["queries"]),
            "--docs", str(files["docs"]), "--bm25-top-k", "3", "--query-descriptions", str(desc)]  # fmt: skip
    assert _cli(argv) == 0
    assert "texts: queries (1 with a description), docs" in capsys.readouterr().out
    queries = Dataset.read(out).queries
    assert queries is not None
    assert queries.set_index(C.QID).loc[qid, C.DESCRIPTION] == "what the searcher meant"


def test_a_model_on_an_imported_log_ranks_new_requests_without_its_log_feature(
    files: dict[str, Path], tmp_path: Path
) -> None:
    """`logged_position_mean` comes from the log: serving reads it from the store
    (its `qd_mean_position`), so a request need not, and cannot, bring it."""
    from hybridrank.gbdt import LambdaMARTConfig
    from hybridrank.pipelines import GBDTTrainConfig, train_gbdt
    from hybridrank.serve import HybridRanker

    ds = import_dataset(_config(files)).write(tmp_path / "ds")
    config = GBDTTrainConfig(
        dataset=str(ds), label="click", features=("click", "dataset"), metrics=("ndcg@10",),
        gbdt=LambdaMARTConfig(n_estimators=10, min_child_samples=2, early_stopping_rounds=None),
    )  # fmt: skip
    run = train_gbdt(config, tmp_path / "run", progress=False).path
    ranker = HybridRanker.load(run)
    table = Dataset.read(ds).candidates
    assert LOGGED_POSITION in ranker.click.schema.names
    request = table.drop(columns=[c for c in table.columns if c.startswith("y_")])
    with_it = ranker.rank_table(request, on_missing="keep")
    without = ranker.rank_table(request.drop(columns=[LOGGED_POSITION]))
    np.testing.assert_allclose(without["score"], with_it["score"], rtol=1e-6)
    q = str(table[C.QID].iloc[0])
    docs = request.loc[request[C.QID] == q].drop(columns=[C.QID, LOGGED_POSITION])
    online = ranker.rank(q, docs)
    batch = without.loc[without[C.QID] == q].sort_values("rank")
    np.testing.assert_allclose(online.scores, batch["score"], rtol=1e-6)


def test_letor_comments_in_another_encoding_only_matter_in_the_docid(tmp_path: Path) -> None:
    p = tmp_path / "l.txt"
    p.write_bytes(b"2 qid:7 1:0.5 #docid = GX1 title = caf\xe9\n0 qid:8 1:0.1 #docid = GX2\n")
    ds = import_dataset(ImportConfig(letor=(str(p),), folds=FoldConfig(n_folds=2)))
    assert ds.candidates[C.DOCID].tolist() == ["GX1", "GX2"]
    p.write_bytes(b"2 qid:7 1:0.5 #docid = GX1\n0 qid:8 1:0.1 #docid = GX\xe92\n")
    with pytest.raises(DataFormatError, match=r"l\.txt, line 2, column 'docid': docid"):
        import_dataset(ImportConfig(letor=(str(p),), folds=FoldConfig(n_folds=2)))


def test_a_study_the_dataset_cannot_feed_is_refused_before_any_work(
    files: dict[str, Path], tmp_path: Path
) -> None:
    from hybridrank.pipelines import run_study_on_data, study_refusal
    from hybridrank.tuning import StudySpec

    texts = import_dataset(
        ImportConfig(collection=str(files["root"]), bm25_top_k=4,
                     folds=FoldConfig(n_folds=2, tuning_queries=2))
    ).write(tmp_path / "texts")  # fmt: skip
    no_texts = import_dataset(_config(files, queries=None, docs=None)).write(tmp_path / "log")
    full = import_dataset(_config(files))
    assert study_refusal("stacker", full) is None and study_refusal("gbdt", full) is None
    assert full.impressions is not None
    silent = replace(full, impressions=full.impressions.iloc[:0])  # a world of 0 sessions
    assert "a gbdt study needs a click log" in str(study_refusal("gbdt", silent))
    cases = [
        ("gbdt", texts, "a gbdt study needs a click log"),
        ("stacker", texts, "a stacker study needs a click log"),
        ("famol", no_texts, "needs LLM labels, or query and document texts"),
    ]
    for kind, ds, match in cases:
        out = tmp_path / f"study-{kind}"
        spec = StudySpec(kind=kind, n_trials=2, out=str(out), dataset=str(ds))
        with pytest.raises(DataFormatError, match=match):
            run_study_on_data(spec, progress=False)
        assert not out.exists()  # no storage, no inputs, no lock file left behind


def test_a_dataset_without_texts_says_why_it_gets_no_llm_labels(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from hybridrank.cli import main

    ds = import_dataset(_config(files, queries=None, docs=None)).write(tmp_path / "log")
    for argv in (
        ["annotate", "--dataset", str(ds)],
        ["annotate", "report", "--dataset", str(ds)],
        ["train", "gbdt", "--dataset", str(ds), "--label", "llm", "--out", str(tmp_path / "r")],
    ):
        assert main(argv) == 2
        captured = capsys.readouterr()
        assert "holds no query and document texts, so nothing can judge its pairs" in captured.err
        assert "annotate --dataset" not in captured.err  # no hint that leads nowhere
        assert "annotating" not in captured.out  # refused before it says labelling starts
