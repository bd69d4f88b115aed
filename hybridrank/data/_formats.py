"""Line-oriented readers for the plain-text formats of test collections.

Each reader keeps the 1-based line number of every row (column ``_line``) so
that later checks can point at the exact place in the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from hybridrank import columns as C
from hybridrank.errors import DataFormatError, MissingInputError

LINE = "_line"


def _lines(path: Path) -> list[tuple[int, str]]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise MissingInputError(f"{path}: no such file") from None
    out: list[tuple[int, str]] = []
    for i, raw in enumerate(data.split(b"\n"), start=1):
        try:
            out.append((i, raw.decode("utf-8").rstrip("\r")))
        except UnicodeDecodeError as exc:
            raise DataFormatError(
                f"not UTF-8 text: byte {raw[exc.start:exc.start + 1]!r} at character "
                f"{exc.start + 1} ({exc.reason}); save the file as UTF-8",
                path=path,
                line=i,
            ) from None
    if out and out[-1][1] == "":  # the newline ending the last line
        out.pop()
    return out


def read_id_text_tsv(path: Path, *, id_column: str, allow_title: bool = False) -> pd.DataFrame:
    """Read ``ID<TAB>TEXT`` (or ``ID<TAB>TITLE<TAB>TEXT`` where allowed), no header.

    Empty lines are skipped. The number of fields is fixed by the first line;
    a line with another count, an empty id or empty text is an error.

    Returns:
        DataFrame ``id_column, text[, title], _line``.
    """
    rows: list[tuple[str, ...]] = []
    width: int | None = None
    allowed = (2, 3) if allow_title else (2,)
    for lineno, line in _lines(path):
        if not line.strip():
            continue
        fields = line.split("\t")
        if width is None:
            if len(fields) not in allowed:
                raise DataFormatError(
                    f"expected {' or '.join(map(str, allowed))} tab-separated fields, "
                    f"got {len(fields)}",
                    path=path,
                    line=lineno,
                )
            width = len(fields)
        elif len(fields) != width:
            raise DataFormatError(
                f"expected {width} tab-separated fields like line 1, got {len(fields)}",
                path=path,
                line=lineno,
            )
        ident = fields[0].strip()
        if not ident:
            raise DataFormatError("empty id", path=path, line=lineno, column=id_column)
        text = fields[-1].strip()
        if not text:
            raise DataFormatError(
                f"empty text for id {ident!r}", path=path, line=lineno, column=C.TEXT
            )
        if width == 3:
            rows.append((ident, text, fields[1].strip(), str(lineno)))
        else:
            rows.append((ident, text, str(lineno)))
    names = [id_column, C.TEXT] + ([C.TITLE] if width == 3 else []) + [LINE]
    frame = pd.DataFrame(rows, columns=names)
    frame[LINE] = frame[LINE].astype("int64")
    _reject_duplicates(frame, id_column, path)
    return frame


def read_docs_jsonl(path: Path) -> pd.DataFrame:
    """Read documents from JSON lines: ``{"docid"|"_id"|"id", "text"[, "title"]}``."""
    rows: list[tuple[str, str, str, int]] = []
    for lineno, line in _lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataFormatError(f"invalid JSON ({exc.msg})", path=path, line=lineno) from None
        if not isinstance(record, dict):
            raise DataFormatError("expected a JSON object", path=path, line=lineno)
        ident = next((record[k] for k in ("docid", "_id", "id") if k in record), None)
        if ident is None or str(ident).strip() == "":
            raise DataFormatError("no document id (docid, _id or id)", path=path, line=lineno)
        text = record.get("text")
        if not isinstance(text, str) or not text.strip():
            raise DataFormatError(
                f"empty or missing text for id {ident!r}", path=path, line=lineno, column=C.TEXT
            )
        title = record.get("title") or ""
        if not isinstance(title, str):
            raise DataFormatError("title must be a string", path=path, line=lineno, column=C.TITLE)
        rows.append((str(ident).strip(), text.strip(), title.strip(), lineno))
    frame = pd.DataFrame(rows, columns=[C.DOCID, C.TEXT, C.TITLE, LINE])
    if not frame[C.TITLE].ne("").any():
        frame = frame.drop(columns=C.TITLE)
    _reject_duplicates(frame, C.DOCID, path)
    return frame


def read_trec_qrels(path: Path) -> pd.DataFrame:
    """Read TREC qrels: ``QID ITERATION DOCID GRADE``, whitespace-separated.

    Returns:
        DataFrame ``qid, docid, grade (int64), _line``. A pair judged twice is
        an error.
    """
    rows: list[tuple[str, str, int, int]] = []
    for lineno, line in _lines(path):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split()
        if len(fields) != 4:
            raise DataFormatError(
                f"expected 4 fields 'QID ITER DOCID GRADE', got {len(fields)}",
                path=path,
                line=lineno,
            )
        try:
            grade = int(fields[3])
        except ValueError:
            raise DataFormatError(
                f"grade {fields[3]!r} is not an integer", path=path, line=lineno, column=C.GRADE
            ) from None
        if grade < 0:
            # TREC uses negative grades for "junk"; hybridrank treats them as 0.
            grade = 0
        rows.append((fields[0], fields[2], grade, lineno))
    frame = pd.DataFrame(rows, columns=[C.QID, C.DOCID, C.GRADE, LINE])
    frame[C.GRADE] = frame[C.GRADE].astype("int64")
    dup = frame.duplicated([C.QID, C.DOCID], keep="first")
    if dup.any():
        bad = frame.loc[dup].iloc[0]
        raise DataFormatError(
            f"pair ({bad[C.QID]!r}, {bad[C.DOCID]!r}) judged twice",
            path=path,
            line=int(bad[LINE]),
            column=C.DOCID,
        )
    return frame


def _reject_duplicates(frame: pd.DataFrame, key: str, path: Path) -> None:
    dup = frame.duplicated(key, keep="first")
    if dup.any():
        bad = frame.loc[dup].iloc[0]
        first = int(frame.loc[frame[key] == bad[key], LINE].iloc[0])
        raise DataFormatError(
            f"duplicate id {bad[key]!r} (first seen on line {first})",
            path=path,
            line=int(bad[LINE]),
            column=key,
        )
