"""Line-oriented readers for the plain-text formats of test collections.

Each reader keeps the 1-based line number of every row (column ``_line``) so
that later checks can point at the exact place in the file.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from hybridrank import columns as C
from hybridrank.data._text import BOM
from hybridrank.errors import DataFormatError, MissingInputError

LINE = "_line"

logger = logging.getLogger(__name__)


def _lines(path: Path) -> list[tuple[int, str]]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise MissingInputError(f"{path}: no such file") from None
    if data.startswith(BOM):  # an editor's byte-order mark is not part of the first id
        data = data[len(BOM) :]
    out: list[tuple[int, str]] = []
    for i, raw in enumerate(data.split(b"\n"), start=1):
        try:
            out.append((i, raw.decode("utf-8").rstrip("\r")))
        except UnicodeDecodeError as exc:
            raise DataFormatError(
                f"not UTF-8 text: byte {raw[exc.start:exc.start + 1]!r} at byte "
                f"{exc.start + 1} of the line ({exc.reason}); save the file as UTF-8",
                path=path,
                line=i,
            ) from None
    if out and out[-1][1] == "":  # the newline ending the last line
        out.pop()
    return out


def read_id_text_tsv(path: Path, *, id_column: str, allow_title: bool = False) -> pd.DataFrame:
    """Read ``ID<TAB>TEXT`` (or ``ID<TAB>TITLE<TAB>TEXT`` where allowed), no header.

    Empty lines are skipped. The number of fields is fixed by the first line;
    a line with another count, an empty id or empty text (and no title) is an
    error. With a title, ``text`` is :func:`document_text` (title, then body).

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
        title = fields[1].strip() if width == 3 else ""
        if not text and not title:
            raise DataFormatError(
                f"empty text for id {ident!r}", path=path, line=lineno, column=C.TEXT
            )
        if width == 3:
            rows.append((ident, document_text(title, text), title, str(lineno)))
        else:
            rows.append((ident, text, str(lineno)))
    names = [id_column, C.TEXT] + ([C.TITLE] if width == 3 else []) + [LINE]
    frame = pd.DataFrame(rows, columns=names)
    frame[LINE] = frame[LINE].astype("int64")
    _reject_duplicates(frame, id_column, path)
    return frame


_SENTENCE_END = (".", "!", "?", ":", ";")


def document_text(title: str, text: str) -> str:
    """The text every scorer reads of a document with a title: the title, then the body.

    BM25, the text features, the judge, an LLM's prompt and the neural models
    all read one text, so a term found only in the title still matches. The
    title becomes the first sentence (``"Title. Body"``); an empty title or
    body leaves the other as it is.
    """
    title, text = title.strip(), text.strip()
    if not title:
        return text
    if not text:
        return title
    return f"{title} {text}" if title.endswith(_SENTENCE_END) else f"{title}. {text}"


def join_titles(docs: pd.DataFrame) -> pd.DataFrame:
    """``docs`` with ``text`` read as :func:`document_text` of its ``title`` and ``text``.

    Without a ``title`` column the table is returned unchanged. The ``title``
    column stays (for display). A missing title or text (or no ``text``
    column) is read as empty; a document with neither keeps a missing text, as
    before. A text that already starts with its title (a dataset's own
    ``docs`` table, joined when it was read) is left as it is, so joining
    twice changes nothing.
    """
    if C.TITLE not in docs.columns:
        return docs
    titles = docs[C.TITLE].astype(object).where(docs[C.TITLE].notna(), "")
    if C.TEXT in docs.columns:
        texts = docs[C.TEXT].astype(object).where(docs[C.TEXT].notna(), "")
    else:
        texts = pd.Series("", index=docs.index, dtype=object)
    joined = [
        x.strip() if t.strip() and x.strip().startswith(t.strip()) else document_text(t, x)
        for t, x in zip(titles.map(str), texts.map(str), strict=True)
    ]
    out = docs.copy()
    out[C.TEXT] = [v if v else None for v in joined]
    return out


