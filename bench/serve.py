"""Online ranking latency: HybridRanker.rank for one query and 100 documents against the raw model calls.

Two bundles are built on synthetic data (no downloads, no ../shared):

* GBDT only: a LightGBM LambdaMART (300 trees, 31 leaves) on the 22 click
  features and 5 text features, with its click-feature store (2,000 queries,
  100 documents each). hybridrank's path: look the click features up in the
  store, assemble the matrix in schema order, predict, sort. The reference:
  ``booster.predict`` on the same matrix, built beforehand.
* Fused: that GBDT plus the packaged MiniLM bi-encoder with stored document
  embeddings, gated by frequency. hybridrank's path adds one query encoding,
  the gate and the per-query z-scores. The reference: ``booster.predict`` plus
  ``SentenceTransformer.encode`` of the query plus the dot products.

Each request is timed alone (time.perf_counter) after warm-up, single thread
(the serving setting: one request per core).

Usage: python bench/serve.py [--requests 400]
Ends with: RESULT serve_fused_p50_ratio <hybridrank / raw calls> target <= 1.2 : met|missed
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pandas as pd

from hybridrank import columns as C
from hybridrank.ensemble import SigmoidGate
from hybridrank.features import (
    CLICK_FEATURES,
    DOC_FEATURES,
    PAIR_FEATURES,
    QUERY_FEATURES,
    TEXT_FEATURES,
    ClickFeatures,
    FeatureSchema,
)
from hybridrank.gbdt import LambdaMARTConfig, LambdaMARTRanker, write_manifest
from hybridrank.serve import ClickFeatureStore, HybridRanker, build_hybrid_bundle

N_QUERIES, PER_QUERY, N_DOCS = 2_000, 100, 50_000
N_TIMED_QUERIES = 5


def synthetic(seed: int = 0) -> tuple[pd.DataFrame, ClickFeatures, list[str]]:
    rng = np.random.default_rng(seed)
    qid = np.repeat([f"q{i}" for i in range(N_QUERIES)], PER_QUERY)
    docid = np.array([f"d{i}" for i in rng.integers(0, N_DOCS, qid.size)], dtype=object)
    # Unique (qid, docid) pairs: re-draw duplicates by suffixing the row number.
    dup = pd.DataFrame({"q": qid, "d": docid}).duplicated().to_numpy()
    docid[dup] = [f"{d}x{i}" for i, d in zip(np.flatnonzero(dup), docid[dup], strict=True)]
    pairs = pd.DataFrame({C.QID: qid, C.DOCID: docid})
    for name in PAIR_FEATURES:
        pairs[name] = rng.gamma(1.0, 1.0, qid.size)
    docs = pd.DataFrame({C.DOCID: pd.unique(docid)})
    for name in DOC_FEATURES:
        docs[name] = rng.gamma(1.0, 1.0, len(docs))
    queries = pd.DataFrame({C.QID: pd.unique(qid)})
    for name in QUERY_FEATURES:
        queries[name] = rng.gamma(1.0, 5.0, len(queries))
    table = pairs[[C.QID, C.DOCID]].copy()
    for name in TEXT_FEATURES:
        table[name] = rng.normal(size=len(table))
    table = table.merge(pairs, on=[C.QID, C.DOCID]).merge(docs, on=C.DOCID).merge(queries, on=C.QID)
    signal = table["qd_ctr"] + table[C.BM25] + rng.normal(0, 1, len(table))
    table[C.Y_CLICK] = np.digitize(signal, np.quantile(signal, [0.6, 0.85, 0.95]))
    return (
        table,
        ClickFeatures(pairs=pairs, docs=docs, queries=queries),
        [*CLICK_FEATURES, *TEXT_FEATURES],
    )


def build(root: Path) -> tuple[Path, Path, pd.DataFrame, pd.DataFrame]:
    table, feats, names = synthetic()
    gbdt = root / "gbdt"
    ranker = LambdaMARTRanker(
        LambdaMARTConfig(n_estimators=300, num_leaves=31, early_stopping_rounds=None, n_jobs=1)
    ).fit(table[names], table[C.Y_CLICK], qid=table[C.QID].to_numpy())
    ranker.save(gbdt / "model")
    FeatureSchema.from_frame(table, names).save(gbdt / "schema.json")
    ClickFeatureStore(feats).save(gbdt / "click_features")
    write_manifest(gbdt)

    from hybridrank.neural import BiEncoderRanker

    neural = root / "neural"
    BiEncoderRanker.pretrained(device="cpu", max_seq_length=128).save(neural / "model")
    timed = table.loc[table[C.QID].isin([f"q{i}" for i in range(N_TIMED_QUERIES)])]
    docs = pd.DataFrame({C.DOCID: timed[C.DOCID].unique()})
    docs[C.TEXT] = [f"clinical study {d} of vitamin intake and bone density" for d in docs[C.DOCID]]
    hybrid = build_hybrid_bundle(
        gbdt, neural, root / "hybrid", gate=SigmoidGate(1.5, 2.0), docs=docs, device="cpu"
    )
    request = timed.drop(columns=[*CLICK_FEATURES, C.Y_CLICK])
    return gbdt, hybrid, request, table.loc[timed.index]


def percentiles(ms: list[float]) -> tuple[float, float]:
    a = np.asarray(ms)
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=400, help="timed requests per path")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="hr-serve-") as tmp:
        start = time.perf_counter()
        gbdt_dir, hybrid_dir, request, full = build(Path(tmp))
        print(f"built the bundles in {time.perf_counter() - start:.0f}s")
        gbdt = HybridRanker.load(gbdt_dir)
        fused = HybridRanker.load(hybrid_dir, device="cpu")
        qids = [f"q{i}" for i in range(N_TIMED_QUERIES)]
        req = {q: request.loc[request[C.QID] == q].reset_index(drop=True) for q in qids}
        names = list(gbdt.click.schema.names)
        X = {q: full.loc[full[C.QID] == q, names].to_numpy(np.float32) for q in qids}
        booster = gbdt.click.ranker.booster_
        n_iter = gbdt.click.ranker.best_iteration_
        assert fused.llm is not None
        neural = fused.llm[0]  # the bundle's one LLM model, the bi-encoder
        st = neural.ranker.model_  # type: ignore[attr-defined]
        emb_rows = {
            q: np.asarray([neural.doc_row[d] for d in req[q][C.DOCID]])  # type: ignore[attr-defined]
            for q in qids
        }
        emb = neural.doc_emb  # type: ignore[attr-defined]
        text = "vitamin d and bone density"

        def raw_gbdt(q: str) -> None:
            s = booster.predict(X[q], num_iteration=n_iter)
            np.argsort(-s)

        def raw_fused(q: str) -> None:
            s = booster.predict(X[q], num_iteration=n_iter)
            qv = st.encode([text], convert_to_numpy=True, normalize_embeddings=True)[0]
            llm = emb[emb_rows[q]] @ qv
            np.argsort(-(s + llm))

        paths = {
            "gbdt: hybridrank rank": lambda q: gbdt.rank(q, req[q]),
            "gbdt: raw booster.predict": raw_gbdt,
            "fused: hybridrank rank": lambda q: fused.rank(q, req[q], {"text": text}),
            "fused: raw predict + encode": raw_fused,
        }
        results: dict[str, tuple[float, float]] = {}
        for name, fn in paths.items():
            for q in qids:  # warm-up
                fn(q)
            ms = []
            for i in range(args.requests):
                q = qids[i % len(qids)]
                t = time.perf_counter()
                fn(q)
                ms.append((time.perf_counter() - t) * 1e3)
            results[name] = percentiles(ms)
        # The fused ranking agrees with the raw pieces it is made of.
        check = fused.rank(qids[0], req[qids[0]], {"text": text})
        raw = booster.predict(X[qids[0]], num_iteration=n_iter)
        np.testing.assert_allclose(np.sort(check.components["click"]), np.sort(raw), rtol=1e-6)

    print(f"\n{'path (100 documents, one query)':<34}{'p50 ms':>9}{'p99 ms':>9}")
    for name, (p50, p99) in results.items():
        print(f"{name:<34}{p50:>9.3f}{p99:>9.3f}")
    g_ratio = results["gbdt: hybridrank rank"][0] / results["gbdt: raw booster.predict"][0]
    f_ratio = results["fused: hybridrank rank"][0] / results["fused: raw predict + encode"][0]
    print(f"\np50 ratio hybridrank / raw: GBDT only {g_ratio:.2f}, fused {f_ratio:.2f}")
    verdict = "met" if f_ratio <= 1.2 else "missed"
    print(f"RESULT serve_fused_p50_ratio {f_ratio:.2f} target <= 1.2 : {verdict}")


if __name__ == "__main__":
    main()
