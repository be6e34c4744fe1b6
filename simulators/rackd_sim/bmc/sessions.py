"""The simulated BMC's session table: a slot per RMCP+ session, a limit, idle expiry, login accounting."""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field

PENDING_EXPIRY = 10.0  # an Open Session that never completes RAKP holds its slot this long


@dataclass
class SessionRecord:
    """One RMCP+ session as the BMC sees it."""

    key: int
    client: str
    suite: int
    opened_at: float
    last_seen: float
    established: bool = False
    closed: bool = False
    session_id: int = 0  # the BMC's id for it (Open Session Response), which Close Session names


@dataclass
class LoginStats:
    """Counters for tests: how often clients tried to authenticate, and how that went."""

    attempts: int = 0  # RAKP 1 messages naming a user
    failures: int = 0
    successes: int = 0
    refused_full: int = 0  # Open Session refused: no free session slot
    by_suite: dict[int, int] = field(default_factory=dict)


class SessionTable:
    """Sessions of one BMC; a session is open until closed by the client or idle for `timeout` seconds."""

    def __init__(self, limit: int = 4, timeout: float = 60.0) -> None:
        """A table with `limit` slots."""
        self.limit = limit
        self.timeout = timeout
        self.stats = LoginStats()
        self._records: dict[int, SessionRecord] = {}
        self._keys = itertools.count(1)
        self._lock = threading.Lock()

    def _alive(self, record: SessionRecord, now: float) -> bool:
        if record.closed:
            return False
        expiry = self.timeout if record.established else min(self.timeout, PENDING_EXPIRY)
        return now - record.last_seen < expiry

    def _prune(self, now: float) -> None:
        for key in [k for k, r in self._records.items() if not self._alive(r, now)]:
            del self._records[key]

    def open(self, client: str, suite: int) -> SessionRecord | None:
        """Take a slot for a new session, or None when every slot is in use."""
        now = time.monotonic()
        with self._lock:
            self._prune(now)
            if len(self._records) >= self.limit:
                self.stats.refused_full += 1
                return None
            record = SessionRecord(next(self._keys), client, suite, now, now)
            self._records[record.key] = record
            return record

    def touch(self, record: SessionRecord) -> bool:
        """Note activity on a session; False if it already expired or was closed (the packet is dropped)."""
        now = time.monotonic()
        with self._lock:
            if not self._alive(record, now):
                self._records.pop(record.key, None)
                return False
            record.last_seen = now
            return True

    def established(self, record: SessionRecord) -> None:
        """RAKP 4 sent: the session is active."""
        with self._lock:
            record.established = True
            self.stats.successes += 1
            self.stats.by_suite[record.suite] = self.stats.by_suite.get(record.suite, 0) + 1

    def close(self, record: SessionRecord) -> None:
        """The client closed the session, or the login failed."""
        with self._lock:
            record.closed = True
            self._records.pop(record.key, None)

    def close_id(self, session_id: int) -> bool:
        """Close Session naming another session by id (an administrator may); False if no such session is open."""
        now = time.monotonic()
        with self._lock:
            self._prune(now)
            for record in self._records.values():
                if record.session_id == session_id:
                    record.closed = True
                    del self._records[record.key]
                    return True
            return False

    def drop_all(self) -> None:
        """Forget every session (BMC cold reset)."""
        with self._lock:
            for record in self._records.values():
                record.closed = True
            self._records.clear()

    def open_sessions(self) -> list[SessionRecord]:
        """Sessions that hold a slot now (established or still logging in)."""
        now = time.monotonic()
        with self._lock:
            self._prune(now)
            return list(self._records.values())

    def login_attempt(self) -> None:
        """A client presented a user name (RAKP 1)."""
        with self._lock:
            self.stats.attempts += 1

    def login_failed(self, record: SessionRecord | None) -> None:
        """A login was refused (unknown user, wrong password, credentials rejected)."""
        with self._lock:
            self.stats.failures += 1
            if record is not None:
                record.closed = True
                self._records.pop(record.key, None)
