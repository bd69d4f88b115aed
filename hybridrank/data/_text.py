"""Reading a user's text file line by line: UTF-8 only, a byte-order mark dropped, errors by line.

Editors on Windows often save UTF-8 with a byte-order mark; read as text it
would become part of the first id (``'\\ufeffq1'``) or make the first field
unparsable. Bytes that are not UTF-8 (a Latin-1 export) are an error naming
the line, never a replacement character inside an id.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hybridrank.errors import DataFormatError

BOM = codecs.BOM_UTF8


def decode_line(raw: bytes, path: Path, line: int) -> str:
    """One line's bytes as text; not UTF-8: a DataFormatError naming the byte and the line."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataFormatError(
            f"not UTF-8 text: byte {raw[exc.start : exc.start + 1]!r} at byte "
            f"{exc.start + 1} of the line; save the file as UTF-8",
            path=path,
            line=line,
        ) from None


def text_lines(
    path: Path, opener: Callable[..., Any] = open, *, strict: bool = True
) -> Iterator[tuple[int, str]]:
    """``(1-based line number, line)`` of a UTF-8 text file, each line ending in ``\\n``
    (the last one only where the file has it).

    Lines end at ``\\n``, ``\\r\\n`` or a bare ``\\r``, as Python's text mode reads
    them; a byte-order mark before the first line is dropped. ``opener`` opens the
    file in binary mode (``gzip.open``, ...). ``strict=False`` reads a byte that is
    not UTF-8 as U+FFFD, for callers that check only the fields they use.

    Raises:
        DataFormatError: A line that is not UTF-8 (file, line and byte named).
    """
    number = 0
    with opener(path, "rb") as fh:
        for chunk in fh:  # split at b"\n"; a bare b"\r" inside is a line end too
            if number == 0 and chunk.startswith(BOM):
                chunk = chunk[len(BOM) :]
            for raw in chunk.splitlines(keepends=True):
                number += 1
                body = raw.rstrip(b"\r\n")
                text = (
                    decode_line(body, path, number)
                    if strict
                    else body.decode("utf-8", errors="replace")
                )
                yield number, text + "\n" if len(body) < len(raw) else text


def raise_first_non_utf8_line(path: Path, opener: Callable[..., Any] = open) -> None:
    """Raise naming the first line of ``path`` that is not UTF-8; return if there is none."""
    for _ in text_lines(path, opener):
        pass
