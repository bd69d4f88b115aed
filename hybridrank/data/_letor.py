"""Feature-vector learning-to-rank files: SVMlight/LETOR with ``qid:`` or a ``.query`` group file."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hybridrank.data._text import BOM
from hybridrank.errors import DataFormatError, MissingInputError

logger = logging.getLogger(__name__)

#: The largest float32: features are stored in float32.
_F32_MAX = float(np.finfo(np.float32).max)


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
        with p.open("rb") as fh:
            if fh.read(len(BOM)) != BOM:  # the parser would read a mark as part of a label
                fh.seek(0)
            X, y, qid = load_svmlight_file(
                fh, n_features=n_features, query_id=True, zero_based=False
            )
    except ValueError as exc:
        _raise_first_bad_line(p)  # names the line and the field where it can
        raise DataFormatError(f"not SVMlight/LETOR text ({exc})", path=p) from None
    if X.shape[0] == 0:
        raise DataFormatError("no data lines (LABEL [qid:Q] i:v ...)", path=p)
    group_file = p.with_name(p.name + ".query")
    if qid.size not in (0, X.shape[0]):
        # The parser keeps a qid per line that has one: a line without would shift every
        # later row into the query of the row after it.
        raise DataFormatError(
            f"{X.shape[0] - qid.size} data lines have no qid: field where the others have one",
            path=p,
            line=_first_line_without_qid(p),
            column="qid",
        )
    if qid.size == 0 and not group_file.exists():
        raise DataFormatError(
            f"no qid: fields and no group file {group_file.name} beside it: which rows form "
            "a query is unknown",
            path=p,
            column="qid",
        )
    if group_file.exists() and (qid.size == 0 or np.all(qid == qid[0])):
        try:
            sizes = np.loadtxt(group_file, dtype=np.int64, ndmin=1, encoding="utf-8-sig")
        except ValueError as exc:
            raise DataFormatError(
                f"expected one whole-number group size a line ({exc})", path=group_file
            ) from None
        if sizes.sum() != X.shape[0]:
            raise DataFormatError(
                f"group sizes add up to {int(sizes.sum())} but the data has {X.shape[0]} rows",
                path=group_file,
            )
        qid = np.repeat(np.arange(sizes.size), sizes)
    bad = (y < 0) | (y != np.round(y))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataFormatError(
            f"label {float(y[row]):g} is not an integer >= 0 (graded relevance); "
            f"{int(bad.sum())} such rows",
            path=p,
            line=_data_line(p, row),
            column="label",
        )
    # Checked in float64, as read: a finite 1e39 would become inf in float32 (and inf is
    # beyond it too; nan, read as missing, is not).
    huge = np.abs(np.nan_to_num(X.data)) > _F32_MAX
    if huge.any():
        coo = X.tocoo()
        wide = np.abs(np.nan_to_num(coo.data)) > _F32_MAX
        first = int(np.flatnonzero(wide)[np.argmin(coo.row[wide])])
        row, col = int(coo.row[first]), int(coo.col[first])
        raise DataFormatError(
            f"feature {col + 1} is {float(coo.data[first]):g}: an infinite value, or one "
            f"beyond float32, cannot be ranked; {int(huge.sum())} such values",
            path=p,
            line=_data_line(p, row),
            column=f"feature {col + 1}",
        )
    dense = np.asarray(X.todense(), dtype=np.float32)
    missing = int(np.isnan(dense).sum())
    if missing:
        logger.warning(
            "%s: %d feature values are nan, read as missing (the trees' missing-value branch); "
            "ranking such rows needs `rank --on-missing keep`",
            p, missing,
        )  # fmt: skip
    return LetorData(X=dense, y=y.astype(np.int32), qid=np.asarray(qid))


def _first_line_without_qid(path: Path) -> int | None:
    """The 1-based line of the first data line without a ``qid:`` field."""
    with path.open(encoding="utf-8-sig", errors="replace") as fh:
        for lineno, raw in enumerate(fh, start=1):
            tokens = raw.partition("#")[0].split()
            if tokens and not any(t.startswith("qid:") for t in tokens[1:]):
                return lineno
    return None


def _data_line(path: Path, row: int) -> int | None:
    """The 1-based line of the ``row``-th data line (neither blank nor comment-only)."""
    with path.open(encoding="utf-8-sig", errors="replace") as fh:
        n = -1
        for lineno, raw in enumerate(fh, start=1):
            if raw.partition("#")[0].strip():
                n += 1
                if n == row:
                    return lineno
    return None


def _raise_first_bad_line(path: Path) -> None:
    """Find the first line the strict parser refused and raise naming it and its field.

    Checks what ``load_svmlight_file`` checks, in Python, only after it failed:
    a numeric label, ``qid:`` an integer, ``INDEX:VALUE`` tokens with integer
    indices >= 1 in increasing order and numeric values. Returns when no line
    breaks those rules (the caller then reports the parser's own message).

    Raises:
        DataFormatError: With ``line`` and ``column`` (``label``, ``qid`` or
            ``feature N``) of the first bad token.
    """
    with path.open(encoding="utf-8-sig", errors="replace") as fh:
        for number, raw in enumerate(fh, start=1):
            tokens = raw.split("#", 1)[0].split()
            if not tokens:
                continue

            def bad(message: str, column: str, *, _n: int = number) -> DataFormatError:
                return DataFormatError(message, path=path, line=_n, column=column)

            try:
                float(tokens[0])
            except ValueError:
                raise bad(f"label {tokens[0]!r} is not a number", "label") from None
            previous = 0
            for token in tokens[1:]:
                key, sep, value = token.partition(":")
                if not sep:
                    raise bad(f"{token!r} is not INDEX:VALUE", "features")
                if key == "qid":
                    if not value.lstrip("-").isdigit():
                        raise bad(f"qid {value!r} is not an integer", "qid")
                    continue
                if not key.isdigit() or int(key) < 1:
                    raise bad(f"feature index {key!r} is not an integer >= 1", f"feature {key}")
                try:
                    float(value)
                except ValueError:
                    raise bad(f"value {value!r} is not a number", f"feature {key}") from None
                if int(key) <= previous:
                    raise bad(
                        f"feature {key} after feature {previous}: indices must increase",
                        f"feature {key}",
                    )
                previous = int(key)
