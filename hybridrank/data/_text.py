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
            f"not UTF-8 text: byte {raw[exc.start : exc.start + 1]!r} at character "
            f"{exc.start + 1}; save the file as UTF-8",
            path=path,
            line=line,
        ) from None


def text_lines(path: Path, opener: Callable[..., Any] = open) -> Iterator[tuple[int, str]]:
    """``(1-based line number, line)`` of a UTF-8 text file, each line with its ``\\n``.

    A byte-order mark before the first line is dropped and ``\\r\\n`` becomes
    ``\\n``; ``opener`` opens the file in binary mode (``gzip.open``, ...).

    Raises:
        DataFormatError: A line that is not UTF-8 (file, line and byte named).
    """
    with opener(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if number == 1 and raw.startswith(BOM):
                raw = raw[len(BOM) :]
            text = decode_line(raw, path, number)
            if text.endswith("\r\n"):
                text = text[:-2] + "\n"
            yield number, text


def raise_first_non_utf8_line(path: Path, opener: Callable[..., Any] = open) -> None:
    """Raise naming the first line of ``path`` that is not UTF-8; return if there is none."""
    for _ in text_lines(path, opener):
        pass
