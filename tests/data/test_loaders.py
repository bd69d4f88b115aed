from __future__ import annotations

import hashlib
import http.server
import io
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from hybridrank import columns as C
from hybridrank.data import fetch_nfcorpus, load_nfcorpus, load_trec, resolve_nfcorpus_dir
from hybridrank.data._sources import DATA_ENV
from hybridrank.errors import ChecksumError, DataFormatError

from ..conftest import write_trec_dir


def _write_nfcorpus(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "dev.docs").write_text(
        "MED-1\tvitamin d bone health\nMED-2\tcoffee liver cancer risk\n"
    )
    (root / "test.docs").write_text("MED-2\tcoffee liver cancer risk\nMED-3\tgreen tea heart\n")
    (root / "dev.titles.queries").write_text("PLAIN-1\tvitamin d\n")
    (root / "test.titles.queries").write_text("PLAIN-2\tcoffee and cancer\n")
    (root / "dev.3-2-1.qrel").write_text("PLAIN-1\t0\tMED-1\t3\nPLAIN-1\t0\tMED-9\t1\n")
    (root / "test.3-2-1.qrel").write_text("PLAIN-2\t0\tMED-2\t2\n")
    (root / "stopwords.large").write_text("and\nthe\n")
    return root


def test_load_nfcorpus_layout(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = _write_nfcorpus(tmp_path / "nf")
    col = load_nfcorpus(root)
    assert col.n_docs == 3  # MED-2 is in both splits with the same text
    assert col.n_queries == 2
    # MED-9 is not among the documents: dropped, counted and logged.
    assert len(col.qrels) == 2
    assert "dropped 1 judged pairs" in caplog.text
    with pytest.raises(DataFormatError, match="unknown docid"):
        load_nfcorpus(root, unknown_ids="error")
    only_dev = load_nfcorpus(root, splits=["dev"])
    assert only_dev.queries[C.QID].tolist() == ["PLAIN-1"]


def test_nfcorpus_bad_arguments(tmp_path: Path) -> None:
    root = _write_nfcorpus(tmp_path / "nf")
    with pytest.raises(DataFormatError, match="query type"):
        load_nfcorpus(root, query_type="bogus")
    with pytest.raises(DataFormatError, match="split"):
        load_nfcorpus(root, splits=["valid"])
    with pytest.raises(FileNotFoundError, match="vid-titles"):
        load_nfcorpus(root, query_type="vid-titles")


def test_nfcorpus_conflicting_duplicate(tmp_path: Path) -> None:
    root = _write_nfcorpus(tmp_path / "nf")
    (root / "test.docs").write_text("MED-2\tsomething else entirely\n")
    with pytest.raises(DataFormatError, match="different text") as err:
        load_nfcorpus(root)
    assert "test.docs" in str(err.value) and "line 1" in str(err.value)


def test_load_trec_tsv_and_jsonl(tmp_path: Path, tiny_collection) -> None:
    root = write_trec_dir(tiny_collection, tmp_path / "trec")
    col = load_trec(root)
    assert col.n_docs == tiny_collection.n_docs
    assert col.qrels[C.GRADE].dtype == "int64"
    j = tmp_path / "j"
    j.mkdir()
    (j / "docs.jsonl").write_text(
        '{"_id": "a", "title": "T", "text": "alpha"}\n{"docid": "b", "text": "beta"}\n'
    )
    (j / "queries.tsv").write_text("q1\talpha\n")
    (j / "qrels.txt").write_text("q1 0 a 1\n")
    col = load_trec(j)
    assert col.docs[C.DOCID].tolist() == ["a", "b"]
    assert C.TITLE in col.docs.columns


def test_a_title_is_read_as_the_first_sentence_of_the_text(tmp_path: Path) -> None:
    """BEIR-style documents keep their title apart: BM25, the judge and the models must
    read it too, or a query term found only in the title matches nothing."""
    from hybridrank.data import FirstStageConfig, bm25_candidates, document_text, join_titles

    assert document_text("Zebra migration", "herds move") == "Zebra migration. herds move"
    assert document_text("What moves?", "herds") == "What moves? herds"
    assert document_text("", " herds ") == "herds"
    assert document_text("Zebra", "") == "Zebra"
    j = tmp_path / "j"
    j.mkdir()
    (j / "docs.jsonl").write_text(
        '{"_id": "a", "title": "zebra migration", "text": "an animal study of herds"}\n'
        '{"_id": "b", "title": "cooking pasta", "text": ""}\n'
        '{"_id": "c", "text": "stock prices fall"}\n'
    )
    (j / "queries.tsv").write_text("q1\tzebra\nq2\tpasta\n")
    (j / "qrels.txt").write_text("q1 0 a 1\nq2 0 b 1\n")
    col = load_trec(j)
    assert col.docs[C.TEXT].tolist() == [
        "zebra migration. an animal study of herds",
        "cooking pasta",
        "stock prices fall",
    ]
    assert col.docs[C.TITLE].tolist() == ["zebra migration", "cooking pasta", ""]
    top = bm25_candidates(col, FirstStageConfig(k=1))
    assert dict(zip(top[C.QID], top[C.DOCID], strict=True)) == {"q1": "a", "q2": "b"}
    # The same in the three-field TSV layout.
    (j / "docs.jsonl").unlink()
    (j / "docs.tsv").write_text("a\tzebra migration\tan animal study\nb\tcooking pasta\t\n")
    col = load_trec(j)
    assert col.docs[C.TEXT].tolist() == [
        "zebra migration. an animal study",
        "cooking pasta",
    ]
    # Neither title nor text: an error naming the line; a serving table the same way.
    (j / "docs.tsv").write_text("a\tzebra\tbody\nb\t \t \n")
    with pytest.raises(DataFormatError, match="empty text") as err:
        load_trec(j)
    assert "line 2" in str(err.value)
    table = pd.DataFrame({C.DOCID: ["a", "b"], C.TITLE: ["T", None], C.TEXT: [None, "body"]})
    assert join_titles(table)[C.TEXT].tolist() == ["T", "body"]
    table.loc[1, C.TEXT] = None  # neither: the text stays missing, as without a title
    joined = join_titles(table)[C.TEXT]
    assert joined[0] == "T" and pd.isna(joined[1])
    # A dataset's own docs table (joined when read) is not joined again.
    read_back = col.docs.iloc[:1]
    assert join_titles(read_back)[C.TEXT].tolist() == ["zebra migration. an animal study"]
    assert join_titles(pd.DataFrame({C.DOCID: ["a"], C.TITLE: ["T"]}))[C.TEXT].tolist() == ["T"]


def test_load_a_beir_layout(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """BEIR: corpus.jsonl (``_id``, title, text, metadata), queries.jsonl and
    qrels/test.tsv with its ``query-id corpus-id score`` header."""
    root = tmp_path / "beir"
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text(
        '{"_id": "d1", "title": "Zebra herds", "text": "they migrate", "metadata": {}}\n'
        '{"_id": "d2", "title": "", "text": "boil the pasta", "metadata": {"url": "x"}}\n'
    )
    (root / "queries.jsonl").write_text(
        '{"_id": "q1", "text": "zebra", "metadata": {}}\n{"_id": "q2", "text": "pasta"}\n'
    )
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t2\nq2\td2\t1\n")
    (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq2\td1\t1\n")
    with caplog.at_level("WARNING"):
        col = load_trec(root)
    assert "read from test.tsv" in caplog.text and "train.tsv not read" in caplog.text
    assert col.docs[C.TEXT].tolist() == ["Zebra herds. they migrate", "boil the pasta"]
    assert sorted(zip(col.qrels[C.QID], col.qrels[C.DOCID], col.qrels[C.GRADE], strict=True)) == [
        ("q1", "d1", 2),
        ("q2", "d2", 1),
    ]
    assert "q2" in col.queries[C.QID].tolist()
    # Without a test split its one other file is read; two others are refused by name.
    (root / "qrels" / "test.tsv").unlink()
    assert load_trec(root).qrels[C.DOCID].tolist() == ["d1"]
    # queries.jsonl holds every split's queries: only the ones the split read judges stay.
    with open(root / "queries.jsonl", "a") as fh:
        fh.write('{"_id": "q3", "text": "zebra again"}\n')
    assert load_trec(root).queries[C.QID].tolist() == ["q2"]
    (root / "qrels" / "extra.tsv").write_text("q1\td2\t1\n")
    assert load_trec(root).qrels[C.QID].tolist() == ["q2"]  # train.tsv, before other names
    (root / "qrels" / "train.tsv").unlink()
    (root / "qrels" / "more.tsv").write_text("q1\td2\t1\n")
    with pytest.raises(FileNotFoundError, match="keep one"):
        load_trec(root)
    # A BEIR qrels line with a missing field is named like a TREC one.
    (root / "qrels" / "more.tsv").unlink()
    (root / "qrels" / "extra.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td2\t1\nq1\td1\n")
    with pytest.raises(DataFormatError, match="expected 3 fields") as err:
        load_trec(root)
    assert "extra.tsv" in str(err.value) and "line 3" in str(err.value)


@pytest.mark.parametrize(
    ("filename", "content", "message", "line"),
    [
        (
            "docs.tsv",
            "d1\ttext one\nd2\ttext\textra\tfield\n",
            "expected 2 tab-separated fields",
            2,
        ),
        ("docs.tsv", "d1\ttext one\nd1\ttext two\n", "duplicate id 'd1'", 2),
        ("docs.tsv", "d1\ttext one\nd2\t   \n", "empty text", 2),
        ("queries.tsv", "q1\tfine\nq2\n", "expected 2", 2),
        ("qrels", "q1 0 d1 1\nq1 0 d1\n", "expected 4 fields", 2),
        ("qrels", "q1 0 d1 x\n", "not an integer", 1),
        ("qrels", "q1 0 d1 1\nq1 0 d1 2\n", "judged twice", 2),
        ("qrels", "q1 0 d1 1\nq1 0 zz 1\n", "unknown docid", 2),
        ("qrels", "q9 0 d1 1\n", "unknown qid", 1),
    ],
)
def test_trec_bad_files_name_file_and_line(
    tmp_path: Path, filename: str, content: str, message: str, line: int
) -> None:
    root = tmp_path / "bad"
    root.mkdir()
    (root / "docs.tsv").write_text("d1\ttext one\nd2\ttext two\n")
    (root / "queries.tsv").write_text("q1\tquery one\n")
    (root / "qrels").write_text("q1 0 d1 1\n")
    (root / filename).write_text(content)
    with pytest.raises(DataFormatError, match=message) as err:
        load_trec(root)
    assert filename in str(err.value)
    assert f"line {line}" in str(err.value)


def test_bad_json_line(tmp_path: Path) -> None:
    root = tmp_path / "j"
    root.mkdir()
    (root / "docs.jsonl").write_text('{"docid": "a", "text": "x"}\n{not json}\n')
    (root / "queries.tsv").write_text("q\tx\n")
    (root / "qrels").write_text("")
    with pytest.raises(DataFormatError, match=r"line 2.*invalid JSON"):
        load_trec(root)


@pytest.fixture
def archive_server(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A loopback HTTP server serving a small NFCorpus-like tar.gz."""
    src = _write_nfcorpus(tmp_path / "src" / "nfcorpus")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(src, arcname="nfcorpus")
    payload = buf.getvalue()
    sums = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in src.iterdir()}
    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/nfcorpus.tar.gz", sums, hits
    finally:
        server.shutdown()


def test_download_once_with_checksums(tmp_path: Path, archive_server) -> None:
    url, sums, hits = archive_server
    cache = tmp_path / "cache"
    root = fetch_nfcorpus(cache, url=url, checksums=sums)
    assert (root / "dev.docs").exists()
    assert load_nfcorpus(root).n_docs == 3
    again = fetch_nfcorpus(cache, url=url, checksums=sums)
    assert again == root
    assert len(hits) == 1  # the second call downloads nothing


def test_download_checksum_mismatch_keeps_nothing(tmp_path: Path, archive_server) -> None:
    url, sums, _ = archive_server
    bad = dict(sums, **{"dev.docs": "0" * 64})
    cache = tmp_path / "cache"
    with pytest.raises(ChecksumError, match=r"dev\.docs"):
        fetch_nfcorpus(cache, url=url, checksums=bad)
    assert not (cache / "nfcorpus").exists()


def test_resolve_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _write_nfcorpus(tmp_path / "datasets" / "nfcorpus")
    assert resolve_nfcorpus_dir(root) == root
    assert resolve_nfcorpus_dir(tmp_path / "datasets") == root
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "datasets"))
    assert resolve_nfcorpus_dir(None) == root
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="HYBRIDRANK_DATA"):
        resolve_nfcorpus_dir(None)
