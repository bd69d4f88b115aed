"""How much a score-only judge's agreement depends on which queries calibrated it.

A dataset's calibration set is a few dozen labelled queries. The agreement
``annotate report`` prints is measured after calibrating on that one set, so
part of it is the luck of the draw. :func:`calibration_draws` refits the
grader on other random query sets of the same size (the judge's scores stay
as they are) and measures each refit on the queries it did not see.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hybridrank import columns as C
from hybridrank.errors import MissingColumnError
from hybridrank.evaluate import ndcg_at_k
from hybridrank.labels.llm._agreement import expert_top, on_judge_scale, within_unit
from hybridrank.labels.llm._grading import GraderConfig, SemanticGrader, quadratic_kappa

#: Columns of :func:`calibration_draws`' result, one row per draw.
DRAW_COLUMNS = (
    "draw",
    "calibration_queries",
    "pairs",
    "kappa_quadratic",
    "ndcg@10_grades_only",
    "ndcg@10_bm25",
    "grades_only_minus_bm25",
)


def calibration_draws(
    table: pd.DataFrame,
    size: int,
    *,
    draws: int = 10,
    seed: int = 0,
    config: GraderConfig | None = None,
) -> pd.DataFrame:
    """Refit the judge's calibration on ``draws`` random query sets of ``size`` queries.

    Args:
        table: One row per judged pair: ``qid``, ``score`` (the judge's raw
            score), ``bm25``, ``y_expert`` and whatever else the grader reads
            (``term_overlap``). Pairs without a score are left out.
        size: Queries per calibration set (the dataset's tuning set size).
        draws: How many sets.
        seed: Seed of the draws (draw ``i`` uses ``seed + i``).
        config: The grader's options (default: the defaults).

    Returns:
        One row per draw (:data:`DRAW_COLUMNS`): the quadratic kappa of the
        refitted grades against the expert grades on the other queries, the
        NDCG@10 of the grades alone (ties broken by BM25) and of BM25 there,
        and their difference.

    Raises:
        MissingColumnError: A column the draws need is missing.
        ValueError: ``size`` leaves no query to measure on, or ``draws < 1``.
    """
    needed = [C.QID, "score", C.BM25, C.Y_EXPERT]
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise MissingColumnError(f"calibration draws need the columns {missing}")
    if draws < 1:
        raise ValueError(f"draws must be at least 1, got {draws}")
    rows = table.loc[table["score"].notna() & table[C.Y_EXPERT].notna()].reset_index(drop=True)
    qid = rows[C.QID].to_numpy()
    queries = np.unique(qid)
    if not 0 < size < len(queries):
        raise ValueError(
            f"a calibration set of {size} queries needs more than {size} judged queries "
            f"with expert grades, got {len(queries)}"
        )
    # Calibration and kappa read the grades on the judge's scale, as the grader does;
    # NDCG the expert grades as they are.
    graded = np.clip(rows[C.Y_EXPERT].to_numpy(dtype=np.float64), 0, None)
    expert = on_judge_scale(graded, expert_top(graded)).astype(np.int64)
    bm25 = rows[C.BM25].to_numpy(dtype=np.float64)
    out = []
    for i in range(draws):
        chosen = np.random.default_rng(seed + i).choice(queries, size, replace=False)
        calibration = np.isin(qid, chosen)
        grader = SemanticGrader(config).fit(rows.loc[calibration], expert[calibration])
        held = ~calibration
        grades = grader.transform(rows.loc[held])
        e, q = graded[held], qid[held]
        by_grades = float(
            np.nanmean(ndcg_at_k(grades + 1e-3 * within_unit(bm25[held]), e, qid=q, k=10))
        )
        by_bm25 = float(np.nanmean(ndcg_at_k(bm25[held], e, qid=q, k=10)))
        out.append(
            {
                "draw": i,
                "calibration_queries": size,
                "pairs": int(held.sum()),
                "kappa_quadratic": quadratic_kappa(expert[held], grades.astype(np.int64)),
                "ndcg@10_grades_only": by_grades,
                "ndcg@10_bm25": by_bm25,
                "grades_only_minus_bm25": by_grades - by_bm25,
            }
        )
    return pd.DataFrame(out, columns=list(DRAW_COLUMNS))


def summarise_draws(draws: pd.DataFrame) -> pd.DataFrame:
    """Mean, lowest and highest of each measure over the draws (rows: measures)."""
    measures = ["kappa_quadratic", "ndcg@10_grades_only", "ndcg@10_bm25", "grades_only_minus_bm25"]
    return draws[measures].agg(["mean", "min", "max"]).T
