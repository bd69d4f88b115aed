"""SQLite (WAL) cache of annotator answers: a rerun makes no repeated call, a killed run resumes."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from hybridrank.labels.llm._protocol import Judgment

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    model TEXT NOT NULL,
    prompt_version TEXT NOT NULL,
    text_hash TEXT NOT NULL,
    qid TEXT NOT NULL,
    docid TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    grade INTEGER,
    score REAL,
    confidence REAL,
    expected_grade REAL,
    raw TEXT NOT NULL,
    error TEXT,
    attempts INTEGER NOT NULL,
    tokens_in INTEGER,
    tokens_out INTEGER,
    created REAL NOT NULL
)
"""


def cache_key(backend: str, model: str, prompt_version: str, text_hash: str) -> str:
    """The cache key: backend, model, prompt version and the pair's text hash."""
    payload = "\x1f".join((backend, model, prompt_version, text_hash))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CachedAnswer:
    """A stored answer with the ids it was first asked for."""

    key: str
    qid: str
    docid: str
    judgment: Judgment


class AnswerCache:
    """Answers keyed by :func:`cache_key`, stored as soon as they arrive.

    Each :meth:`put_many` is one transaction, so a process killed at any point
    leaves every answered batch stored and nothing half-written. A stored
    ``ok`` answer is never overwritten; a stored failure is replaced when a
    later attempt succeeds.

    Example:
        >>> cache = AnswerCache(":memory:")
        >>> cache.stats()
        {'ok': 0, 'failed': 0}
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, timeout=60)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(_SCHEMA)
        self._conn.commit()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> AnswerCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get_many(self, keys: Sequence[str]) -> dict[str, Judgment]:
        """Stored judgments for the keys that have one."""
        out: dict[str, Judgment] = {}
        with self._lock:
            for start in range(0, len(keys), 900):
                chunk = list(keys[start : start + 900])
                marks = ",".join("?" * len(chunk))
                rows = self._conn.execute(
                    "SELECT key, status, grade, score, confidence, expected_grade, raw, error, attempts, "
                    f"tokens_in, tokens_out FROM answers WHERE key IN ({marks})",
                    chunk,
                ).fetchall()
                for key, status, grade, score, conf, exp, raw, error, attempts, t_in, t_out in rows:
                    out[key] = Judgment(
                        grade=grade,
                        score=score,
                        confidence=conf,
                        expected_grade=exp,
                        raw=raw,
                        error=error if status == "failed" else None,
                        attempts=attempts,
                        tokens_in=t_in,
                        tokens_out=t_out,
                    )
        return out

    def put_many(
        self,
        rows: Iterable[tuple[str, str, str, str, str, str, str, Judgment]],
    ) -> int:
        """Store ``(key, backend, model, prompt_version, text_hash, qid, docid, judgment)`` rows.

        Returns:
            The number of rows written (an ``ok`` answer already stored is kept).
        """
        now = time.time()
        payload = [
            (
                key, backend, model, version, text_hash, qid, docid,
                "ok" if j.ok else "failed", j.grade, j.score, j.confidence, j.expected_grade,
                j.raw, j.error, j.attempts, j.tokens_in, j.tokens_out, now,
            )
            for key, backend, model, version, text_hash, qid, docid, j in rows
        ]  # fmt: skip
        with self._lock:
            cur = self._conn.executemany(
                "INSERT INTO answers VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT(key) DO UPDATE SET status=excluded.status, grade=excluded.grade, "
                "score=excluded.score, confidence=excluded.confidence, "
                "expected_grade=excluded.expected_grade, raw=excluded.raw, error=excluded.error, "
                "attempts=answers.attempts + excluded.attempts, tokens_in=excluded.tokens_in, "
                "tokens_out=excluded.tokens_out, created=excluded.created "
                "WHERE answers.status = 'failed'",
                payload,
            )
            self._conn.commit()
            return cur.rowcount

    def stats(self) -> dict[str, int]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT status, count(*) FROM answers GROUP BY status"
            ).fetchall()
        counts = {"ok": 0, "failed": 0}
        counts.update({status: int(n) for status, n in rows})
        return counts

    def count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM answers").fetchone()[0])
