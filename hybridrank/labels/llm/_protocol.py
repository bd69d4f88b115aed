"""The annotator protocol: pairs in, judgments out, backends in an explicit registry."""

from __future__ import annotations

import difflib
import hashlib
import inspect
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from hybridrank._config import unknown_keys_error
from hybridrank.errors import ConfigError

GRADES = (0, 1, 2, 3)


@dataclass(frozen=True)
class Pair:
    """One (query, document) pair to judge.

    Attributes:
        qid: Query id.
        docid: Document id.
        query: Query text.
        document: Document text.
        description: The query's description, where the collection gives one
            (what the searcher meant); "" when none.
        narrative: The query's narrative (what a relevant document must
            contain); "" when none.
    """

    qid: str
    docid: str
    query: str
    document: str
    description: str = ""
    narrative: str = ""

    @property
    def has_context(self) -> bool:
        """Whether the query comes with a description or a narrative."""
        return bool(self.description or self.narrative)

    def without_context(self) -> Pair:
        """The pair as a judge that reads only the query sees it (description and narrative dropped)."""
        return replace(self, description="", narrative="") if self.has_context else self

    @property
    def text_hash(self) -> str:
        """SHA-256 of the pair's texts (not its ids): the same texts share one answer.

        A pair without description and narrative hashes its query and document
        alone (as before they existed, so stored answers stay valid); with
        them, they are part of the hash, so a changed description is a new text.
        """
        digest = hashlib.sha256()
        digest.update(self.query.encode("utf-8"))
        digest.update(b"\x00")
        digest.update(self.document.encode("utf-8"))
        if self.has_context:
            for name, text in (("description", self.description), ("narrative", self.narrative)):
                digest.update(b"\x00" + name.encode("ascii") + b"\x00")
                digest.update(text.encode("utf-8"))
        return digest.hexdigest()


@dataclass(frozen=True)
class Judgment:
    """An annotator's answer for one pair.

    Attributes:
        grade: 0-3, or None when the answer could not be parsed (a failure).
        confidence: Probability of the grade where the backend knows it.
        raw: The raw answer text (or a short description for non-LLM judges).
        error: Why there is no grade (parse failure, HTTP error, ...); None when graded.
        tokens_in: Prompt tokens spent, where known.
        tokens_out: Completion tokens spent, where known.
        attempts: Calls made for this pair (1 + retries).
        expected_grade: Probability-weighted grade where the backend has a distribution.
        score: A continuous relevance score for judges that grade by threshold
            later (the embedding judge's similarity); None for LLMs.
    """

    grade: int | None
    confidence: float | None = None
    raw: str = ""
    error: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    attempts: int = 1
    expected_grade: float | None = None
    score: float | None = None

    def __post_init__(self) -> None:
        if self.grade is not None and self.grade not in GRADES:
            raise ValueError(f"grade must be one of {GRADES} or None, got {self.grade!r}")

    @property
    def ok(self) -> bool:
        """An answer usable as a label: no error, and a grade or a score."""
        return self.error is None and (self.grade is not None or self.score is not None)


class Annotator(ABC):
    """A relevance judge. Subclasses set ``backend`` and implement :meth:`annotate`.

    ``model`` names what answers (a model id, or a description of the judge)
    and ``prompt_version`` the prompt it was asked with; both are part of every
    cache key, so changing either never reuses an old answer.
    """

    backend: ClassVar[str]
    is_llm: ClassVar[bool] = True

    @property
    @abstractmethod
    def model(self) -> str:
        """Identifier of the answering model (part of the cache key)."""

    @property
    @abstractmethod
    def prompt_version(self) -> str:
        """Version of the prompt or scoring rule (part of the cache key)."""

    @property
    def reads_query_context(self) -> bool:
        """Whether the judge reads a query's description and narrative.

        A judge that does not is given every pair without them (see
        :meth:`Pair.without_context`), so its cache keys ignore them.
        """
        return False

    def prompt_version_for(self, pair: Pair) -> str:
        """The version of the prompt ``pair`` is asked with (part of its cache key).

        Default :attr:`prompt_version`; a prompt variant that asks some pairs
        exactly as another variant does names that variant's version for them,
        so identical questions share one stored answer.
        """
        return self.prompt_version

    @abstractmethod
    def annotate(self, pairs: Sequence[Pair]) -> list[Judgment]:
        """One judgment per pair, in order. Must not raise for one bad answer:
        a pair that fails gets a Judgment with ``grade=None`` and ``error``."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections or models."""

    def cost_estimate(self, tokens_in: int, tokens_out: int) -> float | None:
        """Money spent for these tokens, where prices are configured; else None."""
        return None

    def __enter__(self) -> Annotator:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


ANNOTATORS: dict[str, type[Annotator]] = {}


#: Attribute of an exception raised while a batch was being judged: the judgments already
#: made, by position in the batch, for the caller to keep (see :func:`with_partial`).
PARTIAL = "partial_judgments"


def with_partial(exc: BaseException, done: Mapping[int, Judgment]) -> BaseException:
    """``exc`` carrying the judgments made before it (by position in the batch).

    An annotator interrupted mid-batch (Ctrl-C, an unreachable server) raises
    its exception through this, so :func:`~hybridrank.labels.llm.annotate_pairs`
    stores the answers it paid for before the exception goes on.
    """
    setattr(exc, PARTIAL, {**getattr(exc, PARTIAL, {}), **done})
    return exc


def register_annotator(cls: type[Annotator]) -> type[Annotator]:
    """Class decorator adding a backend to :data:`ANNOTATORS` under ``cls.backend``."""
    if cls.backend in ANNOTATORS and ANNOTATORS[cls.backend] is not cls:
        raise ValueError(f"annotator backend {cls.backend!r} registered twice")
    ANNOTATORS[cls.backend] = cls
    return cls


def check_annotator_params(backend: str, params: Mapping[str, Any]) -> None:
    """Refuse a parameter the backend does not take, naming the closest one it does."""
    cls = ANNOTATORS.get(backend)
    if cls is None:
        return
    accepted = inspect.signature(cls).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
        return
    known = [n for n, p in accepted.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL]
    unknown = sorted(map(str, set(params) - set(known)))
    if unknown:
        raise unknown_keys_error(f"annotate.params of the {backend!r} backend", unknown, known)


def make_annotator(backend: str, **params: Any) -> Annotator:
    """Build a registered backend by name with its keyword parameters."""
    if backend not in ANNOTATORS:
        close = difflib.get_close_matches(str(backend), sorted(ANNOTATORS), n=1)
        raise ConfigError(
            f"annotate.backend: unknown annotator backend {backend!r}"
            + (f" (did you mean {close[0]!r}?)" if close else "")
            + f"; choose from {sorted(ANNOTATORS)}"
        )
    cls = ANNOTATORS[backend]
    check_annotator_params(backend, params)
    try:
        return cls(**params)
    except TypeError as exc:
        raise ConfigError(f"annotate.params of the {backend!r} backend: {exc}") from None
