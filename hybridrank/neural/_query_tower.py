"""The query-tower ranker: a bi-encoder whose document side stays the frozen start model.

The document encoder is never fine-tuned; every document is embedded once, by
the model it starts from, and never again. That is what makes it trainable in
seconds on two CPU cores: a training step runs the transformer over a few
short queries (a handful of tokens each) and scores them against cached
document embeddings, instead of re-encoding every candidate document. Training
the query encoder alone also leaves a production index's document vectors
valid; the document offsets below change those of the training documents.

The default loss is listwise distillation: within each query, the cross
entropy between the teacher's distribution over the candidates
(``softmax(y / target_temperature)``, where ``y`` is the judge's continuous
grade) and the student's (``softmax(cosine / temperature)``), i.e. ListNet on
soft targets, equivalent to KL(teacher || student) up to a constant.
Pointwise is the squared error between the cosine and ``y / max_grade``.

With ``document_steps`` a second stage follows: each training document's
frozen vector gets a learned offset (see :meth:`QueryTowerRanker._fit_document_offsets`),
and ``epochs: 0`` skips the query encoder so that only the offsets learn. A
few hundred training queries teach the query encoder little that carries over
to new queries; the documents, known at training time, are where a good
teacher's labels do carry over (README, "Document offsets").
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from hybridrank._grouping import offsets_from_qid
from hybridrank.errors import ConfigError, DataFormatError, MissingInputError
from hybridrank.evaluate import ndcg_at_k
from hybridrank.neural._config import NeuralConfig
from hybridrank.neural._rankers import BiEncoderRanker, Pairs, embedding_dimension, text_hash

logger = logging.getLogger(__name__)

#: Learning rate of the student's log inverse temperature (a single scalar).
SCALE_LEARNING_RATE = 1e-2
#: Candidate rows per chunk of the document-offset stage: its loss and gradient are summed
#: over chunks of whole queries, so its working memory is about five ``rows x dimension``
#: float tensors of one chunk (some 2 GB at 384 dimensions), not of the whole training set
#: (the first stage's one ``rows x dimension`` tensor of document vectors stays). A
#: training set within one chunk (an NFCorpus fold: 18,225 rows) is one full batch.
OFFSET_CHUNK_ROWS = 1 << 18


class QueryTowerRanker(BiEncoderRanker):
    """A bi-encoder with the frozen start model for documents: the query encoder fine-tuned
    (``epochs``), learned offsets on the training documents' vectors (``document_steps``),
    or both.

    Example:
        >>> ranker = QueryTowerRanker(loss="listwise", epochs=3, queries_per_batch=16)
        >>> ranker.fit(pairs, y_llm_soft, qid=qid).predict(test_pairs)  # doctest: +SKIP

    Attributes (after ``fit``): as :class:`BiEncoderRanker`, plus
        document_model_: The frozen ``SentenceTransformer`` that embeds documents.
        best_step_: The optimisation step whose weights were kept (0: the start model).
    """

    architecture = "query-tower"
    _document_dir = "document_model"
    _offsets_file = "document_offsets.npz"

    document_model_: Any
    best_step_: int
    _clicks: tuple[np.ndarray, np.ndarray] | None = None

    #: Learned offsets of the training documents' vectors, by text hash (``document_steps``).
    document_offsets_: dict[str, np.ndarray]

    def _document_model(self) -> Any:
        return self.document_model_

    def _adjust_documents(self, keys: Sequence[str], vectors: np.ndarray) -> np.ndarray:
        """A document with a learned offset is scored at ``normalise(start vector + offset)``."""
        table = getattr(self, "document_offsets_", None)
        if not table or len(vectors) == 0:
            return vectors
        rows = [i for i, k in enumerate(keys) if k in table]
        if not rows:
            return vectors
        out = np.array(vectors, dtype=np.float32, copy=True)
        moved = out[rows] + np.stack([table[keys[i]] for i in rows])
        out[rows] = moved / np.maximum(np.linalg.norm(moved, axis=1, keepdims=True), 1e-12)
        return out

    def fit(
        self,
        pairs: Pairs,
        y: npt.ArrayLike,
        *,
        qid: npt.ArrayLike,
        sample_weight: npt.ArrayLike | None = None,
        eval_set: tuple[Pairs, npt.ArrayLike] | None = None,
        eval_qid: npt.ArrayLike | None = None,
        y_click: npt.ArrayLike | None = None,
        click_share: npt.ArrayLike | None = None,
    ) -> Self:
        """Fine-tune the query encoder, then the document offsets (each where configured);
        as :meth:`NeuralRanker.fit`, plus FAMOL's two losses.

        Args:
            y_click: A second label per row (click labels; NaN where a pair has
                none), listwise only. A query's loss is ``(1 - a) * L(y) + a * L(y_click)``
                with ``a`` its ``click_share``: with listwise cross entropy that is
                one teacher distribution, the mixture of the two.
            click_share: ``a`` per row, in [0, 1], one value per query (FAMOL's
                frequency weight); queries without any click label use 0.

        Raises:
            DataFormatError: ``y_click`` or ``click_share`` of the wrong shape or
                range, or ``click_share`` differing within a query.
            ConfigError: Click labels with the pointwise loss.
        """
        self._clicks = None
        if y_click is not None or click_share is not None:
            self._clicks = _click_inputs(self.get_config(), y_click, click_share, qid)
        try:
            return super().fit(
                pairs, y, qid=qid, sample_weight=sample_weight, eval_set=eval_set,
                eval_qid=eval_qid,
            )  # fmt: skip
        finally:
            self._clicks = None

    def _documents_are_start_model(self) -> bool:
        return True  # the document encoder never trains

    def _reset_cache(self) -> None:
        # Document embeddings come from the frozen encoder: training never invalidates them.
        if not hasattr(self, "_doc_cache"):
            super()._reset_cache()

    def share_documents(self, other: QueryTowerRanker) -> Self:
        """Embed documents with ``other``'s frozen encoder and cache, not a fresh copy.

        The document encoder never trains (each ranker's document offsets are
        its own, applied on top), so rankers fitted on different folds
        of one collection can share one set of document embeddings: each
        document is encoded once for all of them. ``other`` must start from
        the same model at the same sequence length, run by the same inference
        backend (an int8 ONNX encoder gives other vectors than torch).

        Raises:
            ConfigError: ``other`` starts from another model, length or backend.
        """
        other._check_fitted()
        mine, theirs = self.get_config(), other.config_

        def start(c: NeuralConfig) -> tuple[str, int, str]:
            return (str(c.resolved_model_path), c.max_seq_length, c.backend)

        if start(mine) != start(theirs):
            raise ConfigError(
                "share_documents needs the same start model, max_seq_length and backend: "
                "{}@{} ({}) vs {}@{} ({})".format(*start(mine), *start(theirs))
            )
        self._shared_from = other
        return self

    # ------------------------------------------------------------------ train

    def _train(
        self,
        cfg: NeuralConfig,
        train: tuple[list[str], list[str], np.ndarray, np.ndarray, np.ndarray],
        valid: tuple[list[str], list[str], np.ndarray, np.ndarray],
        rng: np.random.Generator,
        rows: np.ndarray,
    ) -> None:
        import torch
        from tqdm.auto import tqdm

        tq, td, ty, tqid, tw = train
        vq, vd, vy, vqid = valid
        torch.manual_seed(cfg.seed)
        path = cfg.resolved_model_path
        self.model_ = self._new_model(path, cfg, self.device_)
        shared = getattr(self, "_shared_from", None)
        super()._reset_cache()
        if shared is not None:
            self.document_model_ = shared.document_model_
            self._doc_cache = shared._doc_cache
        else:
            self.document_model_ = self._new_model(path, cfg, self.device_)
        self.document_model_.eval()
        for p in self.document_model_.parameters():
            p.requires_grad_(False)
        self.config_ = cfg

        offsets = offsets_from_qid(tqid)
        n_q = offsets.shape[0] - 1
        self.document_offsets_ = {}  # training reads the start model's vectors (inputs checked)
        docs = torch.from_numpy(self.encode_documents(td, show_progress_bar=False)).to(self.device_)
        targets = torch.as_tensor(ty, dtype=torch.float32, device=self.device_)
        clicks = shares = None
        mixed: tuple[np.ndarray, np.ndarray] | None = getattr(self, "_clicks", None)
        if mixed is not None:
            yc, share = mixed
            clicks = torch.as_tensor(yc[rows], dtype=torch.float32, device=self.device_)
            shares = torch.as_tensor(share[rows], dtype=torch.float32, device=self.device_)
        weights = torch.as_tensor(tw, dtype=torch.float32, device=self.device_)
        # In-batch negatives only: one id per distinct document text (a negative is never
        # one of the query's own) and the teacher's value per row, each read once.
        negatives = None
        if cfg.negatives:
            hashes = np.asarray([text_hash(t) for t in td], dtype=object)  # no fixed-width copy
            doc_ids = np.unique(hashes, return_inverse=True)[1]
            negatives = (doc_ids, targets.cpu().numpy())
        query_text = [tq[offsets[i]] for i in range(n_q)]
        # sentence-transformers 6 renamed tokenize to preprocess (tokenize warns)
        tokenize = getattr(self.model_, "preprocess", None) or self.model_.tokenize
        features = tokenize(query_text)
        lengths = features["attention_mask"].sum(dim=1)

        per_epoch = -(-n_q // cfg.queries_per_batch)
        total = max(1, per_epoch * cfg.epochs)  # epochs 0: the query encoder stays the start
        warmup = max(1, round(cfg.warmup_ratio * total))
        # The student's inverse temperature is learned (from 1 / temperature): matching the
        # teacher's spread through the scale, not by squeezing the embedding geometry.
        log_scale = torch.nn.Parameter(
            torch.tensor(-np.log(cfg.temperature), dtype=torch.float32, device=self.device_)
        )
        optimiser = torch.optim.AdamW(
            [
                {"params": list(self.model_.parameters()), "weight_decay": cfg.weight_decay},
                {"params": [log_scale], "weight_decay": 0.0, "lr": SCALE_LEARNING_RATE},
            ],
            lr=cfg.learning_rate,
            # One fused kernel per step, not a loop over the tensors: on 2 CPU cores the
            # fold's training took 19 s instead of 27 s, with the same NDCG@10.
            fused=torch.device(self.device_).type in ("cpu", "cuda"),
        )
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimiser,
            lambda step: min(1.0, (step + 1) / warmup) * max(0.0, (total - step) / total),
        )

        valid_unique = len(vq) > 0
        self.loss_history_, self.valid_history_ = [], []
        best, best_state, best_step, bad = -np.inf, None, 0, 0

        def evaluate(step: int) -> bool:
            """Score the validation rows; keep the best weights; True when patience runs out."""
            nonlocal best, best_state, best_step, bad
            self.model_.eval()
            with torch.no_grad():
                scores = self._score(vq, vd, cfg, cached=True, show=False)
            self.model_.train()
            value = float(np.nanmean(ndcg_at_k(scores, vy, qid=vqid, k=cfg.eval_at)))
            self.valid_history_.append((step, value))
            if value > best + 1e-9:
                best, best_step, bad = value, step, 0
                best_state = copy.deepcopy(self.model_.state_dict())
                return False
            bad += 1
            return cfg.early_stopping_patience is not None and bad >= cfg.early_stopping_patience

        if valid_unique:
            evaluate(0)
        step, stop = 0, False
        self.model_.train()
        bar = tqdm(total=total, desc="query tower", leave=False, disable=None)
        for epoch in range(cfg.epochs):
            order = np.random.default_rng((cfg.seed, epoch)).permutation(n_q)
            running = 0.0
            for start in range(0, n_q, cfg.queries_per_batch):
                chosen = order[start : start + cfg.queries_per_batch]
                index = torch.as_tensor(chosen)
                width = int(lengths[index].max())
                batch = {
                    k: v[index, :width].to(self.device_)
                    for k, v in features.items()
                    if isinstance(v, torch.Tensor) and v.dim() == 2
                }
                with self._autocast():
                    embedded = self.model_(batch)["sentence_embedding"]
                q = torch.nn.functional.normalize(embedded.float(), dim=-1)
                loss = self._batch_loss(
                    cfg,
                    q,
                    log_scale.exp(),
                    chosen,
                    offsets,
                    docs,
                    targets,
                    weights,
                    rng,
                    clicks,
                    shares,
                    negatives,
                )
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                schedule.step()
                step += 1
                running += float(loss.detach())
                bar.update(1)
                if cfg.eval_steps is not None and valid_unique and step % cfg.eval_steps == 0:
                    stop = evaluate(step)
                    if stop:
                        break
            self.loss_history_.append((step, running / max(1, per_epoch)))
            if stop:
                break
            if cfg.eval_steps is None and valid_unique:
                stop = evaluate(step)
                if stop:
                    break
        bar.close()
        if valid_unique and self.valid_history_[-1][0] != step:
            evaluate(step)
        if best_state is not None:
            self.model_.load_state_dict(best_state)
        self.model_.eval()
        self.best_score_ = None if not valid_unique else float(best)
        self.best_step_ = best_step if valid_unique else step
        if cfg.document_steps:
            self.document_offsets_ = self._fit_document_offsets(
                cfg, query_text, td, offsets, docs, targets, weights,
                float(log_scale.detach().exp()),
                clicks, shares,
            )  # fmt: skip
        logger.info(
            "query tower: %d steps, kept step %d (validation NDCG@%d %s)",
            step, self.best_step_, cfg.eval_at,
            "n/a" if self.best_score_ is None else f"{self.best_score_:.4f}",
        )  # fmt: skip

    def _fit_document_offsets(
        self,
        cfg: NeuralConfig,
        query_text: list[str],
        documents: list[str],
        offsets: np.ndarray,
        docs: Any,
        targets: Any,
        weights: Any,
        scale: float,
        clicks: Any = None,
        shares: Any = None,
    ) -> dict[str, np.ndarray]:
        """Offsets of the training documents' frozen vectors (``document_steps``).

        The query encoder (trained, or the start model with ``epochs: 0``)
        embeds each training query once; then Adam fits one offset per distinct
        document over every query at once (full batch; its loss and gradient summed
        over chunks of whole queries of at most :data:`OFFSET_CHUNK_ROWS` candidate
        rows, so that memory stays bounded on a large training set): the loss is the query
        tower's listwise cross entropy over each query's whole candidate list
        (no ``max_docs_per_query`` sampling), its teacher the judge's
        distribution mixed with its click labels' where ``clicks`` is on, as in
        the first stage, each query weighted as there (the loss is the weighted
        mean over queries), plus ``document_weight_decay`` times the sum of
        squared offsets (a sum over documents: with more training queries per
        document the teacher pulls harder against it). Validation queries
        (``validation_fraction``) and queries whose grades are all equal are
        not training queries; their documents get no offset from them.
        Returns ``{text hash: offset}``.
        """
        import torch
        from tqdm.auto import tqdm

        device = docs.device
        n_q = offsets.shape[0] - 1
        with torch.no_grad():
            queries = torch.from_numpy(self._encode(query_text, cfg, show=False)).to(device)
        # One offset per distinct text, by hash: no fixed-width copy of every document.
        keys, first, doc_ids = np.unique(
            np.asarray([text_hash(t) for t in documents], dtype=object),
            return_index=True,
            return_inverse=True,
        )
        ids = torch.as_tensor(doc_ids, device=device)
        start = docs[torch.as_tensor(first, device=device)]  # one frozen vector per document
        segment = torch.as_tensor(np.repeat(np.arange(n_q), np.diff(offsets)), device=device)
        teacher = _segment_softmax(targets / cfg.target_temperature, segment, n_q)
        if clicks is not None and shares is not None:
            known = ~torch.isnan(clicks)
            has = torch.zeros(n_q, device=device).index_add(0, segment, known.float()) > 0
            mix = torch.where(has[segment], shares, torch.zeros_like(shares))
            logits = torch.where(known, clicks / cfg.target_temperature, -torch.inf)
            click_teacher = torch.nan_to_num(_segment_softmax(logits, segment, n_q), nan=0.0)
            teacher = (1 - mix) * teacher + mix * click_teacher
        per_query = weights[torch.as_tensor(offsets[:-1], device=device)]
        row_weight = per_query[segment] / per_query.sum().clamp_min(1e-12)
        pull = row_weight * teacher  # each row's weight in the cross entropy, fixed
        chunks = []
        for a, b in query_chunks(offsets, OFFSET_CHUNK_ROWS):
            r = slice(int(offsets[a]), int(offsets[b]))
            chunks.append((ids[r], segment[r] - a, b - a, pull[r], queries[a:b]))
        offset = torch.zeros_like(start, requires_grad=True)
        optimiser = torch.optim.Adam([offset], lr=cfg.document_learning_rate)
        for _ in tqdm(
            range(cfg.document_steps), desc="document offsets", leave=False, disable=None
        ):
            optimiser.zero_grad(set_to_none=True)
            normed = torch.nn.functional.normalize(start + offset, dim=-1)
            # Each chunk's graph is freed after its backward; their gradients add up on a
            # detached copy of the normalised vectors, then flow through the normalisation.
            leaf = normed.detach().requires_grad_()
            for rows, local, n, weight, vectors_q in chunks:
                # index_select: its backward adds rows (index_add); [] indexing's was 3x slower
                cosine = (leaf.index_select(0, rows) * vectors_q.index_select(0, local)).sum(-1)
                student = _segment_log_softmax(cosine * scale, local, n)
                (-(weight * student).sum()).backward()
            pulled = (normed * leaf.grad).sum() if leaf.grad is not None else 0.0
            loss = pulled + cfg.document_weight_decay * (offset**2).sum()
            loss.backward()
            optimiser.step()
        learned = offset.detach().cpu().numpy().astype(np.float32)
        logger.info(
            "document offsets: %d documents, %d steps, mean offset norm %.4f",
            len(keys), cfg.document_steps, float(np.linalg.norm(learned, axis=1).mean()),
        )  # fmt: skip
        return {str(k): learned[i] for i, k in enumerate(keys)}

    @staticmethod
    def _batch_loss(
        cfg: NeuralConfig,
        q: Any,
        scale: Any,
        chosen: np.ndarray,
        offsets: np.ndarray,
        docs: Any,
        targets: Any,
        weights: Any,
        rng: np.random.Generator,
        clicks: Any = None,
        shares: Any = None,
        negatives: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> Any:
        """The weighted mean loss of the chosen queries (rows of a query: one list);
        ``scale`` is the listwise student's learned inverse temperature; ``clicks`` and
        ``shares`` mix FAMOL's click loss in (see :meth:`fit`); ``negatives`` (a document
        id and the teacher's value per row) adds the other queries' top documents."""
        import torch

        lists = []
        for i in chosen:  # drawn first, in the same order as without negatives
            rows = np.arange(offsets[i], offsets[i + 1])
            if rows.size > cfg.max_docs_per_query:
                rows = np.sort(rng.choice(rows, cfg.max_docs_per_query, replace=False))
            lists.append(rows)
        tops = None
        if cfg.loss == "listwise" and negatives is not None and len(lists) > 1:
            doc_ids, y_all = negatives
            tops = [
                rows[np.argsort(-y_all[rows], kind="stable")[: cfg.negatives]] for rows in lists
            ]
        losses, total_weight = [], 0.0
        for j, rows in enumerate(lists):
            r = torch.as_tensor(rows, device=docs.device)
            cosine = docs[r] @ q[j]
            y = targets[r]
            if cfg.loss == "listwise":
                teacher = torch.softmax(y / cfg.target_temperature, dim=0)
                if clicks is not None and shares is not None:
                    c = clicks[r]
                    known = ~torch.isnan(c)
                    a = shares[r[0]]
                    if bool(known.any()) and float(a) > 0:
                        logits = torch.where(known, c / cfg.target_temperature, -torch.inf)
                        teacher = (1 - a) * teacher + a * torch.softmax(logits, dim=0)
                if tops is not None:
                    own = np.arange(offsets[chosen[j]], offsets[chosen[j] + 1])  # unsampled too
                    foreign = in_batch_negatives(j, tops, own, doc_ids)
                    if foreign.size:
                        f = torch.as_tensor(foreign, device=docs.device)
                        cosine = torch.cat([cosine, docs[f] @ q[j]])
                        teacher = torch.cat([teacher, teacher.new_zeros(foreign.size)])
                student = torch.log_softmax(cosine * scale, dim=0)
                value = -(teacher * student).sum()
                w = weights[r[0]]
            else:
                per_row = (cosine - torch.clamp(y / cfg.max_grade, 0.0, 1.0)) ** 2
                w = weights[r].mean()
                value = (weights[r] * per_row).sum() / weights[r].sum().clamp_min(1e-12)
            losses.append(w * value)
            total_weight += float(w)
        return torch.stack(losses).sum() / max(total_weight, 1e-12)

    # ------------------------------------------------------------ save / load

    def _write(self, out: Path) -> None:
        """The frozen document encoder (``document_model/``) beside the query encoder, and
        the learned document offsets (``document_offsets.npz``) where there are any."""
        self.document_model_.save_pretrained(str(out / self._document_dir))
        if self.document_offsets_:
            keys = list(self.document_offsets_)
            np.savez(
                out / self._offsets_file,
                keys=np.asarray(keys),
                offsets=np.stack([self.document_offsets_[k] for k in keys]),
            )
        super()._write(out)

    def _meta(self) -> dict[str, Any]:
        return {
            **super()._meta(),
            "best_step": int(self.best_step_),
            "document_offsets": len(self.document_offsets_),
        }

    def _read(self, directory: Path, meta: dict[str, Any]) -> None:
        """The frozen document encoder and the kept step, beside what the bi-encoder reads."""
        d = directory / self._document_dir
        if not d.is_dir():
            raise MissingInputError(
                f"{d}: missing; a query-tower ranker is saved with its frozen document encoder"
            )
        self.document_model_ = self._new_model(str(d), self.config_, self.device_)
        self.best_step_ = int(meta.get("best_step", 0))  # files saved before it was kept: 0
        self.document_offsets_ = _read_offsets(
            directory / self._offsets_file, meta, embedding_dimension(self.document_model_)
        )

    @classmethod
    def pretrained(cls, config: NeuralConfig | None = None, **params: Any) -> Self:
        """The untrained start model on both sides: the zero-shot cosine baseline."""
        ranker = super().pretrained(config, **params)
        ranker.document_model_ = ranker.model_
        ranker.best_step_ = 0
        ranker.document_offsets_ = {}
        return ranker


def query_chunks(offsets: np.ndarray, max_rows: int) -> list[tuple[int, int]]:
    """Consecutive ranges ``[a, b)`` of whole queries (``offsets``: each query's first row,
    then the row count) of at most ``max_rows`` rows each; a query longer than that is a
    range of its own. Every query is in exactly one range."""
    if max_rows < 1:
        raise ValueError(f"max_rows must be >= 1, got {max_rows}")
    ranges, a = [], 0
    n_q = len(offsets) - 1
    while a < n_q:
        # the last query whose end stays within max_rows of this range's first row
        b = int(np.searchsorted(offsets, offsets[a] + max_rows, side="right")) - 1
        b = min(max(b, a + 1), n_q)
        ranges.append((a, b))
        a = b
    return ranges


def _segment_log_softmax(x: Any, segment: Any, n: int) -> Any:
    """``log_softmax`` of ``x`` within each segment (rows of one query share an id in
    ``segment``, ``0..n-1``); ``-inf`` entries get probability 0."""
    import torch

    top = torch.full((n,), -torch.inf, dtype=x.dtype, device=x.device)
    top = top.scatter_reduce(0, segment, x.detach(), "amax", include_self=True)
    shifted = x - torch.nan_to_num(top, neginf=0.0)[segment]
    total = torch.zeros(n, dtype=x.dtype, device=x.device).index_add(0, segment, shifted.exp())
    return shifted - total.log()[segment]


def _segment_softmax(x: Any, segment: Any, n: int) -> Any:
    """``softmax`` of ``x`` within each segment (see :func:`_segment_log_softmax`)."""
    return _segment_log_softmax(x, segment, n).exp()


def _read_offsets(path: Path, meta: dict[str, Any], dim: int) -> dict[str, np.ndarray]:
    """The saved document offsets (none for a model saved without them), each of the
    document model's ``dim`` dimensions."""
    expected = int(meta.get("document_offsets", 0))
    if not expected:
        return {}
    if not path.exists():
        raise MissingInputError(f"{path}: missing; ranker.json lists {expected} document offsets")
    with np.load(path, allow_pickle=False) as f:
        keys, offsets = f["keys"], f["offsets"]
    if keys.shape != (expected,) or offsets.ndim != 2 or offsets.shape[0] != expected:
        raise DataFormatError(
            f"document offsets of shape {offsets.shape} for {keys.shape} keys; ranker.json "
            f"lists {expected}",
            path=path,
        )
    if offsets.shape[1] != dim:
        raise DataFormatError(
            f"document offsets of {offsets.shape[1]} dimensions; the document model embeds in "
            f"{dim}",
            path=path,
        )
    return {str(k): offsets[i].astype(np.float32) for i, k in enumerate(keys)}


