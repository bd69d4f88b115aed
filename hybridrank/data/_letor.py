"""Feature-vector learning-to-rank files: SVMlight/LETOR with ``qid:`` or a ``.query`` group file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hybridrank.errors import DataFormatError, MissingInputError


@dataclass(frozen=True)
class LetorData:
    """A ranking data set in memory.

    Attributes:
        X: Dense features, shape ``(n_rows, n_features)``, float32.
        y: Integer labels, shape ``(n_rows,)``.
        qid: Query id per row; rows of a query contiguous.
    """

    X: np.ndarray
    y: np.ndarray
    qid: np.ndarray

    @property
    def n_queries(self) -> int:
        return int(np.count_nonzero(self.qid[1:] != self.qid[:-1]) + 1) if self.qid.size else 0


def read_svmlight(path: str | Path, *, n_features: int | None = None) -> LetorData:
    """Read ``LABEL [qid:Q] i:v ...`` lines (MSLR, LETOR 4.0, Yahoo, Istella, LightGBM examples).

    Query ids come from ``qid:`` fields, or, when the lines have none, from a
    group-size file beside the data (``PATH.query``, one count per line, as
    LightGBM's examples ship). Comments after ``#`` are ignored.

    Args:
        path: The data file.
        n_features: Width of X; default the largest feature index seen (so pass
            the training file's width when reading its test file).
    """
    from sklearn.datasets import load_svmlight_file

    p = Path(path)
    if not p.exists():
        raise MissingInputError(f"{p}: no such file")
    try:
        X, y, qid = load_svmlight_file(
            str(p), n_features=n_features, query_id=True, zero_based=False
        )
    except ValueError as exc:
        raise DataFormatError(f"not SVMlight/LETOR text ({exc})", path=p) from None
    group_file = p.with_name(p.name + ".query")
    if group_file.exists() and (qid.size == 0 or np.all(qid == qid[0])):
        sizes = np.loadtxt(group_file, dtype=np.int64, ndmin=1)
        if sizes.sum() != X.shape[0]:
            raise DataFormatError(
                f"group sizes add up to {int(sizes.sum())} but the data has {X.shape[0]} rows",
                path=group_file,
            )
        qid = np.repeat(np.arange(sizes.size), sizes)
    if np.any(y < 0) or not np.all(y == np.round(y)):
        raise DataFormatError("labels must be integers >= 0", path=p, column="label")
    return LetorData(
        X=np.asarray(X.todense(), dtype=np.float32), y=y.astype(np.int32), qid=np.asarray(qid)
    )
