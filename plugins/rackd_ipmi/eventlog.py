"""Incremental SEL reading from an opaque cursor, with clear/wrap detection (runs in a worker thread)."""

from __future__ import annotations

import datetime as dt
import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rackd.errors import DeviceProtocolError
from rackd.model import LogBatch, LogEntry, Severity
from rackd_ipmi.translate import CC_NOT_PRESENT, completion_error

NETFN_STORAGE = 0x0A
CMD_GET_SEL_INFO = 0x40
CMD_GET_SEL_ENTRY = 0x43
FIRST_RECORD = 0x0000
LAST_RECORD = 0xFFFF
PRE_INIT_LIMIT = 0x20000000  # IPMI timestamps below this count seconds since BMC start, not a date
CURSOR_VERSION = "sel1"

# raw(netfn, command, data) -> (completion code, response data)
RawCall = Callable[[int, int, bytes], tuple[int, bytes]]
# decode(record bytes) -> pyghmi event dict
Decoder = Callable[[bytes], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the reader stopped: the SEL's erase time, the last record seen, and that record's fingerprint."""

    erased_at: int
    record_id: int  # 0: the SEL was empty
    fingerprint: str
    timestamp: int

    def encode(self) -> str:
        """The opaque string the runtime persists."""
        return f"{CURSOR_VERSION}:{self.erased_at}:{self.record_id}:{self.fingerprint}:{self.timestamp}"

    @classmethod
    def decode(cls, text: str) -> Cursor | None:
        """Parse a cursor; None when it is not one of ours (e.g. from another driver version)."""
        parts = text.split(":")
        if len(parts) != 5 or parts[0] != CURSOR_VERSION:
            return None
        try:
            return cls(int(parts[1]), int(parts[2]), parts[3], int(parts[4]))
        except ValueError:
            return None


def _fingerprint(record: bytes) -> str:
    return hashlib.sha256(record).hexdigest()[:12]


def _timestamp(record: bytes) -> int:
    return struct.unpack_from("<I", record, 3)[0] if len(record) >= 7 and record[2] < 0xE0 else 0


class SelReader:
    """Reads one BMC's SEL through raw IPMI calls."""

    def __init__(self, where: str, raw: RawCall, decode: Decoder) -> None:
        """Use `raw` for requests and `decode` (pyghmi's SEL decoder) for messages."""
        self.where = where
        self._raw = raw
        self._decode = decode

    def _info(self) -> tuple[int, int]:
        code, data = self._raw(NETFN_STORAGE, CMD_GET_SEL_INFO, b"")
        if code:
            raise completion_error(self.where, "Get SEL Info", code)
        if len(data) < 14:
            raise DeviceProtocolError(f"{self.where}: Get SEL Info reply too short ({len(data)} bytes)")
        entries = struct.unpack_from("<H", data, 1)[0]
        erased_at = struct.unpack_from("<I", data, 9)[0]
        return entries, erased_at

    def _entry(self, record_id: int) -> tuple[int, bytes] | None:
        """(next record id, 16-byte record), or None when the record does not exist."""
        code, data = self._raw(NETFN_STORAGE, CMD_GET_SEL_ENTRY, struct.pack("<HHBB", 0, record_id, 0, 0xFF))
        if code == CC_NOT_PRESENT:
            return None
        if code:
            raise completion_error(self.where, "Get SEL Entry", code)
        if len(data) < 18:
            raise DeviceProtocolError(f"{self.where}: SEL entry {record_id} reply too short ({len(data)} bytes)")
        return struct.unpack_from("<H", data)[0], bytes(data[2:18])

    def _walk(self, start: int, limit: int) -> list[bytes]:
        records: list[bytes] = []
        current = start
        while current != LAST_RECORD and len(records) < limit:
            found = self._entry(current)
            if found is None:
                break
            following, record = found
            records.append(record)
            if following == current:
                raise DeviceProtocolError(f"{self.where}: SEL record {current} points to itself")
            current = following
        return records

    def _cursor_at(self, erased_at: int, record: bytes | None) -> Cursor:
        if record is None:
            return Cursor(erased_at, 0, "", 0)
        record_id = struct.unpack_from("<H", record)[0]
        return Cursor(erased_at, record_id, _fingerprint(record), _timestamp(record))

    def read(self, cursor_text: str | None, batch_max: int, reset_replay: int, capacity: int = 4096) -> LogBatch:
        """Entries after the cursor (None: only the cursor to start from); clear/wrap → newest few only."""
        entries_count, erased_at = self._info()
        cursor = Cursor.decode(cursor_text) if cursor_text else None
        if cursor is None:
            newest = self._entry(LAST_RECORD) if entries_count else None
            return LogBatch((), self._cursor_at(erased_at, None if newest is None else newest[1]).encode())
        cleared = cursor.erased_at != erased_at
        reset = cleared
        start: int | None = None
        if not reset:
            if cursor.record_id == 0:
                start = FIRST_RECORD
            else:
                found = self._entry(cursor.record_id)
                if found is None or _fingerprint(found[1]) != cursor.fingerprint:
                    # The record we stopped at is gone or was overwritten: the SEL wrapped (ids keep growing) or
                    # was cleared within the same second as our cursor (ids restarted below ours).
                    reset = True
                    newest = self._entry(LAST_RECORD) if entries_count else None
                    newest_id = struct.unpack_from("<H", newest[1])[0] if newest is not None else 0
                    cleared = newest_id < cursor.record_id
                else:
                    start = found[0]
        if reset:
            records = self._walk(FIRST_RECORD, capacity) if entries_count else []
            if not cleared and cursor.timestamp >= PRE_INIT_LIMIT:
                # Wrapped: most records are old ones already reported; keep those stamped after our last one.
                # After a clear every record present is new (it was added after the clear, after our cursor).
                records = [r for r in records if _timestamp(r) > cursor.timestamp or _timestamp(r) < PRE_INIT_LIMIT]
            records = records[-reset_replay:] if reset_replay else []
            last: bytes | None = records[-1] if records else None
            if last is None and entries_count:
                found_last = self._entry(LAST_RECORD)
                last = found_last[1] if found_last is not None else None
            return LogBatch(self._entries(records), self._cursor_at(erased_at, last).encode(), log_reset=True)
        assert start is not None
        records = self._walk(start, batch_max) if start != LAST_RECORD else []
        if not records:
            return LogBatch((), cursor.encode())
        return LogBatch(self._entries(records), self._cursor_at(erased_at, records[-1]).encode())

    def _entries(self, records: list[bytes]) -> tuple[LogEntry, ...]:
        return tuple(self._entry_of(record) for record in records)

    def _entry_of(self, record: bytes) -> LogEntry:
        record_id = struct.unpack_from("<H", record)[0]
        try:
            event = self._decode(record)
        except Exception as exc:  # noqa: BLE001 - a record pyghmi cannot decode is still reported, raw
            event = {"event": f"undecodable record ({exc!r})"}
        timestamp = _timestamp(record)
        observed_at = (
            dt.datetime.fromtimestamp(timestamp, dt.UTC) if timestamp >= PRE_INIT_LIMIT else None
        )  # BMC clocks are assumed to run on UTC; many are set to local time (see README)
        component = event.get("component")
        text = str(event.get("event") or "event")
        message = f"{component}: {text}" if component else text
        if event.get("deassertion"):
            message += " (deasserted)"
        severity_bits = int(event.get("severity") or 0)
        severity = Severity.CRITICAL if severity_bits & 6 else Severity.WARNING if severity_bits & 1 else Severity.INFO
        data: dict[str, Any] = {"record_id": record_id, "raw": record.hex()}
        for key in ("component", "component_type", "event_id", "deassertion"):
            value = event.get(key)
            if value is not None:
                data[key] = value
        return LogEntry(record_id=str(record_id), severity=severity, message=message, observed_at=observed_at,
                        data=data)
