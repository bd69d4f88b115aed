"""A real chat-completions server on loopback for the openai backend's tests, with fault injection.

The server speaks ``POST /v1/chat/completions`` over real sockets
(``ThreadingHTTPServer``). Answers come from a ``generate`` callable (the
tests give it SmolLM2-135M-Instruct through transformers) or from canned
text. What each request gets is a *behaviour*, chosen in this order: the
script by request number, the first marker queue whose marker occurs in the
request's user message, then the default. Behaviours:

- ``model``: the language model's greedy answer.
- ``answer:TEXT``: 200 with ``TEXT`` as the answer.
- ``logprobs:TEXT|P0,P1,P2,P3``: 200 with ``TEXT`` as the answer and chat
  logprobs whose last token is the answer's last character, with the four
  grade digits as its alternatives at probabilities P0..P3.
- ``garbage``: 200 with an answer that is not a grade.
- ``cut:TEXT``: 200 with ``TEXT`` and ``finish_reason: length`` (stopped at max_tokens).
- ``echo``: 200 answering the document text itself (a model that obeys the document).
- ``429`` or ``429:SECONDS``: rate limited, with ``Retry-After``.
- ``500``: a server error.
- ``slow:SECONDS``: wait, then answer as the default would (past a client timeout).
- ``drop``: send the headers and half the body, then close the connection.

Every request received is recorded (number, user message, behaviour).
"""

from __future__ import annotations

import json
import math
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: ``generate(messages, max_tokens) -> (answer, prompt_tokens, completion_tokens)``.
Generate = Callable[[list[dict[str, str]], int], tuple[str, int, int]]

GARBAGE = "I think it's relevant"
_DOCUMENT = re.compile(r"<document>\n(.*)\n</document>", re.DOTALL)


@dataclass(frozen=True)
class Received:
    """One request as the server saw it."""

    number: int
    user: str
    behaviour: str
    arrived: float
    authorization: str | None


class ChatServer:
    """A loopback chat-completions server; use as a context manager.

    Args:
        generate: The language model, for the ``model`` behaviour.
        default: Behaviour of requests no script names.
        delay_s: Extra seconds every request waits before answering.
    """

    def __init__(
        self, generate: Generate | None = None, *, default: str = "model", delay_s: float = 0.0
    ) -> None:
        self.generate = generate
        self.default = default
        self.delay_s = delay_s
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._by_number: dict[int, str] = {}
        self._by_marker: dict[str, deque[str]] = {}
        self._received: list[Received] = []
        self._in_flight = self._max_in_flight = self._epoch = 0
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.chat = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def start(self) -> ChatServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> ChatServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the script -------------------------------------------------------------------------

    def reset(self, *, default: str = "model", delay_s: float = 0.0) -> None:
        """Forget scripts and received requests (between tests)."""
        with self._lock:
            self.default = default
            self.delay_s = delay_s
            self._by_number.clear()
            self._by_marker.clear()
            self._received.clear()
            # Handlers of earlier tests still sleeping are not counted in the new epoch.
            self._epoch += 1
            self._in_flight = self._max_in_flight = 0

    def on_request(self, number: int, behaviour: str) -> None:
        """Request ``number`` (0-based, in arrival order since the last reset) gets ``behaviour``."""
        with self._lock:
            self._by_number[number] = behaviour

    def on_marker(self, marker: str, behaviours: Iterable[str]) -> None:
        """The next requests whose user message contains ``marker`` get these behaviours, in turn."""
        with self._lock:
            self._by_marker.setdefault(marker, deque()).extend(behaviours)

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    @property
    def count(self) -> int:
        with self._lock:
            return len(self._received)

    def count_with(self, marker: str) -> int:
        """Requests received whose user message contains ``marker``."""
        return sum(marker in r.user for r in self.received)

    @property
    def max_in_flight(self) -> int:
        """Most requests being handled at once since the last reset."""
        with self._lock:
            return self._max_in_flight

    def _leave(self, epoch: int) -> None:
        with self._lock:
            if epoch == self._epoch:
                self._in_flight -= 1

    def _choose(self, user: str, authorization: str | None) -> tuple[str, int]:
        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            number = len(self._received)
            behaviour = self._by_number.pop(number, None)
            if behaviour is None:
                for marker, queue in self._by_marker.items():
                    if queue and marker in user:
                        behaviour = queue.popleft()
                        break
            if behaviour is None:
                behaviour = self.default
            self._received.append(
                Received(number, user, behaviour, time.monotonic(), authorization)
            )
            return behaviour, self._epoch

    def _wait(self, seconds: float) -> None:
        # Wakes early when the server stops, so no handler outlives a test by long.
        self._stopping.wait(timeout=seconds)


