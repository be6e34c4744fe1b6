"""The in-memory ring buffer of one console: the newest output with arrival times, for replay on attach."""

from __future__ import annotations

import datetime as dt
from collections import deque


class RingBuffer:
    """Keeps at most `capacity` bytes of the newest output, as timestamped chunks."""

    def __init__(self, capacity: int) -> None:
        """Empty."""
        self.capacity = capacity
        self._chunks: deque[tuple[dt.datetime, bytes]] = deque()
        self._size = 0

    def __len__(self) -> int:
        """Bytes held."""
        return self._size

    def append(self, at: dt.datetime, data: bytes) -> None:
        """Add output received at `at`; the oldest bytes fall out."""
        if not data:
            return
        if len(data) > self.capacity:
            data = data[-self.capacity :]
        self._chunks.append((at, data))
        self._size += len(data)
        while self._size > self.capacity:
            oldest_at, oldest = self._chunks[0]
            excess = self._size - self.capacity
            if len(oldest) <= excess:
                self._chunks.popleft()
                self._size -= len(oldest)
            else:
                self._chunks[0] = (oldest_at, oldest[excess:])
                self._size -= excess

    @property
    def oldest(self) -> dt.datetime | None:
        """When the oldest byte held arrived (None when empty)."""
        return self._chunks[0][0] if self._chunks else None

    def contents(self) -> bytes:
        """Everything held, oldest first."""
        return b"".join(chunk for _, chunk in self._chunks)

    def since(self, at: dt.datetime) -> bytes:
        """Output that arrived at or after `at`."""
        return b"".join(chunk for when, chunk in self._chunks if when >= at)

    def tail(self, lines: int) -> bytes:
        """The last `lines` lines (an unfinished last line counts as one)."""
        data = self.contents()
        if lines <= 0:
            return b""
        end = len(data) - 1 if data.endswith(b"\n") else len(data)
        cut = end
        for _ in range(lines):
            cut = data.rfind(b"\n", 0, cut)
            if cut < 0:
                return data
        return data[cut + 1 :]