def _json_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` of each non-blank line of a JSON-lines file.

    Raises:
        DataFormatError: A line that is not a JSON object (naming file and line).
    """
    for lineno, line in _lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataFormatError(f"invalid JSON ({exc.msg})", path=path, line=lineno) from None
        if not isinstance(record, dict):
            raise DataFormatError("expected a JSON object", path=path, line=lineno)
        yield lineno, record


def read_docs_jsonl(path: Path) -> pd.DataFrame:
    """Read documents from JSON lines: ``{"docid"|"_id"|"id", "text"[, "title"]}``.

    With a title, ``text`` is :func:`document_text` (title, then body; either
    may be empty, not both) and ``title`` keeps the title alone.
    """
    rows: list[tuple[str, str, str, int]] = []
    for lineno, record in _json_records(path):
        ident = next((record[k] for k in ("docid", "_id", "id") if k in record), None)
        if ident is None or str(ident).strip() == "":
            raise DataFormatError("no document id (docid, _id or id)", path=path, line=lineno)
        text = record.get("text")
        if text is None:
            text = ""
        if not isinstance(text, str):
            raise DataFormatError(
                f"text of id {ident!r} must be a string", path=path, line=lineno, column=C.TEXT
            )
        title = record.get("title") or ""
        if not isinstance(title, str):
            raise DataFormatError("title must be a string", path=path, line=lineno, column=C.TITLE)
        if not text.strip() and not title.strip():
            raise DataFormatError(
                f"empty or missing text (and no title) for id {ident!r}",
                path=path, line=lineno, column=C.TEXT,
            )  # fmt: skip
        rows.append((str(ident).strip(), document_text(title, text), title.strip(), lineno))
    frame = pd.DataFrame(rows, columns=[C.DOCID, C.TEXT, C.TITLE, LINE])
    if not frame[C.TITLE].ne("").any():
        frame = frame.drop(columns=C.TITLE)
    _reject_duplicates(frame, C.DOCID, path)
    return frame


def read_queries_jsonl(path: Path) -> pd.DataFrame:
    """Read queries from JSON lines: ``{"qid"|"_id"|"id", "text"|"title"|"query"[,
    "description"][, "narrative"]}``.

    Returns:
        DataFrame ``qid, text[, description][, narrative], _line``; a column
        present on some lines only is missing (None) on the others.
    """
    rows: list[dict[str, object]] = []
    for lineno, record in _json_records(path):
        ident = next((record[k] for k in ("qid", "_id", "id") if k in record), None)
        if ident is None or str(ident).strip() == "":
            raise DataFormatError("no query id (qid, _id or id)", path=path, line=lineno)
        text = next((record[k] for k in ("text", "title", "query") if k in record), None)
        if not isinstance(text, str) or not text.strip():
            raise DataFormatError(
                f"empty or missing text (text, title or query) for id {ident!r}",
                path=path, line=lineno, column=C.TEXT,
            )  # fmt: skip
        row: dict[str, object] = {C.QID: str(ident).strip(), C.TEXT: text.strip(), LINE: lineno}
        for key in C.QUERY_CONTEXT_COLUMNS:
            value = record.get(key)
            if value is not None and not isinstance(value, str):
                raise DataFormatError(
                    f"{key} must be a string", path=path, line=lineno, column=key
                )
            if value and value.strip():
                row[key] = value.strip()
        rows.append(row)
    names = [C.QID, C.TEXT, *(c for c in C.QUERY_CONTEXT_COLUMNS if any(c in r for r in rows))]
    frame = _missing_as_none(pd.DataFrame(rows, columns=[*names, LINE]), names[2:])
    frame[LINE] = frame[LINE].astype("int64")
    _reject_duplicates(frame, C.QID, path)
    return frame


#: The fields of a TREC topic (``<num>``, ``<title>``, ``<desc>``, ``<narr>``) and their columns.
_TOPIC_FIELDS = {"num": C.QID, "title": C.TEXT, "desc": C.DESCRIPTION, "narr": C.NARRATIVE}
_TOPIC_TAG = re.compile(r"<(/?)(top|num|title|desc|narr)>", re.IGNORECASE)
_TOPIC_LABEL = re.compile(r"\A\s*(?:number|topic|description|narrative)\s*:", re.IGNORECASE)


def read_trec_topics(path: Path) -> pd.DataFrame:
    """Read a TREC topics file (the SGML-like ``<top>`` blocks of TREC ad hoc tracks).

    Each ``<top> ... </top>`` block holds ``<num>`` (the query id; a leading
    ``Number:`` is dropped), ``<title>`` (the query text), and optionally
    ``<desc>`` and ``<narr>`` (leading ``Description:`` / ``Narrative:``
    dropped); a field runs to the next tag, whitespace is collapsed.
    Closing field tags (``</title>``) are accepted.

    Returns:
        DataFrame ``qid, text, description, narrative, _line`` (the line of
        each ``<top>``; a missing description or narrative is None).

    Raises:
        DataFormatError: Text outside a block, a block without ``<num>`` or
            ``<title>``, a field given twice, an unclosed block, a repeated id.
    """
    rows: list[dict[str, object]] = []
    block: dict[str, str] | None = None
    field: str | None = None
    start = 0
    for lineno, line in _lines(path):
        pos = 0
        for m in [*_TOPIC_TAG.finditer(line), None]:
            chunk = line[pos : m.start() if m else len(line)]
            if chunk.strip():
                if block is None or field is None:
                    raise DataFormatError(
                        "text outside a <top> field (is this a TREC topics file?)",
                        path=path, line=lineno,
                    )  # fmt: skip
                block[field] += " " + chunk
            if m is None:
                break
            pos = m.end()
            closing, tag = m.group(1) == "/", m.group(2).lower()
            if tag == "top" and not closing:
                if block is not None:
                    raise DataFormatError("<top> inside an unclosed <top>", path=path, line=lineno)
                block, field, start = {}, None, lineno
            elif tag == "top":
                if block is None:
                    raise DataFormatError("</top> without <top>", path=path, line=lineno)
                rows.append(_topic_row(block, path, start))
                block, field = None, None
            elif block is None:
                raise DataFormatError(f"<{tag}> outside a <top> block", path=path, line=lineno)
            elif closing:
                field = None
            elif tag in block:
                raise DataFormatError(f"<{tag}> given twice in one topic", path=path, line=lineno)
            else:
                block[tag], field = "", tag
    if block is not None:
        raise DataFormatError("the last <top> is not closed by </top>", path=path, line=start)
    frame = pd.DataFrame(rows, columns=[C.QID, C.TEXT, *C.QUERY_CONTEXT_COLUMNS, LINE])
    frame = _missing_as_none(frame, C.QUERY_CONTEXT_COLUMNS)
    frame[LINE] = frame[LINE].astype("int64")
    _reject_duplicates(frame, C.QID, path)
    return frame


def _topic_row(block: dict[str, str], path: Path, line: int) -> dict[str, object]:
    row: dict[str, object] = {LINE: line}
    for tag, column in _TOPIC_FIELDS.items():
        text = " ".join(block.get(tag, "").split())
        text = _TOPIC_LABEL.sub("", text, count=1).strip()
        row[column] = text or None
    if not row[C.QID]:
        raise DataFormatError("a topic without <num>", path=path, line=line, column=C.QID)
    if not row[C.TEXT]:
        raise DataFormatError(
            f"topic {row[C.QID]!r} has no <title> text", path=path, line=line, column=C.TEXT
        )
    return row


def read_queries(path: Path) -> pd.DataFrame:
    """Queries in any supported format, told apart by name and content.

    * ``.jsonl``: :func:`read_queries_jsonl` (optional description, narrative);
    * a TREC topics file (first non-blank line starts with ``<top>``):
      :func:`read_trec_topics` (title, description, narrative);
    * anything else: ``QID<TAB>TEXT`` (:func:`read_id_text_tsv`).

    Returns:
        DataFrame ``qid, text[, description][, narrative], _line``.
    """
    if path.suffix.lower() == ".jsonl":
        return read_queries_jsonl(path)
    first = next((line for _, line in _lines(path) if line.strip()), "")
    if first.lstrip().lower().startswith("<top>"):
        return read_trec_topics(path)
    return read_id_text_tsv(path, id_column=C.QID)


def _is_integer(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def read_trec_qrels(path: Path) -> pd.DataFrame:
    """Read qrels: TREC's ``QID ITERATION DOCID GRADE``, or BEIR's ``QID DOCID GRADE``.

    Fields are whitespace-separated. The first line fixes the layout: four
    fields (TREC), or three (BEIR's ``qrels/*.tsv``, whose header line
    ``query-id corpus-id score`` is skipped); every line must then have as many.

    Returns:
        DataFrame ``qid, docid, grade (int64), _line``. A pair judged twice is
        an error.
    """
    rows: list[tuple[str, str, int, int]] = []
    negative = 0
    width: int | None = None
    expected = {4: "'QID ITER DOCID GRADE' (TREC)", 3: "'QID DOCID GRADE' (BEIR)"}
    for lineno, line in _lines(path):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split()
        if width is None:
            if len(fields) == 3 and not _is_integer(fields[2]):
                width = 3  # BEIR's header line
                continue
            width = len(fields) if len(fields) in expected else 4
        if len(fields) != width:
            raise DataFormatError(
                f"expected {width} fields {expected[width]}"
                + (" like the first line" if width == 3 else "")
                + f", got {len(fields)}",
                path=path,
                line=lineno,
            )
        if width == 3:
            fields = [fields[0], "0", fields[1], fields[2]]
        try:
            grade = int(fields[3])
        except ValueError:
            raise DataFormatError(
                f"grade {fields[3]!r} is not an integer", path=path, line=lineno, column=C.GRADE
            ) from None
        if grade < 0:
            # TREC uses negative grades for "junk"; hybridrank treats them as 0, as trec_eval.
            grade = 0
            negative += 1
        rows.append((fields[0], fields[2], grade, lineno))
    if negative:
        logger.warning(
            "%s: %d negative grades (TREC's junk) read as 0, not relevant", path, negative
        )
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


def _missing_as_none(frame: pd.DataFrame, columns: tuple[str, ...] | list[str]) -> pd.DataFrame:
    """Optional text columns as object columns holding None (not NaN) where a row has none."""
    for col in columns:
        values = frame[col].astype(object)
        frame[col] = values.where(values.notna(), None)
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