class _Handler(BaseHTTPRequestHandler):
    server_version = "hybridrank-test-chat/1"
    _leave: Callable[[], None] | None = None

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        chat: ChatServer = self.server.chat  # type: ignore[attr-defined]
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._json(404, {"error": {"message": f"no route {self.path}"}})
            return
        length = int(self.headers.get("Content-Length", "0"))
        try:
            request = json.loads(self.rfile.read(length))
            messages = [
                {"role": str(m["role"]), "content": str(m["content"])} for m in request["messages"]
            ]
            max_tokens = int(request.get("max_tokens") or 16)
        except (ValueError, KeyError, TypeError) as exc:
            self._json(400, {"error": {"message": f"bad request: {exc}"}})
            return
        user = "\n".join(m["content"] for m in messages if m["role"] == "user")
        behaviour, epoch = chat._choose(user, self.headers.get("Authorization"))
        self._leave = lambda: chat._leave(epoch)
        try:
            self._respond(chat, behaviour, user, messages, max_tokens)
        except (BrokenPipeError, ConnectionResetError):
            pass  # The client gave up (its timeout): nothing to send to.
        finally:
            self._done()

    def _done(self) -> None:
        # Called before the last bytes go out: once the client has its answer it may send
        # the next request, which must not find this one still counted as in flight.
        leave, self._leave = self._leave, None
        if leave is not None:
            leave()

    def _respond(
        self,
        chat: ChatServer,
        behaviour: str,
        user: str,
        messages: list[dict[str, str]],
        max_tokens: int,
    ) -> None:
        if chat.delay_s:
            chat._wait(chat.delay_s)
        kind, _, arg = behaviour.partition(":")
        if kind == "slow":
            chat._wait(float(arg))
            kind, _, arg = chat.default.partition(":")
        if kind == "429":
            self._json(429, {"error": {"message": "rate limited"}}, {"Retry-After": arg or "0"})
        elif kind == "500":
            self._json(500, {"error": {"message": "internal error"}})
        elif kind == "drop":
            self._drop()
        elif kind == "answer":
            self._answer(arg, messages, len(arg.split()))
        elif kind == "logprobs":
            text, _, probs = arg.partition("|")
            p = [float(v) for v in probs.split(",")]
            top = [{"token": str(g), "logprob": math.log(pg)} for g, pg in enumerate(p) if pg > 0]
            last = text.strip()[-1]
            tokens = [{"token": w, "logprob": -0.1, "top_logprobs": []} for w in text.split()[:-1]]
            tokens.append({"token": last, "logprob": top[int(last)]["logprob"], "top_logprobs": top})
            self._answer(text, messages, len(text.split()), logprobs=tokens)
        elif kind == "cut":  # stopped at max_tokens, as a model reasoning at length is
            self._answer(arg, messages, max_tokens, finish_reason="length")
        elif kind == "garbage":
            self._answer(GARBAGE, messages, 5)
        elif kind == "echo":
            m = _DOCUMENT.search(user)
            self._answer(m.group(1) if m else user, messages, 16)
        elif kind == "model":
            if chat.generate is None:
                self._json(500, {"error": {"message": "no model loaded"}})
                return
            text, n_in, n_out = chat.generate(messages, max_tokens)
            self._answer(text, messages, n_out, n_in)
        else:
            self._json(500, {"error": {"message": f"unknown test behaviour {behaviour!r}"}})

    def _answer(
        self,
        text: str,
        messages: list[dict[str, str]],
        n_out: int,
        n_in: int | None = None,
        *,
        logprobs: list[dict[str, Any]] | None = None,
        finish_reason: str = "stop",
    ) -> None:
        if n_in is None:
            n_in = sum(len(m["content"].split()) for m in messages)
        self._json(
            200,
            {
                "id": f"chatcmpl-{time.monotonic_ns()}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": "SmolLM2-135M-Instruct",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": finish_reason,
                        **({"logprobs": {"content": logprobs}} if logprobs is not None else {}),
                    }
                ],
                "usage": {
                    "prompt_tokens": n_in,
                    "completion_tokens": n_out,
                    "total_tokens": n_in + n_out,
                },
            },
        )

    def _json(
        self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        body = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self._done()
        self.wfile.write(body)

    def _drop(self) -> None:
        body = json.dumps(
            {"id": "chatcmpl-dropped", "choices": [{"message": {"content": "Grade: 2"}}]}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self._done()
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True


class TransformersChat:
    """``generate`` for :class:`ChatServer`: greedy decoding with a transformers causal LM.

    Args:
        tokenizer: Its tokenizer (with a chat template).
        model: The causal LM.
        max_new_tokens: Cap on generated tokens, whatever the request asks.
    """

    def __init__(self, tokenizer: Any, model: Any, *, max_new_tokens: int = 8) -> None:
        self.tokenizer = tokenizer
        self.model = model
        self.max_new_tokens = max_new_tokens
        self._lock = threading.Lock()

    def __call__(self, messages: list[dict[str, str]], max_tokens: int) -> tuple[str, int, int]:
        import torch

        text = self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        enc = self.tokenizer([text], return_tensors="pt", add_special_tokens=False)
        enc = {k: v.to(self.model.device) for k, v in enc.items()}
        n_in = int(enc["input_ids"].shape[1])
        with self._lock, torch.no_grad():
            out = self.model.generate(
                **enc,
                max_new_tokens=max(1, min(max_tokens, self.max_new_tokens)),
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        new = out[0, n_in:]
        return self.tokenizer.decode(new, skip_special_tokens=True).strip(), n_in, int(new.shape[0])
