"""The simulated BMC's System Event Log: 16-byte records, reservations, clear and wrap-around."""

from __future__ import annotations

import struct
import threading
import time
from dataclasses import dataclass

RECORD_TYPE_SYSTEM_EVENT = 0x02
EVM_REV = 0x04
GENERATOR_BMC = 0x20
EVENT_TYPE_THRESHOLD = 0x01
EVENT_TYPE_SENSOR_SPECIFIC = 0x6F
LAST_RECORD = 0xFFFF


@dataclass(frozen=True, slots=True)
class SelRecord:
    """One SEL record as stored (16 bytes, record id included)."""

    record_id: int
    data: bytes  # the full 16 bytes


def event_record(
    timestamp: int,
    sensor_type: int,
    sensor_number: int,
    event_type: int,
    offset: int,
    *,
    deassertion: bool = False,
    data2: int = 0xFF,
    data3: int = 0xFF,
) -> bytes:
    """The 14 bytes after the record id of a system event record (table 32-1)."""
    # Event data 1, bits 7:4: whether bytes 2 and 3 carry the trigger reading and threshold (01b each);
    # 00b says they are unspecified (0xFF).
    data1 = offset & 0x0F
    if event_type == EVENT_TYPE_THRESHOLD and data2 != 0xFF:
        data1 |= 0x50  # byte 2 = trigger reading, byte 3 = trigger threshold
    direction = (0x80 if deassertion else 0x00) | (event_type & 0x7F)
    return struct.pack(
        "<BIBBBBBBBBB",
        RECORD_TYPE_SYSTEM_EVENT,
        timestamp,
        GENERATOR_BMC,
        0x00,
        EVM_REV,
        sensor_type,
        sensor_number,
        direction,
        data1,
        data2,
        data3,
    )


class EventLog:
    """A bounded SEL: records get increasing ids; a clear restarts ids at 1; when full it wraps or stops."""

    def __init__(self, capacity: int = 512, *, wrap: bool = True) -> None:
        """An empty log holding at most `capacity` records."""
        self._lock = threading.Lock()
        self._records: list[SelRecord] = []
        self._next_id = 1
        self._reservation = 0
        self.capacity = capacity
        self.wrap = wrap
        self.overflowed = False
        now = int(time.time())
        self.last_add = now
        self.last_erase = now

    def now(self) -> int:
        """The BMC clock (seconds since 1970, UTC)."""
        return int(time.time())

    def add(self, body: bytes) -> int:
        """Store a record (14 bytes after the id; the timestamp of standard records is stamped now)."""
        if len(body) != 14:
            raise ValueError("a SEL record body is 14 bytes")
        with self._lock:
            if body[0] < 0xE0:
                body = body[:1] + struct.pack("<I", self.now()) + body[5:]
            if len(self._records) >= self.capacity:
                if not self.wrap:
                    self.overflowed = True
                    return LAST_RECORD
                self._records.pop(0)
                self.overflowed = True
            record_id = self._next_id
            self._next_id = self._next_id + 1 if self._next_id < 0xFFFE else 1
            self._records.append(SelRecord(record_id, struct.pack("<H", record_id) + body))
            self.last_add = self.now()
            return record_id

    def clear(self) -> None:
        """Erase every record; ids restart at 1 as on most BMCs."""
        with self._lock:
            self._records.clear()
            self._next_id = 1
            self.overflowed = False
            self.last_erase = self.now()

    def reserve(self) -> int:
        """A new reservation id (cancels the previous one)."""
        with self._lock:
            self._reservation = (self._reservation % 0xFFFF) + 1
            return self._reservation

    def reservation_valid(self, reservation: int) -> bool:
        """Whether a clear request carries the current reservation."""
        return reservation == self._reservation

    def records(self) -> list[SelRecord]:
        """A snapshot of every record, oldest first."""
        with self._lock:
            return list(self._records)

    def info(self) -> list[int]:
        """Get SEL Info reply data (table 31-2)."""
        with self._lock:
            count = len(self._records)
            free = (self.capacity - count) * 16
            flags = 0x02 | (0x80 if self.overflowed else 0)  # reserve supported
            return [
                0x51,
                *struct.pack("<H", count),
                *struct.pack("<H", min(free, 0xFFFE)),
                *struct.pack("<I", self.last_add),
                *struct.pack("<I", self.last_erase),
                flags,
            ]

    def entry(self, record_id: int) -> tuple[int, bytes] | None:
        """(next record id, 16 bytes) of a record; id 0 is the first, 0xFFFF the last; None if absent."""
        with self._lock:
            records = self._records
            if not records:
                return None
            if record_id == 0:
                index = 0
            elif record_id == LAST_RECORD:
                index = len(records) - 1
            else:
                index = next((i for i, r in enumerate(records) if r.record_id == record_id), -1)
                if index < 0:
                    return None
            following = records[index + 1].record_id if index + 1 < len(records) else LAST_RECORD
            return following, records[index].data
