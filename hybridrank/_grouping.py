"""Query groups over flat arrays: rows of a query are contiguous."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from hybridrank.errors import DataFormatError


def offsets_from_qid(qid: npt.ArrayLike) -> np.ndarray:
    """Start offsets of each query's run of rows, plus the total length.

    Args:
        qid: Row-level query ids, shape ``(n_rows,)``; rows of one query must
            be contiguous (they need not be sorted).

    Returns:
        Integer array of shape ``(n_queries + 1,)``: query ``i`` owns rows
        ``offsets[i]:offsets[i + 1]``.

    Raises:
        DataFormatError: If a query's rows are split into several runs.
    """
    q = np.asarray(qid)
    n = q.shape[0]
    if n == 0:
        return np.zeros(1, dtype=np.int64)
    change = np.flatnonzero(q[1:] != q[:-1]) + 1
    starts = np.concatenate(([0], change)).astype(np.int64)
    run_ids = q[starts]
    if np.unique(run_ids).shape[0] != run_ids.shape[0]:
        _, first = np.unique(run_ids, return_index=True)
        seen = np.zeros(run_ids.shape[0], dtype=bool)
        seen[first] = True
        bad = int(np.flatnonzero(~seen)[0])
        raise DataFormatError(
            f"rows of query {run_ids[bad]!r} are not contiguous; sort the table by qid",
            row=int(starts[bad]),
            column="qid",
        )
    return np.append(starts, n)


def qid_codes(qid: npt.ArrayLike) -> np.ndarray:
    """Integer query codes ``0, 1, 2, ...`` increasing along the rows.

    XGBoost wants a sorted ``qid``; rows of a query need only be contiguous
    here, so each run of rows gets the next code.

    Args:
        qid: Row-level query ids, shape ``(n_rows,)``; rows of a query contiguous.

    Returns:
        ``uint32`` array of shape ``(n_rows,)``.

    Example:
        >>> qid_codes(["b", "b", "a", "c", "c"]).tolist()
        [0, 0, 1, 2, 2]
    """
    offsets = offsets_from_qid(qid)
    return np.repeat(np.arange(offsets.shape[0] - 1, dtype=np.uint32), np.diff(offsets))


def check_offsets(offsets: npt.ArrayLike, n_rows: int) -> np.ndarray:
    off = np.asarray(offsets, dtype=np.int64)
    if off.ndim != 1 or off.shape[0] < 1 or off[0] != 0 or off[-1] != n_rows:
        raise ValueError(f"offsets must start at 0 and end at n_rows={n_rows}")
    if np.any(np.diff(off) < 0):
        raise ValueError("offsets must be non-decreasing")
    return off


@dataclass(frozen=True)
class Padded:
    """A ragged group structure laid out as a dense ``(n_queries, width)`` grid.

    Attributes:
        index: Row index into the flat arrays, shape ``(n_queries, width)``;
            padding cells point at row 0 and are masked.
        mask: True where a cell holds a real row.
        lengths: Rows per query, shape ``(n_queries,)``.
    """

    index: np.ndarray
    mask: np.ndarray
    lengths: np.ndarray

    @classmethod
    def from_offsets(cls, offsets: np.ndarray) -> Padded:
        lengths = np.diff(offsets)
        width = int(lengths.max()) if lengths.size else 0
        cols = np.arange(width, dtype=np.int64)
        mask = cols[None, :] < lengths[:, None]
        index = np.where(mask, offsets[:-1, None] + cols[None, :], 0)
        return cls(index=index, mask=mask, lengths=lengths)


def resolve_groups(
    n_rows: int, qid: npt.ArrayLike | None, offsets: npt.ArrayLike | None
) -> np.ndarray:
    """Offsets from exactly one of ``qid`` or ``offsets``."""
    if (qid is None) == (offsets is None):
        raise ValueError("pass exactly one of qid= or offsets=")
    if qid is not None:
        q = np.asarray(qid)
        if q.shape[0] != n_rows:
            raise ValueError(f"qid has {q.shape[0]} rows, scores have {n_rows}")
        return offsets_from_qid(q)
    return check_offsets(np.asarray(offsets), n_rows)
