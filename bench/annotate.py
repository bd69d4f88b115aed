"""Annotation throughput: a fully cached rerun, and the embedding judge against its raw encode calls.

1. Cached rerun: 100,000 distinct pairs answered once by a scripted backend,
   then annotated again: every answer comes from the SQLite cache (target
   >= 50,000 pairs/s).
2. Embedding judge: pairs from NFCorpus (../shared/datasets, else synthetic
   text) annotated through the runner, cache and all, against the same
   sentence-transformers ``encode`` calls made directly on the same texts
   (target ratio >= 0.9). Both sides use a cold embedding memo.

Usage: python bench/annotate.py [--pairs 100000] [--judge-pairs 2000]
Ends with: RESULT annotate_embedding_ratio <ours / raw pairs per second> target >= 0.9 : met|missed
(the cached-rerun figure is printed as its own RESULT line just before).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--judge-pairs", type=int, default=2000)
    args = parser.parse_args()

    from hybridrank.labels.llm import (
        PROMPT_VERSION,
        Annotator,
        AnswerCache,
        EmbeddingJudge,
        Judgment,
        Pair,
        annotate_pairs,
    )

    class Scripted(Annotator):
        backend = "scripted"

        @property
        def model(self) -> str:
            return "bench"

        @property
        def prompt_version(self) -> str:
            return PROMPT_VERSION

        def annotate(self, pairs: Sequence[Pair]) -> list[Judgment]:
            return [Judgment(grade=len(p.document) % 4, raw="Grade: 1") for p in pairs]

    pairs = [
        Pair(f"q{i // 50}", f"d{i}", f"query {i // 50}", f"document text {i}")
        for i in range(args.pairs)
    ]
    with tempfile.TemporaryDirectory() as tmp, AnswerCache(Path(tmp) / "cache.sqlite") as cache:
        start = time.perf_counter()
        annotate_pairs(Scripted(), pairs, cache, batch_size=1000, progress=False)
        first = time.perf_counter() - start
        start = time.perf_counter()
        _, stats = annotate_pairs(Scripted(), pairs, cache, batch_size=1000, progress=False)
        cached = time.perf_counter() - start
    assert stats.cached == args.pairs and stats.new == 0
    rate = args.pairs / cached
    print(
        f"{args.pairs:,} pairs: first run {first:.2f}s, fully cached rerun {cached:.2f}s = {rate:,.0f} pairs/s"
    )
    print(
        f"RESULT annotate_cached_pairs_per_s {rate:.0f} target >= 50000 : {'met' if rate >= 50_000 else 'missed'}"
    )

    # --- embedding judge against raw encode calls
    shared = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "nfcorpus"
    if (shared / "dev.docs").exists():
        docs = [
            line.split("\t", 1)[1].strip()
            for line in (shared / "dev.docs").read_text().splitlines()[:400]
        ]
        queries = [
            line.split("\t", 1)[1].strip()
            for line in (shared / "dev.titles.queries").read_text().splitlines()[:40]
        ]
        source = "NFCorpus dev"
    else:
        rng = np.random.default_rng(0)
        words = [f"w{i}" for i in range(2000)]
        docs = [" ".join(rng.choice(words, 150)) for _ in range(400)]
        queries = [" ".join(rng.choice(words, 4)) for _ in range(40)]
        source = "synthetic"
    jp = [
        Pair(f"q{i % 40}", f"d{i}", queries[i % 40], docs[(i * 7) % 400])
        for i in range(args.judge_pairs)
    ]
    batch = 64

    judge = EmbeddingJudge(batch_size=batch)
    model = judge.encoder()
    model.encode(["warm up"], batch_size=batch)
    with tempfile.TemporaryDirectory() as tmp, AnswerCache(Path(tmp) / "c.sqlite") as cache:
        start = time.perf_counter()
        annotate_pairs(judge, jp, cache, batch_size=len(jp), progress=False)
        ours = time.perf_counter() - start

    texts_q = list(dict.fromkeys(p.query for p in jp))
    texts_d = list(dict.fromkeys(p.document for p in jp))
    start = time.perf_counter()
    qi = {t: i for i, t in enumerate(texts_q)}
    di = {t: i for i, t in enumerate(texts_d)}
    views = []
    for length in judge.views:  # the judge's views: head and body, the larger cosine
        model.max_seq_length = length
        q = model.encode(texts_q, batch_size=batch, normalize_embeddings=True, convert_to_numpy=True)
        d = model.encode(texts_d, batch_size=batch, normalize_embeddings=True, convert_to_numpy=True)
        views.append(np.einsum("ij,ij->i", q[[qi[p.query] for p in jp]], d[[di[p.document] for p in jp]]))
    np.max(np.stack(views), axis=0)
    raw = time.perf_counter() - start

    ratio = raw / ours
    print(
        f"embedding judge on {len(jp):,} {source} pairs ({len(texts_q)} queries, {len(texts_d)} documents): "
        f"hybridrank {len(jp) / ours:,.0f} pairs/s, raw encode {len(jp) / raw:,.0f} pairs/s"
    )
    print(
        f"RESULT annotate_embedding_ratio {ratio:.2f} target >= 0.9 : {'met' if ratio >= 0.9 else 'missed'}"
    )


if __name__ == "__main__":
    main()
