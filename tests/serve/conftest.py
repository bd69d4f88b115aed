from __future__ import annotations

from ..neural.conftest import tiny_bert

__all__ = ["tiny_bert"]
