"""Weighted wrappers around sentence-transformers' losses (imported lazily: needs torch).

sentence-transformers' losses average over the batch with no sample weights;
these wrappers compute per-example (pointwise) or per-query (listwise) losses
and take the weighted mean ``sum(w_i * loss_i) / n``, so a weight of 2 counts
an example twice and all-ones weights give the unweighted loss exactly.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Cosine similarities are multiplied by this before a softmax (as in
#: sentence-transformers' MultipleNegativesRankingLoss), so a list's
#: distribution can be peaked although cosines live in [-1, 1].
COSINE_SCALE = 20.0


class WeightedPointwiseCrossEncoderLoss(nn.Module):
    """BCE on grades scaled to [0, 1] (``BinaryCrossEntropyLoss`` per example), weighted.

    Dataset columns: ``query``, ``document``, ``weight``, ``label`` (scaled grade).
    """

    def __init__(self, model: Any) -> None:
        super().__init__()
        from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

        self.model = model
        self.inner = BinaryCrossEntropyLoss(model, reduction="none")

    def forward(
        self,
        inputs: list[list[Any]],
        labels: Tensor,
        prompt: str | None = None,
        task: str | None = None,
    ) -> Tensor:
        queries, documents, weights = inputs
        self.inner.model = self.model
        per_example = self.inner([queries, documents], labels, prompt=prompt, task=task)
        w = torch.as_tensor(weights, dtype=per_example.dtype, device=per_example.device)
        return (per_example.view(-1) * w).sum() / w.numel()


class WeightedListwiseCrossEncoderLoss(nn.Module):
    """A sentence-transformers listwise loss (ListNet, LambdaLoss) per query, weighted per query.

    Dataset columns: ``query``, ``docs`` (list), ``weight``, ``labels`` (list of grades).
    """

    def __init__(self, model: Any, kind: str) -> None:
        super().__init__()
        from sentence_transformers.cross_encoder.losses import LambdaLoss, ListNetLoss

        self.model = model
        self.inner: nn.Module = LambdaLoss(model) if kind == "lambdaloss" else ListNetLoss(model)

    def forward(
        self,
        inputs: list[list[Any]],
        labels: list[Tensor],
        prompt: str | None = None,
        task: str | None = None,
    ) -> Tensor:
        queries, docs, weights = inputs
        self.inner.model = self.model
        total: Tensor | None = None
        for query, doc_list, w, lab in zip(queries, docs, weights, labels, strict=True):
            loss = self.inner([[query], [doc_list]], [lab], prompt=prompt, task=task) * float(w)
            total = loss if total is None else total + loss
        assert total is not None  # a batch holds at least one query
        return total / len(queries)


class WeightedBiEncoderLoss(nn.Module):
    """Bi-encoder losses on the cosine of query and document embeddings, weighted.

    ``labels`` has three columns: target, weight, query group. Pointwise: squared
    error between the cosine and the scaled grade (``CosineSimilarityLoss`` per
    example). Listwise: ListNet within each query group of the batch (the batch
    sampler keeps a query's documents together), on ``COSINE_SCALE * cosine``.
    """

    def __init__(self, model: Any, listwise: bool) -> None:
        super().__init__()
        self.model = model
        self.listwise = listwise

    def forward(self, sentence_features: list[dict[str, Tensor]], labels: Tensor) -> Tensor:
        q, d = (self.model(f)["sentence_embedding"] for f in sentence_features)
        cos = F.cosine_similarity(q.float(), d.float(), dim=-1)
        labels = labels.to(cos.device).float()
        target, weight, group = labels[:, 0], labels[:, 1], labels[:, 2]
        if not self.listwise:
            return (weight * (cos - target) ** 2).sum() / cos.numel()
        groups = torch.unique(group)
        total = cos.new_zeros(())
        for g in groups:
            rows = group == g
            log_p = F.log_softmax(COSINE_SCALE * cos[rows], dim=0)
            p_true = F.softmax(target[rows], dim=0)
            total = total + weight[rows][0] * -(p_true * log_p).sum()
        return total / groups.numel()
