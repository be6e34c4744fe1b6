"""Retry delays: exponential with full jitter, and the schedule's phase offsets per device."""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Full-jitter exponential backoff: delay = uniform(0, min(maximum, initial * 2**attempt))."""

    initial: float
    maximum: float
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next_delay(self) -> float:
        """The next delay; each call counts one more failed attempt."""
        cap = min(self.maximum, self.initial * (2 ** min(self.attempt, 32)))
        self.attempt += 1
        return self.rng.uniform(0, cap)

    def reset(self) -> None:
        """Back to the first attempt (after a success)."""
        self.attempt = 0


def phase_offset(device_id: str, interval: float) -> float:
    """A stable offset in [0, interval) per device, so polls of many devices do not start together."""
    return (zlib.crc32(device_id.encode()) / 2**32) * interval
