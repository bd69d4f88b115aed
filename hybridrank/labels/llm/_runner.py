"""Running an annotator over many pairs through the cache, with a budget and a progress bar."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from hybridrank import columns as C
from hybridrank.errors import MissingColumnError
from hybridrank.labels.llm._cache import AnswerCache, cache_key
from hybridrank.labels.llm._protocol import PARTIAL, Annotator, Judgment, Pair

logger = logging.getLogger(__name__)

#: Columns of the labels table :func:`annotate_pairs` returns.
LABEL_TABLE_COLUMNS = (
    C.QID, C.DOCID, "grade", "score", "confidence", "expected_grade", "status", "error",
    "raw", "backend", "model", "prompt_version",
)  # fmt: skip


@dataclass(frozen=True)
class AnnotationStats:
    """Counts of one run.

    Attributes:
        pairs: Pairs asked for.
        distinct: Distinct texts among them (one answer serves all repeats).
        cached: Distinct texts answered from the cache.
        new: Distinct texts answered by the backend in this run.
        failed: Distinct texts whose stored answer is a failure (new or cached).
        not_run: Distinct texts left unanswered because the budget ran out.
        calls: Backend attempts in this run (new answers plus retries).
        tokens_in: Prompt tokens spent in this run, where known.
        tokens_out: Completion tokens spent in this run, where known.
        cost: Estimated cost of this run, where the backend has prices.
        seconds: Wall time.
    """

    pairs: int
    distinct: int
    cached: int
    new: int
    failed: int
    not_run: int
    calls: int
    tokens_in: int
    tokens_out: int
    cost: float | None
    seconds: float

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def total(cls, parts: Sequence[AnnotationStats]) -> AnnotationStats:
        """The counts of several judges over the same pairs: ``pairs`` once, the rest summed
        (texts, calls and tokens of every judge; cost where any judge has prices)."""
        if not parts:
            raise ValueError("AnnotationStats.total needs at least one part")
        costs = [p.cost for p in parts if p.cost is not None]
        return cls(
            pairs=max(p.pairs for p in parts),
            distinct=sum(p.distinct for p in parts),
            cached=sum(p.cached for p in parts),
            new=sum(p.new for p in parts),
            failed=sum(p.failed for p in parts),
            not_run=sum(p.not_run for p in parts),
            calls=sum(p.calls for p in parts),
            tokens_in=sum(p.tokens_in for p in parts),
            tokens_out=sum(p.tokens_out for p in parts),
            cost=sum(costs) if costs else None,
            seconds=sum(p.seconds for p in parts),
        )

    def summary(self) -> str:
        parts = [
            f"{self.pairs} pairs ({self.distinct} distinct texts): {self.cached} cached, "
            f"{self.new} new, {self.failed} failed, {self.not_run} left by the budget",
            f"{self.calls} backend attempts in {self.seconds:.1f}s",
        ]
        if self.tokens_in or self.tokens_out:
            parts.append(f"tokens {self.tokens_in} in / {self.tokens_out} out")
        if self.cost is not None:
            parts.append(f"estimated cost {self.cost:.4f}")
        return "; ".join(parts)


def pairs_from_candidates(
    candidates: pd.DataFrame, queries: pd.DataFrame, docs: pd.DataFrame
) -> list[Pair]:
    """The pairs of a candidate table, with query and document texts looked up by id.

    A query's ``description`` and ``narrative`` (where the queries table has
    them) travel with its pairs; a judge that does not read them never sees
    them (:func:`annotate_pairs` drops them first).
    """
    by_qid = queries.set_index(C.QID)
    dtext = docs.set_index(C.DOCID)[C.TEXT]
    q = by_qid[C.TEXT].reindex(candidates[C.QID]).to_numpy()
    d = dtext.reindex(candidates[C.DOCID]).to_numpy()
    missing = pd.isna(q) | pd.isna(d)
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise MissingColumnError(
            f"candidate row {row} ({candidates[C.QID].iloc[row]!r}, {candidates[C.DOCID].iloc[row]!r}) "
            "names a query or document without text"
        )
    context = []
    for column in C.QUERY_CONTEXT_COLUMNS:
        if column in by_qid.columns:
            values = by_qid[column].reindex(candidates[C.QID]).to_numpy(dtype=object)
            context.append([v if isinstance(v, str) else "" for v in values])
        else:
            context.append([""] * len(candidates))
    return [
        Pair(str(qid), str(docid), str(qt), str(dt), description=de, narrative=na)
        for qid, docid, qt, dt, de, na in zip(
            candidates[C.QID], candidates[C.DOCID], q, d, *context, strict=True
        )
    ]


def count_answered(annotator: Annotator, pairs: Sequence[Pair], cache: AnswerCache) -> int:
    """How many of ``pairs`` the cache holds this annotator's answer for (nothing is asked)."""
    if not annotator.reads_query_context:
        pairs = [p.without_context() for p in pairs]
    keys = [
        cache_key(annotator.backend, annotator.model, annotator.prompt_version_for(p), p.text_hash)
        for p in pairs
    ]
    found = cache.get_many(list(dict.fromkeys(keys)))
    return sum(key in found for key in keys)


