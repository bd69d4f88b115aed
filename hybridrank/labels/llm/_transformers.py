"""The ``transformers`` backend: a local causal LM graded by its next-token probabilities."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from hybridrank._digest import files_sha256
from hybridrank.errors import ConfigError
from hybridrank.labels.llm._prompt import build_messages, get_prompt
from hybridrank.labels.llm._protocol import GRADES, Annotator, Judgment, Pair, register_annotator

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

#: The assistant turn is started with this text, so the next token is the grade.
ANSWER_PREFIX = "Grade: "

_DTYPES = ("auto", "float32", "float16", "bfloat16")
# Files whose bytes define what a model directory answers (weights, config, tokenizer).
_MODEL_FILE_SUFFIXES = (".safetensors", ".bin", ".gguf", ".json", ".model", ".txt", ".tiktoken")


@register_annotator
class TransformersAnnotator(Annotator):
    """A local causal language model read by its next-token grade probabilities.

    The prompt (variant ``prompt``: ``title`` is
    :func:`~hybridrank.labels.llm.build_messages`) goes through the
    tokenizer's chat template, the assistant turn is started with ``"Grade: "``
    and the model's next-token distribution is restricted to the tokens
    ``0``-``3``: the grade is the most probable one, ``confidence`` its
    probability renormalised over the four, ``expected_grade`` the
    probability-weighted grade. Nothing is sampled, so the answers are
    deterministic. Pairs are scored in batches, left-padded.

    Args:
        model_path: A local model directory, or a ``.gguf`` file (read with the
            ``gguf`` package; its tokenizer comes from the same file). Nothing is
            downloaded.
        device: ``"cpu"``, ``"cuda"`` (``"cuda:N"``) or ``"auto"`` (CUDA when present).
        batch_size: Pairs per forward pass.
        dtype: ``"auto"`` (float32 on CPU, bfloat16 on CUDA), ``"float32"``,
            ``"float16"`` or ``"bfloat16"``.
        min_grade_mass: A pair fails (``grade=None``) when the four grade tokens
            together hold less than this share of the next-token probability:
            the model is not answering with a grade, and no grade is invented.
        seed: Seeds torch before loading, for any backend nondeterminism.
        prompt: The prompt variant, ``title`` (the query text alone) or
            ``described`` (adds the query's description and narrative in their
            own blocks; pairs without them are asked the ``title`` question).

    Example:
        >>> ann = TransformersAnnotator(model_path="models/SmolLM2-135M-Instruct.Q4_1.gguf")  # doctest: +SKIP
        >>> ann.annotate([Pair("q1", "d1", "cat food", "Cats eat fish.")])[0].grade  # doctest: +SKIP
        2
    """

    backend: ClassVar[str] = "transformers"

    def __init__(
        self,
        *,
        model_path: str | Path,
        device: str = "auto",
        batch_size: int = 8,
        dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto",
        min_grade_mass: float = 0.05,
        seed: int = 0,
        prompt: str = "title",
    ) -> None:
        path = Path(model_path).expanduser()
        if not path.exists():
            raise ConfigError(
                f"transformers annotator: model_path {str(path)!r} does not exist; "
                "give a local model directory or a .gguf file"
            )
        if path.is_file() and path.suffix != ".gguf":
            raise ConfigError(
                f"transformers annotator: model_path {str(path)!r} is a file but not a .gguf; "
                "give a model directory or a .gguf file"
            )
        if not (device in ("auto", "cpu", "cuda") or device.startswith("cuda:")):
            raise ConfigError(
                f"transformers annotator: device {device!r} is not cpu, cuda, cuda:N or auto"
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(
                f"transformers annotator: batch_size must be a positive integer, got {batch_size!r}"
            )
        if dtype not in _DTYPES:
            raise ConfigError(
                f"transformers annotator: dtype {dtype!r} is not one of {list(_DTYPES)}"
            )
        if not 0.0 <= min_grade_mass < 1.0:
            raise ConfigError(
                f"transformers annotator: min_grade_mass must be in [0, 1), got {min_grade_mass!r}"
            )
        self.model_path = path
        self.device = device
        self.batch_size = batch_size
        self.dtype = dtype
        self.min_grade_mass = float(min_grade_mass)
        self.seed = seed
        self.prompt = prompt
        try:
            self._variant = get_prompt(prompt)
        except ConfigError as exc:
            raise ConfigError(f"transformers annotator: {exc}") from None
        self._model_id: str | None = None
        self._tokenizer: Any = None
        self._lm: Any = None
        self._torch_device: torch.device | None = None
        self._grade_token_ids: list[int] = []
        self._prefix = ANSWER_PREFIX

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(model_path={str(self.model_path)!r}, device={self.device!r}, "
            f"batch_size={self.batch_size}, dtype={self.dtype!r})"
        )

    @property
    def model(self) -> str:
        """The model's name and the SHA-256 prefix of its files: another file never reuses an answer."""
        if self._model_id is None:
            self._model_id = f"{self.model_path.name}@sha256:{_digest(self.model_path)[:16]}"
        return self._model_id

    @property
    def prompt_version(self) -> str:
        return self._variant.version

    @property
    def reads_query_context(self) -> bool:
        return self._variant.reads_query_context

    def prompt_version_for(self, pair: Pair) -> str:
        return self._variant.version_for(pair)

    @property
    def hf_tokenizer(self) -> Any:
        """The loaded tokenizer (loads the model on first use)."""
        self._load()
        return self._tokenizer

    @property
    def hf_model(self) -> Any:
        """The loaded ``transformers`` causal LM (loads it on first use)."""
        self._load()
        return self._lm

    def close(self) -> None:
        self._lm = None
        self._tokenizer = None

    def _load(self) -> None:
        if self._lm is not None:
            return
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ConfigError(
                f"transformers annotator needs torch and transformers ({exc}); "
                "install them (and `gguf` for .gguf files)"
            ) from None
        device = self.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(
                "transformers annotator: device 'cuda' asked for but CUDA is not available"
            )
        torch_dtype = {
            "float32": torch.float32,
            "float16": torch.float16,
            "bfloat16": torch.bfloat16,
            "auto": torch.float32 if device == "cpu" else torch.bfloat16,
        }[self.dtype]
        torch.manual_seed(self.seed)
        if self.model_path.is_file():
            where, kwargs = str(self.model_path.parent), {"gguf_file": self.model_path.name}
        else:
            where, kwargs = str(self.model_path), {}
        logger.info("loading %s on %s (%s)", self.model_path, device, torch_dtype)
        tokenizer = AutoTokenizer.from_pretrained(where, local_files_only=True, **kwargs)
        lm: Any = AutoModelForCausalLM.from_pretrained(
            where, local_files_only=True, dtype=torch_dtype, **kwargs
        )
        lm.to(device)
        lm.eval()
        tokenizer.padding_side = "left"
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self._tokenizer = tokenizer
        self._torch_device = torch.device(device)
        self._prefix, self._grade_token_ids = self._grade_tokens(tokenizer)
        self._lm = lm

    def _prompt(self, tokenizer: Any, messages: list[dict[str, str]], prefix: str) -> str:
        if getattr(tokenizer, "chat_template", None):
            text = tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
        else:
            # A base model without a template: a plain transcript.
            text = (
                "".join(f"{m['role'].capitalize()}: {m['content']}\n\n" for m in messages)
                + "Assistant: "
            )
        return str(text) + prefix

    def _grade_tokens(self, tokenizer: Any) -> tuple[str, list[int]]:
        """The answer prefix and the token of each grade that follows it in context.

        Tokenizers differ on where a space goes ("Grade: " + "3" or "Grade:" +
        " 3"), so both prefixes are tried on a real prompt; the first one after
        which every grade is exactly one more token is used.
        """
        for prefix in (ANSWER_PREFIX, ANSWER_PREFIX.rstrip()):
            base_text = self._prompt(tokenizer, build_messages("q", "d"), prefix)
            base = tokenizer.encode(base_text, add_special_tokens=False)
            ids: list[int] = []
            for grade in GRADES:
                full = tokenizer.encode(base_text + str(grade), add_special_tokens=False)
                if len(full) != len(base) + 1 or full[: len(base)] != base:
                    break
                ids.append(int(full[-1]))
            if len(ids) == len(GRADES) and len(set(ids)) == len(GRADES):
                return prefix, ids
        raise ConfigError(
            f"transformers annotator: the tokenizer of {str(self.model_path)!r} has no single token "
            "for each grade 0-3 after 'Grade:'; this backend cannot read its grades"
        )

    def annotate(self, pairs: Sequence[Pair]) -> list[Judgment]:
        """One judgment per pair, from one forward pass per ``batch_size`` pairs."""
        if not pairs:
            return []
        self._load()
        tokenizer = self._tokenizer
        texts = [self._prompt(tokenizer, self._variant.messages(p), self._prefix) for p in pairs]
        # Similar lengths share a batch, so little compute goes to padding.
        lengths = [len(tokenizer.encode(t, add_special_tokens=False)) for t in texts]
        order = sorted(range(len(texts)), key=lambda i: lengths[i])
        out: list[Judgment | None] = [None] * len(pairs)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            probs = self._grade_probabilities([texts[i] for i in idx])
            for i, row in zip(idx, probs, strict=True):
                out[i] = self._judgment(row, lengths[i])
        return [j for j in out if j is not None]

    def _grade_probabilities(self, texts: list[str]) -> list[list[float]]:
        """Next-token probabilities of the grade tokens (not renormalised), one row per text."""
        import torch

        enc = self._tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        input_ids = enc["input_ids"].to(self._torch_device)
        mask = enc["attention_mask"].to(self._torch_device)
        # Left padding: positions count real tokens only, as if each prompt were alone.
        position_ids = (mask.long().cumsum(-1) - 1).clamp(min=0)
        with torch.no_grad():
            logits = self._lm(
                input_ids=input_ids, attention_mask=mask, position_ids=position_ids
            ).logits
        last = torch.softmax(logits[:, -1, :].float(), dim=-1)
        grade_ids = torch.tensor(self._grade_token_ids, device=last.device)
        return [[float(p) for p in row] for row in last[:, grade_ids].cpu()]

    def _judgment(self, probs: list[float], n_tokens: int) -> Judgment:
        mass = sum(probs)
        shown = "p=[" + ",".join(f"{p:.4f}" for p in probs) + f"] mass={mass:.4f}"
        if mass <= 0.0 or mass < self.min_grade_mass:
            return Judgment(
                grade=None,
                raw=shown,
                error=f"grade tokens hold {mass:.4f} of the next-token probability (< {self.min_grade_mass})",
                tokens_in=n_tokens,
                tokens_out=0,
            )
        norm = [p / mass for p in probs]
        grade = max(GRADES, key=lambda g: norm[g])
        return Judgment(
            grade=grade,
            confidence=norm[grade],
            expected_grade=sum(g * norm[g] for g in GRADES),
            raw=shown,
            tokens_in=n_tokens,
            tokens_out=0,
        )


def _digest(path: Path) -> str:
    """SHA-256 of a model file, or of a directory's model files (names and bytes)."""
    files = (
        [path]
        if path.is_file()
        else sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in _MODEL_FILE_SUFFIXES)
    )
    if not files:
        raise ConfigError(f"transformers annotator: no model files under {str(path)!r}")
    return files_sha256(files, path)
