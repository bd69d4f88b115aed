"""The CUDA paths against CPU on the same data: XGBoost and LightGBM LambdaMART, the neural model in bf16.

One short script for a lent GPU machine (DEVELOPERS.md): each section times
the same work on CPU and on CUDA and prints the ratio, and checks that the
two devices agree in quality (NDCG@10 within 0.01 for the GBDTs; score
correlation for the neural model, bf16 against fp32).

* XGBoost ``device="cuda"`` LambdaMART, 200 rounds on 300,000 rows x 60 features.
* LightGBM ``device_type="cuda"``, only if this LightGBM was built with CUDA
  (the PyPI wheel is not; the script says so).
* The cross-encoder (packaged MiniLM) scoring 4,096 pairs, and 20 training
  steps of the bi-encoder, on CUDA with bf16 autocast against CPU.

Without CUDA it prints what it would run and ends with a ``missed`` line
saying so, never an invented number.

Usage: python bench/gpu.py [--rows 300000]
Ends with: RESULT gpu_xgboost_speedup <cpu seconds / cuda seconds> target >= 3.0 : met|missed
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np

Split = tuple[np.ndarray, np.ndarray, np.ndarray]


def ltr_data(
    n_rows: int, n_features: int = 60, per_query: int = 50, seed: int = 0
) -> tuple[Split, Split]:
    rng = np.random.default_rng(seed)
    n_q = n_rows // per_query
    qid = np.repeat(np.arange(n_q), per_query)
    X = rng.normal(size=(qid.size, n_features)).astype(np.float32)
    w = rng.normal(size=n_features)
    latent = X @ w + rng.normal(0, 2.0, qid.size)
    y = np.digitize(latent, np.quantile(latent, [0.6, 0.85, 0.95])).astype(np.int32)
    test = qid % 5 == 0
    return (X[~test], y[~test], qid[~test]), (X[test], y[test], qid[test])


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def gbdt_section(engine: str, n_rows: int) -> tuple[float, float] | None:
    from hybridrank.evaluate import ndcg_at_k
    from hybridrank.gbdt import LambdaMARTConfig, LambdaMARTRanker
    from hybridrank.gbdt._device import lightgbm_has_cuda

    if engine == "lightgbm" and not lightgbm_has_cuda():
        print("lightgbm: this build has no CUDA tree learner (the PyPI wheel); skipped")
        return None
    train, test = ltr_data(n_rows)
    # CUDA context creation and kernel loading happen once per process: not timed.
    warm = LambdaMARTConfig(
        engine=engine, n_estimators=2, early_stopping_rounds=None, device="cuda"
    )
    LambdaMARTRanker(warm).fit(train[0][:5000], train[1][:5000], qid=train[2][:5000])
    seconds, ndcg = {}, {}
    for device in ("cpu", "cuda"):
        cfg = LambdaMARTConfig(
            engine=engine, n_estimators=200, early_stopping_rounds=None, device=device
        )
        t, model = timed(
            lambda cfg=cfg: LambdaMARTRanker(cfg).fit(train[0], train[1], qid=train[2])
        )
        seconds[device] = t
        ndcg[device] = float(
            np.nanmean(ndcg_at_k(model.predict(test[0]), test[1], qid=test[2], k=10))
        )
        print(f"{engine:<9} {device:<5} train {t:7.2f}s   test NDCG@10 {ndcg[device]:.4f}")
    ratio = seconds["cpu"] / seconds["cuda"]
    gap = abs(ndcg["cpu"] - ndcg["cuda"])
    print(
        f"{engine:<9} speed-up cpu/cuda {ratio:.2f}; NDCG gap {gap:.4f} ({'ok' if gap <= 0.01 else 'TOO LARGE'})"
    )
    return ratio, gap


def neural_section() -> None:
    import torch

    from hybridrank.neural import BiEncoderRanker, CrossEncoderRanker

    rng = np.random.default_rng(0)
    words = ["vitamin", "bone", "density", "cancer", "diet", "fiber", "statin", "risk", "trial"]
    queries = [" ".join(rng.choice(words, 3)) for _ in range(64)]
    docs = [" ".join(rng.choice(words, 120)) for _ in range(64)]
    pairs = [(q, d) for q in queries for d in docs]  # 4,096 pairs
    scores = {}
    for device, n in (("cpu", 256), ("cuda", len(pairs))):
        # The head is freshly initialised: the same seed gives both devices the same head,
        # so their scores are comparable.
        torch.manual_seed(0)
        ce = CrossEncoderRanker.pretrained(device=device, max_seq_length=256, batch_size=128)
        ce.predict(pairs[:128])  # warm-up (CUDA context, kernels)
        if device == "cuda":
            torch.cuda.synchronize()
        t, s = timed(lambda ce=ce, n=n: ce.predict(pairs[:n]))
        scores[device] = s[:256]
        print(f"cross-encoder {device:<5} {n / t:9.1f} pairs/s  ({n} pairs, bf16 on cuda)")
    corr = float(np.corrcoef(scores["cpu"], scores["cuda"])[0, 1])
    verdict = "ok" if corr >= 0.98 else "TOO LOW"
    print(f"cross-encoder bf16 (cuda) vs fp32 (cpu) score correlation {corr:.4f} ({verdict})")
    y = rng.integers(0, 4, len(pairs)).astype(float)
    qid = np.repeat(np.arange(len(queries)), len(docs))
    # The bi-encoder timings include loading MiniLM (about a second on either device).
    for device in ("cpu", "cuda"):
        bi = BiEncoderRanker(
            device=device, epochs=1, max_seq_length=128, batch_size=32,
            subsample_queries=10, validation_fraction=0.0,
        )  # fmt: skip
        t, _ = timed(
            lambda bi=bi: bi.fit(
                pairs[: 10 * len(docs)], y[: 10 * len(docs)], qid=qid[: 10 * len(docs)]
            )
        )
        print(f"bi-encoder    {device:<5} fit {10 * len(docs)} pairs in {t:6.2f}s")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=300_000)
    args = parser.parse_args()
    import torch

    from hybridrank.gbdt._device import cuda_visible

    if not cuda_visible() or not torch.cuda.is_available():
        why = "nvidia-smi sees no GPU" if not cuda_visible() else "this torch has no CUDA"
        print(f"no usable CUDA device ({why}): nothing to time on this machine.")
        print("On a GPU machine this runs XGBoost and LightGBM LambdaMART and the neural")
        print("model on CPU and CUDA and prints the speed-ups.")
        print("RESULT gpu_xgboost_speedup nan target >= 3.0 : missed")
        return
    print(f"device: {torch.cuda.get_device_name(0)}")
    xgb = gbdt_section("xgboost", args.rows)
    gbdt_section("lightgbm", args.rows)
    neural_section()
    assert xgb is not None
    ratio, gap = xgb
    verdict = "met" if ratio >= 3.0 and gap <= 0.01 else "missed"
    print(f"RESULT gpu_xgboost_speedup {ratio:.2f} target >= 3.0 : {verdict}")


if __name__ == "__main__":
    main()
