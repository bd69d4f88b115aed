"""Reading a user's table (candidates, queries, documents) from parquet or CSV, with named errors."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from hybridrank.errors import DataFormatError, MissingInputError

_READERS = {".parquet": "parquet", ".pq": "parquet", ".csv": ",", ".tsv": "\t"}


def read_table(path: str | Path, *, required: Sequence[str] = ()) -> pd.DataFrame:
    """A parquet, CSV or TSV file as a DataFrame (by suffix), its required columns checked.

    Raises:
        FileNotFoundError: No such file.
        DataFormatError: Unknown suffix, a corrupt or truncated file, or missing
            columns; the message names the file (and the line, for CSV).
    """
    p = Path(path)
    if not p.exists():
        raise MissingInputError(f"{p}: no such file")
    kind = _READERS.get(p.suffix.lower())
    if kind is None:
        raise DataFormatError(
            f"unknown table format {p.suffix!r}; use .parquet, .csv or .tsv", path=p
        )
    try:
        if kind == "parquet":
            frame = pd.read_parquet(p)
        else:
            frame = pd.read_csv(p, sep=kind, dtype={"qid": str, "docid": str})
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
    for key in ("qid", "docid"):
        if key in frame.columns:
            frame[key] = frame[key].astype(str)
    return frame
