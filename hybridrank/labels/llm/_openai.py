"""The ``openai`` backend: any OpenAI-compatible chat-completions endpoint."""

from __future__ import annotations

import email.utils
import http.client
import json
import logging
import math
import os
import random
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, ClassVar

from hybridrank.errors import ConfigError, ServiceUnreachableError
from hybridrank.labels.llm._prompt import AnswerParseError, get_prompt, parse_grade
from hybridrank.labels.llm._protocol import (
    Annotator,
    Judgment,
    Pair,
    register_annotator,
)
from hybridrank.labels.llm._protocol import (
    with_partial as _with_partial,
)

logger = logging.getLogger(__name__)

#: HTTP statuses worth asking again: rate limits, timeouts and server errors.
RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
#: Statuses that mean the configuration is wrong (key, model or URL): every pair would fail.
CONFIG_STATUSES = frozenset({401, 403, 404})


class _RetryableError(Exception):
    """One HTTP attempt failed in a way that another attempt may fix."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _UnreachableError(_RetryableError):
    """No connection at all (refused, unknown host): retried, then the run stops."""


class _PairError(Exception):
    """The endpoint refused this pair's request (a 4xx other than the configuration ones)."""


@dataclass
class _Reply:
    content: str
    tokens_in: int | None
    tokens_out: int | None
    logprobs: list[Any] | None = None
    truncated: bool = False  # the server stopped at max_tokens (finish_reason "length")


def grade_distribution(tokens: Sequence[Any], grade: int) -> dict[int, float] | None:
    """Probabilities of the grades 0-3 at the answer's grade token, from chat logprobs.

    ``tokens`` is ``choices[0].logprobs.content`` of a chat-completions
    response: one ``{"token", "logprob", "top_logprobs": [{"token", "logprob"}]}``
    per generated token. The grade token is the last token that reads as the
    parsed grade; the distribution renormalises the probabilities of the
    digit tokens 0-3 among its alternatives. None when the server returned no
    such token or no alternatives (the caller then reports no expected grade).
    """
    for entry in reversed(list(tokens)):
        if not isinstance(entry, Mapping) or str(entry.get("token", "")).strip() != str(grade):
            continue
        alternatives = [*(entry.get("top_logprobs") or []), entry]
        probs: dict[int, float] = {}
        for alt in alternatives:
            if not isinstance(alt, Mapping):
                continue
            text = str(alt.get("token", "")).strip()
            logprob = alt.get("logprob")
            if text in ("0", "1", "2", "3") and isinstance(logprob, int | float):
                probs[int(text)] = max(probs.get(int(text), 0.0), math.exp(float(logprob)))
        total = sum(probs.values())
        if total <= 0 or len(probs) < 1:
            return None
        return {g: p / total for g, p in sorted(probs.items())}
    return None


class RateLimiter:
    """Spaces request starts at least ``60 / requests_per_minute`` seconds apart, across threads.

    Example:
        >>> limiter = RateLimiter(6000)
        >>> limiter.wait()
    """

    def __init__(self, requests_per_minute: float) -> None:
        self.interval = 60.0 / requests_per_minute
        self._lock = threading.Lock()
        self._next = 0.0

    def wait(self) -> None:
        """Block until this caller's slot comes."""
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self.interval
        if slot > now:
            time.sleep(slot - now)


