"""The response cache: every paid LLM answer is stored on disk and never requested again.

One SQLite file shared by all runs (WAL mode, so parallel runs of a sweep can read and write it at
once). An entry is written in a single transaction after the whole response has arrived and parsed,
so a killed process leaves either a complete entry or none; a row that does not decode is treated as
missing and requested again. Failures are never cached: a rerun retries them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import sqlite3
from pathlib import Path

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    created TEXT NOT NULL,
    base_url TEXT NOT NULL,
    model TEXT NOT NULL,
    response TEXT NOT NULL
)
"""


def build_cache_key(base_url: str, model: str, messages: list[dict], params: dict) -> str:
    """sha256 of everything that decides the answer: endpoint, model, messages, generation parameters.
    The API key is not part of it: the same question to the same model has the same answer."""
    payload = {"base_url": base_url.rstrip("/"), "model": model, "messages": messages, "params": params}
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class ResponseCache:
    def __init__(self, path: Path):
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # autocommit mode: each INSERT is its own transaction; timeout waits out another process's write lock.
        # check_same_thread off: the client uses the connection from one worker thread (never two at once).
        self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(SCHEMA)
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> dict | None:
        row = self._db.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
        if row is not None:
            try:
                response = json.loads(row[0])
            except json.JSONDecodeError:
                log.warning("cache entry %s in %s does not decode; asking the endpoint again", key[:12], self.path)
            else:
                self.hits += 1
                return response
        self.misses += 1
        return None

    def put(self, key: str, *, base_url: str, model: str, response: dict) -> None:
        created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        self._db.execute(
            "INSERT OR REPLACE INTO responses (key, created, base_url, model, response) VALUES (?, ?, ?, ?, ?)",
            (key, created, base_url.rstrip("/"), model, json.dumps(response, ensure_ascii=False)),
        )

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        self._db.close()
