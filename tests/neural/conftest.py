"""A tiny randomly initialised BERT with the packaged MiniLM tokenizer, so fits take seconds."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

pytest.importorskip("sentence_transformers")
pytest.importorskip("datasets")
pytest.importorskip("accelerate")


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


def build_tiny_bert(path: Path) -> str:
    """Save a tiny random BERT with the packaged MiniLM tokenizer at ``path``; return the path."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from hybridrank.neural import packaged_minilm_path

    tokenizer = AutoTokenizer.from_pretrained(packaged_minilm_path())
    config = BertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        vocab_size=tokenizer.vocab_size,
        max_position_embeddings=128,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def make_pairs(
    n_queries: int = 8, per_query: int = 6, seed: int = 0
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Queries about a topic; documents on the topic get high grades."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_queries):
        for j in range(per_query):
            on_topic = j < per_query // 2
            topic = i if on_topic else (i + 1 + int(rng.integers(0, n_queries - 1))) % n_queries
            rows.append(
                (
                    f"q{i}",
                    f"effects of compound {i} on health",
                    f"a study of compound {topic} and its effects, report {j}",
                    float(3 - j if on_topic else 0),
                )
            )
    frame = pd.DataFrame(rows, columns=["qid", "query", "document", "y"])
    return frame[["query", "document"]], frame["y"].to_numpy(), frame["qid"].to_numpy()


@pytest.fixture(scope="session")
def pairs_data() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    return make_pairs()


def fast(tiny_bert: str, **overrides: object) -> dict[str, object]:
    """Ranker keyword arguments for a fit of a few steps on the tiny BERT."""
    params: dict[str, object] = {
        "model_path": tiny_bert,
        "device": "cpu",
        "max_seq_length": 32,
        "batch_size": 8,
        "queries_per_batch": 2,
        "epochs": 1,
        "learning_rate": 1e-3,
        "validation_fraction": 0.25,
    }
    params.update(overrides)
    return params


def record_encodes(model: object, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every text ``model.encode`` is called with from now on, in call order."""
    encoded: list[str] = []
    real = model.encode  # type: ignore[attr-defined]

    def spy(texts, **kwargs):  # type: ignore[no-untyped-def]
        encoded.extend(texts)
        return real(texts, **kwargs)

    monkeypatch.setattr(model, "encode", spy)
    return encoded


__all__ = ["fast", "make_pairs", "record_encodes"]
