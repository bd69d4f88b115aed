"""Fixtures of the workflow tests: the tiny BERT of the neural tests, for ``train neural``."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> str:
    for module in ("sentence_transformers", "datasets", "accelerate"):
        pytest.importorskip(module)
    from ..neural.conftest import build_tiny_bert

    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))