def _click_inputs(
    cfg: NeuralConfig,
    y_click: npt.ArrayLike | None,
    click_share: npt.ArrayLike | None,
    qid: npt.ArrayLike,
) -> tuple[np.ndarray, np.ndarray]:
    """Checked ``(y_click, click_share)`` arrays, one value per row."""
    if y_click is None or click_share is None:
        raise DataFormatError("y_click and click_share go together: give both or neither")
    if cfg.loss != "listwise":
        raise ConfigError("click labels mix into the listwise loss; set neural.loss: listwise")
    q = np.asarray(qid)
    yc = np.asarray(y_click, dtype=np.float64)
    share = np.asarray(click_share, dtype=np.float64)
    for name, arr in (("y_click", yc), ("click_share", share)):
        if arr.shape != q.shape:
            raise DataFormatError(f"{name} has shape {arr.shape}; expected {q.shape}, one per pair")
    known = ~np.isnan(yc)
    if (yc[known] < 0).any():
        raise DataFormatError(
            "click labels must be >= 0",
            row=int(np.flatnonzero(known & (yc < 0))[0]),
            column="y_click",
        )
    bad = ~np.isfinite(share) | (share < 0) | (share > 1)
    if bad.any():
        raise DataFormatError(
            "click_share must be in [0, 1]", row=int(np.flatnonzero(bad)[0]), column="click_share"
        )
    offsets = offsets_from_qid(q)
    first = np.repeat(share[offsets[:-1]], np.diff(offsets))
    if not np.allclose(first, share):
        raise DataFormatError(
            "click_share is one value per query; rows of a query differ",
            row=int(np.flatnonzero(~np.isclose(first, share))[0]),
            column="click_share",
        )
    return yc, share


def in_batch_negatives(
    j: int, tops: list[np.ndarray], rows: np.ndarray, doc_ids: np.ndarray
) -> np.ndarray:
    """Rows that serve as query ``j``'s negatives: the other queries' ``tops`` (their
    teacher's best documents), minus any document among ``rows`` (all of ``j``'s own
    candidates) and repeats, in batch order."""
    own = set(doc_ids[rows].tolist())
    out: list[int] = []
    for k, top in enumerate(tops):
        if k == j:
            continue
        for row in top.tolist():
            doc = int(doc_ids[row])
            if doc not in own:
                own.add(doc)
                out.append(row)
    return np.asarray(out, dtype=np.int64)
