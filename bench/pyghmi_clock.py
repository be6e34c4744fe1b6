"""The proposed pyghmi fix, applied only inside a benchmark run: a fine-grained clock for its I/O thread.

pyghmi times its waits with `os.times()[4]`, which moves in 10 ms ticks (CLK_TCK = 100). A waiter whose deadline
falls on the current tick computes a timeout of exactly 0, is neither woken nor slept on, and the I/O thread spins
in `select(…, 0)` until the tick turns. rackd's 20 ms `_io_wait` cap makes such deadlines frequent.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import pyghmi.ipmi.private.session as pyghmi_session


@contextlib.contextmanager
def monotonic_clock() -> Iterator[None]:
    """pyghmi's session module uses `time.monotonic` for the block; its own clock is restored afterwards."""
    original = pyghmi_session._monotonic_time
    pyghmi_session._monotonic_time = time.monotonic
    try:
        yield
    finally:
        pyghmi_session._monotonic_time = original
