from __future__ import annotations

import numpy as np
import pytest


def make_ranking(
    n_queries: int = 60, docs: tuple[int, int] = (5, 30), n_features: int = 8, *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Synthetic LTR data: labels 0-3 from a noisy linear score of the features."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(docs[0], docs[1], n_queries)
    qid = np.repeat(np.arange(n_queries), sizes)
    X = rng.normal(size=(qid.size, n_features)).astype(np.float32)
    w = rng.normal(size=n_features)
    latent = X @ w + rng.normal(0, 1.0, qid.size)
    y = np.digitize(latent, np.quantile(latent, [0.5, 0.8, 0.95])).astype(np.int32)
    return X, y, qid


@pytest.fixture(scope="module")
def ranking_data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return make_ranking()
