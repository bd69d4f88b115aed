"""Content digests of files: what names a model directory or a source tree in a cache key."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path


def files_sha256(files: Sequence[Path], root: Path) -> str:
    """SHA-256 over each file's path relative to ``root`` (left out for ``root`` itself,
    a single file) and its bytes, in the order given."""
    digest = hashlib.sha256()
    for file in files:
        if file != root:
            digest.update(str(file.relative_to(root)).encode("utf-8") + b"\x00")
        with file.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()
