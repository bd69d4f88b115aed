"""Shared fixtures: a seeded rng, tiny synthetic collections and worlds, and marker handling."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hybridrank import columns as C
from hybridrank.data import Collection

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SHARED = (Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets").resolve()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    no_shared = pytest.mark.skip(reason=f"{SHARED} not present")
    no_cuda = pytest.mark.skip(reason="CUDA not available")
    cuda = _cuda_available()
    for item in items:
        if "shared_data" in item.keywords and not SHARED.is_dir():
            item.add_marker(no_shared)
        if "gpu" in item.keywords and not cuda:
            item.add_marker(no_cuda)


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL database on loopback: the one .ci/run started, or a private server.

    ``HYBRIDRANK_TEST_POSTGRES`` names a running server (CI sets it). Without
    it a server is started from the installed binaries for this session and
    stopped afterwards; without binaries the test is skipped (failed in CI).
    """
    url = os.environ.get("HYBRIDRANK_TEST_POSTGRES")
    if url:
        yield url
        return
    script = Path(__file__).resolve().parents[1] / ".ci" / "postgres.sh"
    # PostgreSQL runs as its own user, which cannot enter pytest's private tmp dirs.
    data = Path(tempfile.mkdtemp(prefix="hr-pg-"))
    started = subprocess.run(
        ["bash", str(script), "start", str(data)], capture_output=True, text=True
    )
    if started.returncode != 0:
        shutil.rmtree(data, ignore_errors=True)
        if os.environ.get("CI") == "true":
            pytest.fail(f"no PostgreSQL in CI: {started.stderr.strip()}")
        pytest.skip(f"no PostgreSQL server: {started.stderr.strip()}")
    try:
        yield started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run(["bash", str(script), "stop", str(data)], check=False)
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="session")
def _answer_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hybridrank-cache")


@pytest.fixture(autouse=True)
def _isolated_answer_cache(monkeypatch: pytest.MonkeyPatch, _answer_cache_dir: Path) -> None:
    """Point the shared answer cache (``$HYBRIDRANK_CACHE``) at a per-session tmp dir.

    Workflows default to ``$HYBRIDRANK_CACHE/annotations.sqlite``; without this
    a test run would write the user's ``~/.cache/hybridrank``. A value already
    set (CI, a developer's choice) is kept.
    """
    if not os.environ.get("HYBRIDRANK_CACHE"):
        monkeypatch.setenv("HYBRIDRANK_CACHE", str(_answer_cache_dir))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    return SHARED


def make_scored_table(n_q: int = 200, per: int = 8, n_tuning: int = 40, seed: int = 0) -> pd.DataFrame:
    """Out-of-fold-like expert scores for the stacker's tests: ``n_q`` queries of ``per``
    candidates, random grades, click-GBDT informative on frequent queries, LLM-GBDT
    everywhere (noisier), FAMOL a mix; the first ``n_tuning`` queries are the tuning set."""
    from hybridrank.data import TUNING

    rng = np.random.default_rng(seed)
    qid = np.repeat([f"q{i:03d}" for i in range(n_q)], per)
    freq_q = rng.choice([0, 1, 5, 50], size=n_q, p=[0.4, 0.2, 0.3, 0.1])
    bucket_q = np.where(freq_q >= 20, "high", np.where(freq_q >= 3, "mid", "low"))
    y = rng.integers(0, 4, qid.size).astype(float)
    freq = np.repeat(freq_q, per)
    click = np.where(freq >= 5, y, 0) + rng.normal(0, 1, qid.size)
    llm = y + rng.normal(0, 1.5, qid.size)
    return pd.DataFrame({
        C.QID: qid, C.Y_EXPERT: y, C.FREQ: freq, C.BUCKET: np.repeat(bucket_q, per),
        C.FOLD: np.repeat(np.arange(n_q) % 5, per), TUNING: np.repeat(np.arange(n_q) < n_tuning, per),
        "click_gbdt": click, "llm_gbdt": llm, "famol": 0.5 * click + llm,
    })  # fmt: skip


def make_collection(
    n_queries: int = 40, n_docs: int = 300, *, seed: int = 0, vocab_size: int = 400
) -> Collection:
    """A small topical collection: each query has 3 topic words; documents that
    use more of a query's words get higher grades, so BM25 works but is imperfect."""
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(vocab_size)])
    topics = (
        rng.choice(vocab_size, size=(n_queries, 3), replace=False)
        if vocab_size >= n_queries * 3
        else (rng.integers(0, vocab_size, size=(n_queries, 3)))
    )
    doc_topic = rng.integers(0, n_queries, size=n_docs)
    docs, qrels = [], []
    for d in range(n_docs):
        t = doc_topic[d]
        n_topic = int(rng.integers(0, 4))
        words = list(vocab[rng.integers(0, vocab_size, size=int(rng.integers(8, 30)))])
        words += list(vocab[topics[t][:n_topic]]) * int(rng.integers(1, 3))
        rng.shuffle(words)
        docs.append((f"D{d}", " ".join(words)))
        if n_topic > 0:
            qrels.append((f"Q{t}", f"D{d}", n_topic))
    queries = [(f"Q{q}", " ".join(vocab[topics[q]])) for q in range(n_queries)]
    return Collection(
        name="tiny",
        docs=pd.DataFrame(docs, columns=[C.DOCID, C.TEXT]),
        queries=pd.DataFrame(queries, columns=[C.QID, C.TEXT]),
        qrels=pd.DataFrame(qrels, columns=[C.QID, C.DOCID, C.GRADE]).astype({C.GRADE: "int64"}),
    )


@pytest.fixture(scope="session")
def tiny_collection() -> Collection:
    return make_collection()


def world_build_args(
    collection: Collection, tmp_path: Path, *, sessions: int = 300, tuning_queries: int = 5
) -> list[str]:
    """``hybridrank world build`` arguments (all but ``--out``) for a click world over
    ``collection``, written in the TREC layout under ``tmp_path``."""
    import yaml

    root = write_trec_dir(collection, tmp_path / "trec")
    cfg = tmp_path / "w.yaml"
    cfg.write_text(yaml.safe_dump({"world": {"data": {"format": "trec", "path": str(root)}}}))
    return ["world", "build", "--config", str(cfg), "--sessions", str(sessions),
            "--tuning-queries", str(tuning_queries)]  # fmt: skip


def write_trec_dir(collection: Collection, root: Path) -> Path:
    """Write a collection in the generic TREC layout (docs.tsv, queries.tsv, qrels)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "docs.tsv").write_text(
        "".join(
            f"{d}\t{t}\n" for d, t in collection.docs[[C.DOCID, C.TEXT]].itertuples(index=False)
        )
    )
    (root / "queries.tsv").write_text(
        "".join(
            f"{q}\t{t}\n" for q, t in collection.queries[[C.QID, C.TEXT]].itertuples(index=False)
        )
    )
    (root / "qrels").write_text(
        "".join(f"{q} 0 {d} {g}\n" for q, d, g in collection.qrels.itertuples(index=False))
    )
    return root