def annotate_pairs(
    annotator: Annotator,
    pairs: Sequence[Pair],
    cache: AnswerCache,
    *,
    budget: int | None = None,
    batch_size: int = 16,
    retry_failed: bool = False,
    progress: bool = True,
    label: str | None = None,
) -> tuple[pd.DataFrame, AnnotationStats]:
    """Judge pairs, asking the backend only for texts the cache lacks.

    Every batch is stored as soon as it is answered, so a run killed at any
    point resumes where it stopped: the rerun finds the stored answers and asks
    only for the rest. Pairs with identical texts share one answer.

    Args:
        annotator: The backend.
        pairs: Pairs to judge.
        cache: Where answers live.
        budget: At most this many new texts are sent to the backend in this run.
        batch_size: Pairs per backend call.
        retry_failed: Ask again for texts whose stored answer is a failure.
        progress: Show a progress bar.
        label: What the progress bar names (default the backend).

    Returns:
        The labels table (one row per pair, :data:`LABEL_TABLE_COLUMNS`; rows
        left by the budget have status ``not_run``) and the run's counts.
    """
    start = time.perf_counter()
    backend, model = annotator.backend, annotator.model
    if not annotator.reads_query_context:
        pairs = [p.without_context() for p in pairs]
    versions = [annotator.prompt_version_for(p) for p in pairs]
    keys = [cache_key(backend, model, v, p.text_hash) for v, p in zip(versions, pairs, strict=True)]
    first: dict[str, Pair] = {}
    version_of: dict[str, str] = {}
    for key, version, pair in zip(keys, versions, pairs, strict=True):
        first.setdefault(key, pair)
        version_of.setdefault(key, version)
    stored = cache.get_many(list(first))
    cached_ok = {k for k, j in stored.items() if j.ok}
    todo = [k for k in first if k not in stored or (retry_failed and k not in cached_ok)]
    n_cached = len(first) - len(todo)
    not_run = 0
    if budget is not None and len(todo) > budget:
        not_run = len(todo) - budget
        todo = todo[:budget]
        logger.warning("budget %d: %d texts left unannotated this run", budget, not_run)

    calls = tokens_in = tokens_out = 0
    answers: dict[str, Judgment] = dict(stored)
    bar = tqdm(
        total=len(todo),
        desc=f"annotate ({label or backend})",
        unit="pair",
        disable=not progress,
        leave=False,
    )
    try:
        for i in range(0, len(todo), batch_size):
            batch_keys = todo[i : i + batch_size]
            batch = [first[k] for k in batch_keys]
            try:
                judgments = annotator.annotate(batch)
            except BaseException as exc:  # Ctrl-C, an unreachable server: keep what was paid for
                given = getattr(exc, PARTIAL, None) or {}
                if given:
                    cache.put_many(
                        (batch_keys[j], backend, model, version_of[batch_keys[j]],
                         batch[j].text_hash, batch[j].qid, batch[j].docid, answer)
                        for j, answer in sorted(given.items())
                    )  # fmt: skip
                    logger.warning(
                        "stopped mid-batch: the %d answers already given are kept in the cache",
                        len(given),
                    )
                raise
            if len(judgments) != len(batch):
                raise RuntimeError(
                    f"annotator {backend!r} returned {len(judgments)} judgments for {len(batch)} pairs"
                )
            cache.put_many(
                (k, backend, model, version_of[k], p.text_hash, p.qid, p.docid, j)
                for k, p, j in zip(batch_keys, batch, judgments, strict=True)
            )
            for k, j in zip(batch_keys, judgments, strict=True):
                answers[k] = j
                calls += j.attempts
                tokens_in += j.tokens_in or 0
                tokens_out += j.tokens_out or 0
            bar.update(len(batch))
    finally:
        bar.close()

    rows: list[tuple[object, ...]] = []
    for key, version, pair in zip(keys, versions, pairs, strict=True):
        answer = answers.get(key)
        if answer is None:
            rows.append(
                (
                    pair.qid,
                    pair.docid,
                    None,
                    None,
                    None,
                    None,
                    "not_run",
                    None,
                    "",
                    backend,
                    model,
                    version,
                )
            )
        else:
            j = answer
            rows.append(
                (
                    pair.qid, pair.docid, j.grade, j.score, j.confidence, j.expected_grade,
                    "ok" if j.ok else "failed", j.error, j.raw, backend, model, version,
                )
            )  # fmt: skip
    table = pd.DataFrame(rows, columns=list(LABEL_TABLE_COLUMNS))
    table["grade"] = table["grade"].astype("Int64")
    for col in ("score", "confidence", "expected_grade"):
        table[col] = table[col].astype("float64")
    failed = sum(1 for k in first if k in answers and not answers[k].ok)
    stats = AnnotationStats(
        pairs=len(pairs),
        distinct=len(first),
        cached=n_cached,
        new=len(todo),
        failed=failed,
        not_run=not_run,
        calls=calls,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        cost=annotator.cost_estimate(tokens_in, tokens_out),
        seconds=time.perf_counter() - start,
    )
    return table, stats
