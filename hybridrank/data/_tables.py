"""Reading a user's table (candidates, queries, documents) from parquet or CSV, with named errors."""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hybridrank._atomic import HYBRIDRANK_MARKERS, recover_directory
from hybridrank.errors import DataFormatError, MissingInputError

logger = logging.getLogger(__name__)

_READERS = {".parquet": "parquet", ".pq": "parquet", ".csv": ",", ".tsv": "\t"}


def _check_delimited(path: Path, sep: str) -> None:
    """Every line of a CSV/TSV file decodes as UTF-8 and has the header's field count.

    pandas fills a short row (a file cut mid-line, a lost separator) with
    NaN without a word; this check names the line instead.
    """
    with path.open("rb") as fh:
        data = fh.read()
    raw_lines = data.splitlines()
    if data and not data.endswith((b"\n", b"\r")):
        logger.warning(
            "%s: no newline after line %d: if the file was cut there, its last value is partial",
            path, len(raw_lines),
        )
    lines: list[str] = []
    for number, raw in enumerate(raw_lines, start=1):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise DataFormatError(
                f"not UTF-8: byte {raw[exc.start:exc.start + 1]!r} at byte {exc.start + 1} of the line; "
                "save the file as UTF-8",
                path=path,
                line=number,
            ) from None
    if not lines:
        return
    reader = csv.reader(lines, delimiter=sep)
    header = next(reader)
    for fields in reader:
        if not fields:  # a blank line
            continue
        if len(fields) != len(header):
            number = reader.line_num
            raise DataFormatError(
                f"{len(fields)} fields where the header has {len(header)} "
                f"({', '.join(header)}); was the file cut or a separator lost?",
                path=path,
                line=number,
            )


def read_table(path: str | Path, *, required: Sequence[str] = ()) -> pd.DataFrame:
    """A parquet, CSV or TSV file as a DataFrame (by suffix), its required columns checked.

    Raises:
        FileNotFoundError: No such file.
        DataFormatError: Unknown suffix, a corrupt or truncated file, a CSV/TSV
            line with the wrong number of fields or bytes that are not UTF-8,
            missing columns, or no rows; the message names the file (and the line,
            for CSV).
    """
    p = Path(path)
    if not p.exists():
        # The file of an output whose rerun was killed between its two renames.
        for marker in HYBRIDRANK_MARKERS:
            recover_directory(p.parent, marker)
    if not p.exists():
        raise MissingInputError(f"{p}: no such file")
    kind = _READERS.get(p.suffix.lower())
    if kind is None:
        raise DataFormatError(
            f"unknown table format {p.suffix!r}; use .parquet, .csv or .tsv", path=p
        )
    if kind != "parquet":
        _check_delimited(p, kind)
    try:
        if kind == "parquet":
            frame = pd.read_parquet(p)
        else:
            frame = pd.read_csv(p, sep=kind, dtype={"qid": str, "docid": str})
            ids = [c for c in ("qid", "docid") if c in frame.columns]
            if ids:
                # An id column's only missing value is an empty field: "NA", "null" or
                # "nan" are ids (as `dataset import` reads them), never missing ids.
                frame[ids] = pd.read_csv(
                    p, sep=kind, usecols=ids, dtype=str, keep_default_na=False, na_values=[""]
                )[ids]
    except pd.errors.ParserError as exc:
        raise DataFormatError(f"not a readable {p.suffix[1:]} file ({exc})", path=p) from None
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise DataFormatError(
            f"not a readable {p.suffix[1:]} file: {type(exc).__name__}: {exc}. "
            "Was it truncated or written by an interrupted job? Rewrite it.",
            path=p,
        ) from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataFormatError(
            f"missing columns {missing}; the file has {list(frame.columns)}", path=p
        )
    if len(frame) == 0:
        raise DataFormatError("holds no rows (only a header, or nothing)", path=p)
    for key in ("qid", "docid"):
        if key in frame.columns and not pd.api.types.is_string_dtype(frame[key]):
            with file_lines(p):
                texts = ids_as_text(frame[key], column=key)
            frame[key] = texts.where(frame[key].notna(), frame[key].astype(str)).astype(object)
    return frame


def ids_as_text(values: pd.Series, *, column: str, path: str | Path | None = None) -> pd.Series:
    """A ``qid`` or ``docid`` column as text (:func:`id_text`); a missing id stays missing.

    Raises:
        DataFormatError: The first id that is neither text nor a whole number, by row.
    """
    texts = values.map(id_text)
    bad = (texts.isna() & values.notna()).to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        value = values.iloc[row]
        value = value.item() if isinstance(value, np.generic) else value
        raise DataFormatError(
            f"id {value!r} is not text or a whole number", path=path, row=row, column=column
        )
    return texts.astype(object)


def id_text(value: Any) -> str | None:
    """An id as text: text as is, a whole number as its digits (7 and 7.0: "7"); None for
    anything else (2.5, a boolean)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating) and np.isfinite(value) and float(value).is_integer():
        return str(int(value))
    return None


def data_row_lines(path: str | Path) -> list[int] | None:
    """The 1-based line on which each data row of a CSV/TSV file starts, as
    :func:`read_table` reads it (the header is line 1; blank lines are no rows;
    a quoted field may span lines); ``None`` for a parquet file."""
    p = Path(path)
    sep = _READERS.get(p.suffix.lower())
    if sep is None or sep == "parquet":
        return None
    starts: list[int] = []
    with p.open(encoding="utf-8", errors="replace", newline="") as fh:
        reader = csv.reader(fh, delimiter=sep)
        if next(reader, None) is None:
            return starts
        start = reader.line_num + 1
        for fields in reader:
            if fields:
                starts.append(start)
            start = reader.line_num + 1
    return starts


@contextmanager
def file_lines(path: str | Path) -> Iterator[None]:
    """Errors about a data row of the table read from ``path`` name the file's line.

    A table check names the 0-based row of the DataFrame (as ``iloc`` counts);
    a user looking at the CSV/TSV file needs its line (the header is line 1).
    Inside this block a :class:`DataFormatError` naming a row, and no other
    file, is raised again naming ``path`` and the line that row was read
    from; for a parquet file it names ``path`` and keeps the row.

    Example:
        >>> with file_lines("candidates.csv"):  # doctest: +SKIP
        ...     ranker.rank_table(read_table("candidates.csv"))
    """
    p = Path(path)
    try:
        yield
    except DataFormatError as exc:
        if exc.row is None or exc.line is not None or exc.path not in (None, str(p)):
            raise
        lines = data_row_lines(p)
        if lines is None:
            if exc.path is not None:
                raise
            raise type(exc)(exc.reason, path=p, row=exc.row, column=exc.column) from None
        if not 0 <= exc.row < len(lines):
            raise
        raise type(exc)(exc.reason, path=p, line=lines[exc.row], column=exc.column) from None


def check_unique_pairs(table: pd.DataFrame, *, why: str, path: str | Path | None = None) -> None:
    """Refuse a table that lists a (qid, docid) pair twice, naming its first repeat's row.

    Args:
        why: What a repeat would do, for the message ("take two places in the ranking").
        path: The table's file or source, when known.
    """
    dup = table.duplicated(["qid", "docid"]).to_numpy()
    if dup.any():
        row = int(np.flatnonzero(dup)[0])
        raise DataFormatError(
            f"duplicate (qid, docid) row ({table['qid'].iloc[row]!r}, "
            f"{table['docid'].iloc[row]!r}); {int(dup.sum())} such rows: a document would {why}",
            path=path,
            row=row,
            column="docid",
        )
