"""Cross-encoder scoring speed: hybridrank's scorer against the raw sentence-transformers call.

Same model (the packaged MiniLM as a cross-encoder; the head is untrained,
which does not change the cost), same pairs, same batch size and sequence
length. Each side is timed alternately (hybridrank, raw, hybridrank, ...) and
the best of --repeat runs is kept, so load spikes hit both sides alike.
Pairs: NFCorpus queries and abstracts where ../shared/datasets holds them,
else synthetic text of the same length. Also reports the ONNX backend
(sentence-transformers' ``backend="onnx"``, needs optimum-onnx) where it can
be loaded, and pairs per second on CUDA where a GPU is visible.

Usage: python bench/neural.py [--pairs 512] [--batch-size 32] [--max-length 128] [--repeat 3]
Ends with: RESULT neural_ce_predict_speed_ratio <hybridrank / raw pairs per s> target >= 0.95 : met|missed
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import time
from collections.abc import Callable

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def make_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = np.random.default_rng(seed)
    try:
        from hybridrank.pipelines import WorldConfig, load_collection

        collection, _ = load_collection(WorldConfig().data)
        docs = collection.docs["text"].tolist()
        queries = collection.queries["text"].tolist()
        source = "NFCorpus"
    except (FileNotFoundError, OSError, ValueError):
        words = [f"word{i}" for i in range(3000)]
        docs = [" ".join(rng.choice(words, 200)) for _ in range(n)]
        queries = [" ".join(rng.choice(words, 4)) for _ in range(n // 8 + 1)]
        source = "synthetic"
    qi = rng.integers(0, len(queries), n)
    di = rng.integers(0, len(docs), n)
    print(f"pairs: {n} from {source}")
    return [(queries[a], docs[b]) for a, b in zip(qi, di, strict=True)]


def pairs_per_s(fn: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    fn()
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import torch
    from sentence_transformers import CrossEncoder

    from hybridrank.neural import CrossEncoderRanker, packaged_minilm_path

    pairs = make_pairs(args.pairs)
    path = packaged_minilm_path()
    print(
        f"model: {path}; batch {args.batch_size}, max length {args.max_length}; "
        f"torch threads {torch.get_num_threads()}"
    )

    ours = CrossEncoderRanker.pretrained(
        device="cpu", batch_size=args.batch_size, max_seq_length=args.max_length, model_path=path
    )
    raw = CrossEncoder(
        path, num_labels=1, max_length=args.max_length, device="cpu", local_files_only=True
    )
    # the head is new in both; give the raw model hybridrank's weights so the scores match
    raw[0].load_state_dict(ours.model_[0].state_dict())

    def run_ours() -> object:
        return ours.predict(pairs, show_progress_bar=False)

    def run_raw() -> object:
        return raw.predict(pairs, batch_size=args.batch_size, show_progress_bar=False)

    np.testing.assert_allclose(
        run_ours(), run_raw(), rtol=1e-4, atol=1e-5
    )  # same model, same scores
    best = {"hybridrank": 0.0, "raw": 0.0}
    for _ in range(args.repeat):
        best["hybridrank"] = max(best["hybridrank"], pairs_per_s(run_ours, len(pairs)))
        best["raw"] = max(best["raw"], pairs_per_s(run_raw, len(pairs)))
    ratio = best["hybridrank"] / best["raw"]
    print(f"cpu  hybridrank CrossEncoderRanker.predict: {best['hybridrank']:8.1f} pairs/s")
    print(
        f"cpu  raw CrossEncoder.predict:             {best['raw']:8.1f} pairs/s  (ratio {ratio:.3f})"
    )

    if importlib.util.find_spec("optimum") is None:
        print(
            "onnx: not measured; sentence-transformers' ONNX backend needs optimum-onnx, not installed"
        )
    else:
        for backend in ("onnx", "onnx-int8"):
            try:
                onnx = CrossEncoderRanker.pretrained(
                    device="cpu",
                    batch_size=args.batch_size,
                    max_seq_length=args.max_length,
                    backend=backend,
                )
                pps = max(
                    pairs_per_s(
                        lambda o=onnx: o.predict(pairs, show_progress_bar=False), len(pairs)
                    )  # type: ignore[misc]
                    for _ in range(args.repeat)
                )
                print(
                    f"cpu  {backend}: {pps:8.1f} pairs/s  (ratio to torch {pps / best['hybridrank']:.3f})"
                )
            except Exception as exc:  # a report line, not a crash: the backend is optional
                print(f"{backend}: could not load ({type(exc).__name__}: {exc})")

    if torch.cuda.is_available():
        gpu = CrossEncoderRanker.pretrained(
            device="cuda",
            batch_size=args.batch_size,
            max_seq_length=args.max_length,
            model_path=path,
        )
        gpu.predict(pairs, show_progress_bar=False)  # warm-up
        pps = max(
            pairs_per_s(lambda: gpu.predict(pairs, show_progress_bar=False), len(pairs))
            for _ in range(args.repeat)
        )
        print(f"cuda hybridrank CrossEncoderRanker.predict (bf16 autocast): {pps:8.1f} pairs/s")
    else:
        print("cuda: not measured (no GPU visible)")

    verdict = "met" if ratio >= 0.95 else "missed"
    print(f"RESULT neural_ce_predict_speed_ratio {ratio:.3f} target >= 0.95 : {verdict}")


if __name__ == "__main__":
    main()
