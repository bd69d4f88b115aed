"""Readers of graded relevance judgments (qrels) in the formats a user brings, and their registry.

Every reader returns ``qid, docid, grade (int64 >= 0), _line`` (the 1-based line
of each judgment, for later error messages) and rejects a pair judged twice.

Example:
    >>> qrels = read_qrels("CLARA2QueryUrlRelevance_beta", "clara2")  # doctest: +SKIP
    >>> qrels.columns.tolist()  # doctest: +SKIP
    ['qid', 'docid', 'grade', '_line']
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Final

import pandas as pd

from hybridrank import columns as C
from hybridrank.data._formats import LINE, read_trec_qrels
from hybridrank.data._text import text_lines
from hybridrank.errors import ConfigError, DataFormatError

_CLARA2_HEADER: Final = ("query", "url", "relevance")


def read_clara2_relevance(path: str | Path) -> pd.DataFrame:
    """Read the NAVER CLARA2 relevance file (``CLARA2QueryUrlRelevance_beta``).

    Tab-separated ``QUERY_ID<TAB>URL_ID<TAB>GRADE`` (grades 0-5), one judgment a
    line; an optional header line ``query url relevance`` and lines starting
    with ``#`` are skipped, as are blank lines.

    Args:
        path: The relevance file.

    Returns:
        ``qid, docid, grade (int64), _line``.

    Raises:
        FileNotFoundError: No such file.
        DataFormatError: A line without three fields, an empty id, a grade that
            is not a whole number >= 0, or a pair judged twice (file and line named).
    """
    p = Path(path)
    rows: list[tuple[str, str, int, int]] = []
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file")
    header_seen = False
    for lineno, raw in text_lines(p):
        line = raw.rstrip("\n").rstrip("\r")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = [f.strip() for f in line.split("\t")]
        if not header_seen and not rows and tuple(f.lower() for f in fields) == _CLARA2_HEADER:
            header_seen = True
            continue
        if len(fields) != 3:
            raise DataFormatError(
                f"expected 3 tab-separated fields 'QUERY URL RELEVANCE', got {len(fields)}",
                path=p,
                line=lineno,
            )
        qid, docid, grade_text = fields
        if not qid:
            raise DataFormatError("empty query id", path=p, line=lineno, column="query")
        if not docid:
            raise DataFormatError("empty url id", path=p, line=lineno, column="url")
        try:
            grade = int(grade_text)
        except ValueError:
            raise DataFormatError(
                f"relevance {grade_text!r} is not a whole number",
                path=p,
                line=lineno,
                column="relevance",
            ) from None
        if grade < 0:
            raise DataFormatError(
                f"relevance {grade} is negative; grades are >= 0",
                path=p,
                line=lineno,
                column="relevance",
            )
        rows.append((qid, docid, grade, lineno))
    frame = pd.DataFrame(rows, columns=[C.QID, C.DOCID, C.GRADE, LINE])
    frame[C.GRADE] = frame[C.GRADE].astype("int64")
    frame[LINE] = frame[LINE].astype("int64")
    dup = frame.duplicated([C.QID, C.DOCID], keep="first")
    if dup.any():
        bad = frame.loc[dup].iloc[0]
        raise DataFormatError(
            f"pair ({bad[C.QID]!r}, {bad[C.DOCID]!r}) judged twice",
            path=p,
            line=int(bad[LINE]),
            column="url",
        )
    return frame


def _read_trec(path: str | Path) -> pd.DataFrame:
    return read_trec_qrels(Path(path))


#: Qrels readers by format name (``dataset import --qrels-format``).
QRELS_READERS: dict[str, Callable[[str | Path], pd.DataFrame]] = {
    "trec": _read_trec,
    "clara2": read_clara2_relevance,
}


def read_qrels(path: str | Path, format: str = "trec") -> pd.DataFrame:
    """Read judgments with the reader registered under ``format`` in :data:`QRELS_READERS`.

    Raises:
        ConfigError: Unknown format.
    """
    reader = QRELS_READERS.get(format)
    if reader is None:
        raise ConfigError(
            f"unknown qrels format {format!r}; known formats: {sorted(QRELS_READERS)}"
        )
    return reader(path)


__all__ = ["QRELS_READERS", "read_clara2_relevance", "read_qrels"]
