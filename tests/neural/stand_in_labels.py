"""A stand-in for the annotation issue's embedding judge, for tests and benchmarks only.

MiniLM cosine and BM25 are rank-averaged within each query and the averaged
rank percentile is cut into grades 0-3 at fixed quantiles (0.5, 0.75, 0.9):
the recipe DESIGN.md names for the embedded judge ("MiniLM cosine fused with
BM25 by rank averaging, mapped to 0-3 by quantiles").
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hybridrank import columns as C

CUTS = (0.5, 0.75, 0.9)


def stand_in_llm_labels(
    table: pd.DataFrame, cosine: np.ndarray, cuts: tuple[float, ...] = CUTS
) -> np.ndarray:
    """Grades 0-3 per row of ``table`` (needs ``qid`` and ``bm25``) from ``cosine``, shape ``(n,)``."""
    frame = pd.DataFrame(
        {
            C.QID: table[C.QID].to_numpy(),
            "cos": np.asarray(cosine),
            "bm25": table[C.BM25].to_numpy(),
        }
    )
    by = frame.groupby(C.QID, sort=False)
    fused = by["cos"].rank(pct=True) + by["bm25"].rank(pct=True)
    pct = fused.groupby(frame[C.QID], sort=False).rank(pct=True).to_numpy()
    return np.digitize(pct, cuts).astype(np.float64)