@register_annotator
class OpenAIAnnotator(Annotator):
    """An OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, llama.cpp, Ollama, ...).

    Each pair is one request with the prompt variant ``prompt`` (``title``:
    :func:`~hybridrank.labels.llm.build_messages`; ``described``: with the
    query's description and narrative where it has them); the answer is read by
    :func:`~hybridrank.labels.llm.parse_grade` and nothing else. A batch is
    sent over ``concurrency`` threads. Rate limits (429), server errors (5xx),
    timeouts and dropped connections are retried with exponential backoff and
    jitter (``Retry-After`` is honoured); unparseable answers are asked again
    ``max_parse_retries`` times. A pair whose attempts run out gets a failed
    :class:`Judgment` with the error and the last raw answer, never a default
    grade. ``Judgment.attempts`` counts every HTTP request made for the pair.

    The API key is read from the environment variable ``api_key_env`` at each
    request (it may be unset for local servers). It is sent only in the
    ``Authorization`` header, never kept on the annotator, logged, shown by
    ``repr`` or written anywhere.

    Args:
        base_url: The API root, e.g. ``http://127.0.0.1:8000/v1``;
            ``/chat/completions`` is appended.
        model: Model name sent to the endpoint (part of the cache key).
        api_key_env: Environment variable holding the API key.
        timeout_s: Seconds allowed for connecting and for each read.
        max_retries: Further attempts after a retryable HTTP failure.
        max_parse_retries: Further attempts after an unparseable answer.
        concurrency: Requests in flight at once.
        requests_per_minute: Upper bound on request starts per minute (None: no bound).
        temperature: Sampling temperature sent with each request.
        max_tokens: Completion token limit sent with each request.
        price_in_per_1k: Price of 1,000 prompt tokens, for :meth:`cost_estimate`.
        price_out_per_1k: Price of 1,000 completion tokens.
        backoff_s: First backoff delay; doubles with each retry.
        max_backoff_s: Longest wait between attempts (``Retry-After`` included).
        seed: Seeds the backoff jitter.
        logprobs: Ask the server for the answer tokens' log-probabilities
            (``logprobs``, ``top_logprobs: 5``) and record the expected grade
            and the parsed grade's probability where it returns them.
        prompt: The prompt variant, ``title`` (the query text alone) or
            ``described`` (adds the query's description and narrative in their
            own blocks; pairs without them are asked the ``title`` question).

    Example:
        >>> ann = OpenAIAnnotator(base_url="http://127.0.0.1:8000/v1", model="smollm2")
        >>> ann
        OpenAIAnnotator(base_url='http://127.0.0.1:8000/v1', model='smollm2', api_key_env='OPENAI_API_KEY')
    """

    backend: ClassVar[str] = "openai"

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key_env: str = "OPENAI_API_KEY",
        timeout_s: float = 30.0,
        max_retries: int = 4,
        max_parse_retries: int = 1,
        concurrency: int = 4,
        requests_per_minute: float | None = None,
        temperature: float = 0.0,
        max_tokens: int = 8,
        price_in_per_1k: float | None = None,
        price_out_per_1k: float | None = None,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        seed: int = 0,
        logprobs: bool = False,
        prompt: str = "title",
    ) -> None:
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ConfigError(f"openai annotator: base_url {base_url!r} is not an http(s) URL")
        if not isinstance(model, str) or not model:
            raise ConfigError("openai annotator: model must be a non-empty model name")
        _check_int("max_retries", max_retries, 0)
        _check_int("max_parse_retries", max_parse_retries, 0)
        _check_int("concurrency", concurrency, 1)
        _check_int("max_tokens", max_tokens, 1)
        for name, value in (
            ("timeout_s", timeout_s),
            ("backoff_s", backoff_s),
            ("max_backoff_s", max_backoff_s),
        ):
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ConfigError(f"openai annotator: {name} must be a number >= 0, got {value!r}")
        if timeout_s <= 0:
            raise ConfigError(f"openai annotator: timeout_s must be > 0, got {timeout_s!r}")
        if requests_per_minute is not None and not requests_per_minute > 0:
            raise ConfigError(
                f"openai annotator: requests_per_minute must be > 0 or None, got {requests_per_minute!r}"
            )
        for name, price in (
            ("price_in_per_1k", price_in_per_1k),
            ("price_out_per_1k", price_out_per_1k),
        ):
            if price is not None and not price >= 0:
                raise ConfigError(f"openai annotator: {name} must be >= 0 or None, got {price!r}")
        self.base_url = base_url.rstrip("/")
        self._model = model
        self.api_key_env = api_key_env
        self.timeout_s = float(timeout_s)
        self.max_retries = max_retries
        self.max_parse_retries = max_parse_retries
        self.concurrency = concurrency
        self.requests_per_minute = requests_per_minute
        self.temperature = float(temperature)
        self.max_tokens = max_tokens
        self.price_in_per_1k = price_in_per_1k
        self.price_out_per_1k = price_out_per_1k
        self.backoff_s = float(backoff_s)
        self.max_backoff_s = float(max_backoff_s)
        self.logprobs = bool(logprobs)
        self.prompt = prompt
        try:
            self._prompt = get_prompt(prompt)
        except ConfigError as exc:
            raise ConfigError(f"openai annotator: {exc}") from None
        self._url = self.base_url + "/chat/completions"
        if not isinstance(api_key_env, str) or not api_key_env:
            raise ConfigError("openai annotator: api_key_env must name an environment variable")
        if (
            self._api_key()
            and parsed.scheme == "http"
            and parsed.hostname not in ("127.0.0.1", "localhost", "::1")
        ):
            logger.warning(
                "openai annotator: sending an API key over plain http to %s", parsed.hostname
            )
        self._limiter = RateLimiter(requests_per_minute) if requests_per_minute else None
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(base_url={self.base_url!r}, model={self._model!r}, "
            f"api_key_env={self.api_key_env!r})"
        )

    def __getstate__(self) -> dict[str, Any]:
        # Locks do not pickle; the key is not in the state to begin with.
        state = self.__dict__.copy()
        del state["_rng_lock"], state["_limiter"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._rng_lock = threading.Lock()
        rpm = self.requests_per_minute
        self._limiter = RateLimiter(rpm) if rpm else None

    def _api_key(self) -> str | None:
        # Read at each request and never stored, so no copy, pickle or log of the annotator holds it.
        return os.environ.get(self.api_key_env) or None

    @property
    def model(self) -> str:
        return self._model

    @property
    def prompt_version(self) -> str:
        return self._prompt.version

    @property
    def reads_query_context(self) -> bool:
        return self._prompt.reads_query_context

    def prompt_version_for(self, pair: Pair) -> str:
        return self._prompt.version_for(pair)

    def cost_estimate(self, tokens_in: int, tokens_out: int) -> float | None:
        """Tokens times the configured prices per 1,000; None when no price is set."""
        if self.price_in_per_1k is None and self.price_out_per_1k is None:
            return None
        return (
            tokens_in * (self.price_in_per_1k or 0.0) + tokens_out * (self.price_out_per_1k or 0.0)
        ) / 1000.0

    def annotate(self, pairs: Sequence[Pair]) -> list[Judgment]:
        """One judgment per pair, asked ``concurrency`` at a time.

        Raises:
            ConfigError: If the endpoint answers 401, 403 or 404 (wrong key,
                model or URL), which no retry can fix.
        """
        if not pairs:
            return []
        done: dict[int, Judgment] = {}
        if self.concurrency == 1 or len(pairs) == 1:
            try:
                for i, pair in enumerate(pairs):
                    done[i] = self._judge(pair)
            except BaseException as exc:
                raise _with_partial(exc, done) from None
            return [done[i] for i in range(len(pairs))]
        pool = ThreadPoolExecutor(max_workers=min(self.concurrency, len(pairs)))
        try:
            futures = {pool.submit(self._judge, p): i for i, p in enumerate(pairs)}
            for future in as_completed(futures):
                done[futures[future]] = future.result()
        except BaseException as exc:
            # Ctrl-C or a stop: the answers already given go to the cache (see
            # annotate_pairs); the queued requests are not sent.
            pool.shutdown(wait=False, cancel_futures=True)
            raise _with_partial(exc, done) from None
        pool.shutdown()
        return [done[i] for i in range(len(pairs))]

    def _judge(self, pair: Pair) -> Judgment:
        request: dict[str, Any] = {
            "model": self._model,
            "messages": self._prompt.messages(pair),
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "n": 1,
        }
        if self.logprobs:
            request.update(logprobs=True, top_logprobs=5)
        body = json.dumps(request).encode("utf-8")
        attempts = 0
        tokens_in = tokens_out = 0
        has_usage = False
        raw = ""
        error = ""
        for ask in range(self.max_parse_retries + 1):
            http_failures = 0
            while True:
                attempts += 1
                try:
                    reply = self._post(body)
                except _RetryableError as exc:
                    http_failures += 1
                    error = str(exc)
                    if http_failures > self.max_retries and isinstance(exc, _UnreachableError):
                        # Every other pair would fail the same way: stop, and record no
                        # failure that a rerun would then take as this pair's answer.
                        raise ServiceUnreachableError(
                            f"openai annotator: cannot reach {self._url} ({exc}; "
                            f"{http_failures} attempts); start the server or fix base_url, "
                            "then rerun: the answers already given are kept"
                        ) from None
                    if http_failures > self.max_retries:
                        error = f"{error} (gave up after {http_failures} attempts)"
                        logger.warning("pair (%s, %s): %s", pair.qid, pair.docid, error)
                        return self._failed(raw, error, attempts, tokens_in, tokens_out, has_usage)
                    delay = self._backoff(http_failures, exc.retry_after)
                    logger.debug(
                        "pair (%s, %s): %s; retrying in %.2fs", pair.qid, pair.docid, exc, delay
                    )
                    time.sleep(delay)
                    continue
                except _PairError as exc:
                    logger.warning("pair (%s, %s): %s", pair.qid, pair.docid, exc)
                    return self._failed(raw, str(exc), attempts, tokens_in, tokens_out, has_usage)
                break
            raw = reply.content
            if reply.tokens_in is not None or reply.tokens_out is not None:
                has_usage = True
                tokens_in += reply.tokens_in or 0
                tokens_out += reply.tokens_out or 0
            try:
                grade = parse_grade(raw)
            except AnswerParseError as exc:
                error = str(exc)
                if reply.truncated:
                    # Asking again with the same limit would be cut the same way.
                    error = (
                        f"{error}; the answer was cut at max_tokens={self.max_tokens}: raise "
                        "max_tokens (--max-tokens) for a model that reasons before its grade"
                    )
                    logger.warning("pair (%s, %s): %s", pair.qid, pair.docid, error)
                    return self._failed(raw, error, attempts, tokens_in, tokens_out, has_usage)
                logger.debug(
                    "pair (%s, %s): unparseable answer (ask %d): %s",
                    pair.qid,
                    pair.docid,
                    ask + 1,
                    exc,
                )
                continue
            dist = grade_distribution(reply.logprobs, grade) if reply.logprobs else None
            return Judgment(
                grade=grade,
                confidence=None if dist is None else dist.get(grade),
                expected_grade=None if dist is None else sum(g * p for g, p in dist.items()),
                raw=raw,
                attempts=attempts,
                tokens_in=tokens_in if has_usage else None,
                tokens_out=tokens_out if has_usage else None,
            )
        logger.warning(
            "pair (%s, %s): no parseable answer after %d asks", pair.qid, pair.docid, ask + 1
        )
        return self._failed(raw, error, attempts, tokens_in, tokens_out, has_usage)

    @staticmethod
    def _failed(
        raw: str, error: str, attempts: int, t_in: int, t_out: int, has_usage: bool
    ) -> Judgment:
        return Judgment(
            grade=None,
            raw=raw,
            error=error,
            attempts=attempts,
            tokens_in=t_in if has_usage else None,
            tokens_out=t_out if has_usage else None,
        )

    def _backoff(self, failures: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_backoff_s)
        with self._rng_lock:
            jitter = self._rng.uniform(0.5, 1.0)
        return min(self.backoff_s * 2.0 ** (failures - 1), self.max_backoff_s) * jitter

    def _post(self, body: bytes) -> _Reply:
        """One HTTP request; its failures sorted into retryable, per-pair and configuration errors."""
        if self._limiter is not None:
            self._limiter.wait()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = self._api_key()
        if key:
            headers["Authorization"] = "Bearer " + key
        request = urllib.request.Request(self._url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            detail = _snippet(exc.read() if exc.fp is not None else b"")
            exc.close()
            if exc.code in RETRY_STATUSES:
                raise _RetryableError(
                    f"HTTP {exc.code}: {detail}", _retry_after(exc.headers)
                ) from None
            if exc.code in CONFIG_STATUSES:
                raise ConfigError(
                    f"openai annotator: {self._url} answered HTTP {exc.code} for model {self._model!r} "
                    f"({detail}); check base_url, model and the key in ${self.api_key_env}"
                ) from None
            if exc.code >= 500:
                raise _RetryableError(f"HTTP {exc.code}: {detail}") from None
            raise _PairError(f"HTTP {exc.code}: {detail}") from None
        except TimeoutError as exc:
            raise _RetryableError(f"timed out after {self.timeout_s:g}s ({exc})") from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, ConnectionRefusedError | socket.gaierror):
                raise _UnreachableError(f"connection error: {exc.reason}") from None
            raise _RetryableError(f"connection error: {exc.reason}") from None
        except (http.client.HTTPException, ConnectionError, OSError) as exc:
            raise _RetryableError(f"connection error: {type(exc).__name__}: {exc}") from None
        try:
            data = json.loads(payload)
            content = data["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise _RetryableError(
                f"malformed chat-completions response: {_snippet(payload)}"
            ) from None
        usage = data.get("usage") if isinstance(data, dict) else None
        usage = usage if isinstance(usage, dict) else {}
        logprobs = None
        try:
            found = data["choices"][0].get("logprobs") or {}
            logprobs = found.get("content") if isinstance(found, dict) else None
        except (AttributeError, KeyError, IndexError, TypeError):
            logprobs = None
        try:
            truncated = data["choices"][0].get("finish_reason") == "length"
        except (AttributeError, KeyError, IndexError, TypeError):
            truncated = False
        return _Reply(
            content=content if isinstance(content, str) else "",
            tokens_in=_int_or_none(usage.get("prompt_tokens")),
            tokens_out=_int_or_none(usage.get("completion_tokens")),
            logprobs=logprobs if isinstance(logprobs, list) else None,
            truncated=truncated,
        )


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(
            f"openai annotator: {name} must be an integer >= {minimum}, got {value!r}"
        )


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _snippet(payload: bytes, limit: int = 200) -> str:
    text = payload.decode("utf-8", "replace").strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _retry_after(headers: Any) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date)."""
    value = headers.get("Retry-After") if headers is not None else None
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)
