"""Parquet impression logs: the files of a log, checked before any engine reads them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from hybridrank import columns as C
from hybridrank.errors import DataFormatError, MissingInputError


def parquet_files(path: str | Path) -> list[Path]:
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.rglob("*.parquet") if f.is_file())
        if not files:
            raise MissingInputError(f"{p}: no *.parquet files in this directory")
        return files
    if not p.exists():
        raise MissingInputError(f"{p}: no such impression log")
    return [p]


def row_group_parts(files: Sequence[Path], max_rows: int) -> list[tuple[Path, list[int]]]:
    """Runs of consecutive row groups of at most ``max_rows`` rows (or one bigger row group),
    checking every file's footer."""
    import pyarrow.parquet as pq

    parts: list[tuple[Path, list[int]]] = []
    for f in files:
        try:
            meta = pq.ParquetFile(f).metadata
        except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ...
            raise DataFormatError(
                f"not a readable parquet file ({_one_line(exc)}); it is corrupt or truncated: "
                "rewrite it, or move it out of the log",
                path=f,
            ) from None
        names = set(meta.schema.names)
        missing = [c for c in C.IMPRESSION_COLUMNS if c not in names]
        if missing:
            raise DataFormatError(f"impression log file lacks columns {missing}", path=f)
        run: list[int] = []
        rows = 0
        for i in range(meta.num_row_groups):
            n = meta.row_group(i).num_rows
            if run and rows + n > max_rows:
                parts.append((f, run))
                run, rows = [], 0
            run.append(i)
            rows += n
        if run or meta.num_row_groups == 0:
            parts.append((f, run))
    return parts


def read_part(part: tuple[Path, list[int]]) -> pd.DataFrame:
    """The impression columns of some row groups of one file (an empty frame for none)."""
    import pyarrow.parquet as pq

    path, row_groups = part
    try:
        pf = pq.ParquetFile(path)
        if row_groups:
            table = pf.read_row_groups(row_groups, columns=list(C.IMPRESSION_COLUMNS))
        else:
            table = pf.schema_arrow.empty_table().select(list(C.IMPRESSION_COLUMNS))
    except Exception as exc:
        raise DataFormatError(
            f"cannot read row groups {row_groups} ({_one_line(exc)}); the file is corrupt or truncated: "
            "rewrite it, or move it out of the log",
            path=path,
        ) from None
    return table.to_pandas()


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def check_readable(files: Sequence[Path]) -> None:
    """Read every row group of ``files``, raising a :class:`DataFormatError` naming the
    first that fails: after an engine failed reading the log with a message that may
    not name the file at fault."""
    for part in row_group_parts(files, 1):
        read_part(part)
