"""The on-disk outbox (SQLite in the state dir) for events and command results: ordered, bounded, durable."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    correlation BLOB
)
"""


PINNED_PREFIX = "pinned:"  # keys that the overflow trim never drops


@dataclass(frozen=True, slots=True)
class SpoolEntry:
    """One message waiting for its PUBACK."""

    seq: int
    key: str
    topic: str
    payload: bytes
    correlation: bytes | None


class Spool:
    """Append-only outbox; an entry leaves only when the broker acknowledged it (at-least-once, in order)."""

    def __init__(self, path: Path, max_messages: int) -> None:
        """Open (or create) the spool; entries left by a previous run are kept and sent first."""
        path.parent.mkdir(parents=True, exist_ok=True)
        # WAL + synchronous=NORMAL survives a daemon crash (SIGKILL); only a host power loss could lose the last
        # commits, which is the trade for not fsyncing on every event.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)
        self._max = max_messages
        self._count: int = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        self.path = path

    def __len__(self) -> int:
        """Messages waiting."""
        return self._count

    def append(self, key: str, topic: str, payload: bytes, correlation: bytes | None = None) -> int:
        """Add a message (a key already present is ignored); returns how many oldest entries were dropped.

        Keys starting with PINNED_PREFIX survive the trim; they may take the spool past its bound by their count.
        """
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO outbox (key, topic, payload, correlation) VALUES (?, ?, ?, ?)",
            (key, topic, payload, correlation),
        )
        self._count += cursor.rowcount
        excess = self._count - self._max
        if excess <= 0:
            return 0
        # Full: drop the oldest, so that what reaches operators after a long outage is the recent picture.
        # Pinned entries (the notice that the spool overflowed) are never dropped, or the notice would be lost.
        cursor = self._db.execute(
            "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox WHERE key NOT LIKE ? ORDER BY seq LIMIT ?)",
            (f"{PINNED_PREFIX}%", excess),
        )
        self._count -= cursor.rowcount
        return cursor.rowcount

    def peek(self, limit: int = 100) -> list[SpoolEntry]:
        """The oldest entries, in order."""
        rows = self._db.execute(
            "SELECT seq, key, topic, payload, correlation FROM outbox ORDER BY seq LIMIT ?", (limit,)
        ).fetchall()
        return [
            SpoolEntry(seq, key, topic, bytes(payload), correlation) for seq, key, topic, payload, correlation in rows
        ]

    def remove(self, seq: int) -> None:
        """Forget an entry the broker acknowledged."""
        cursor = self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
        self._count -= cursor.rowcount

    def close(self) -> None:
        """Close the database."""
        self._db.close()
