"""The persistent model response cache: one SQLite file (WAL) that several sidecar processes may share.

A response is found by :func:`cache_key`, a SHA-256 over everything that determines the answer: the model
name, the upstream base URL, the method, the path with its query, and the request body with JSON
canonicalised (sorted keys, no insignificant whitespace) so key order in a client's JSON does not matter.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CachedResponse", "ResponseCache", "cache_key", "canonical_body"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    status INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    body BLOB NOT NULL,
    stored_at REAL NOT NULL
)
"""
_BUSY_TIMEOUT_MS = 10_000


def canonical_body(body: bytes) -> bytes:
    """JSON re-serialised with sorted keys and compact separators; anything else unchanged."""
    if not body:
        return b""
    try:
        parsed = json.loads(body)
        return json.dumps(parsed, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    except (ValueError, RecursionError):  # not JSON, nested past the parser, or a lone surrogate (no UTF-8)
        return body


def cache_key(*, model_name: str, upstream: str, method: str, path_and_query: str, body: bytes) -> str:
    """Hex SHA-256 of the parts that determine a model's answer; each part is length-prefixed so no two
    different tuples hash the same bytes."""
    digest = hashlib.sha256()
    parts = (
        model_name.encode(),
        upstream.rstrip("/").encode(),
        method.upper().encode(),
        path_and_query.encode(),
    )
    for part in (*parts, canonical_body(body)):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class CachedResponse:
    status: int
    content_type: str
    body: bytes


class ResponseCache:
    """Get and put responses by key. SQLite calls run in a worker thread so the event loop never blocks on a
    lock held by another process; one connection, serialised by a thread lock."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "responses.sqlite3"
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=_BUSY_TIMEOUT_MS / 1000)
        with self._lock:
            self._db.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            # WAL lets readers in other sidecar processes proceed while one writes.
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
            self._db.commit()

    def _get(self, key: str) -> CachedResponse | None:
        with self._lock:
            row = self._db.execute(
                "SELECT status, content_type, body FROM responses WHERE key = ?", (key,)
            ).fetchone()
        return None if row is None else CachedResponse(int(row[0]), str(row[1]), bytes(row[2]))

    def _put(self, key: str, response: CachedResponse) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses (key, status, content_type, body, stored_at) VALUES (?, ?, ?, ?, ?)",
                (key, response.status, response.content_type, response.body, time.time()),
            )
            self._db.commit()

    async def get(self, key: str) -> CachedResponse | None:
        return await asyncio.to_thread(self._get, key)

    async def put(self, key: str, response: CachedResponse) -> None:
        await asyncio.to_thread(self._put, key, response)

    def close(self) -> None:
        with self._lock:
            self._db.close()
