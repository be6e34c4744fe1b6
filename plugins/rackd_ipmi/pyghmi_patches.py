"""Process-wide mitigations for pyghmi: capped I/O waits (ipmi.md §1.3), a fine clock, one lock instead of two."""

from __future__ import annotations

import threading
import time
from typing import Any

import pyghmi.ipmi.private.session as ipmi_session

IO_WAIT_CAP = 0.02  # seconds; callers loop on their own deadlines, so a short wait only costs a re-check
_lock = threading.Lock()


def cap_io_wait(cap: float = IO_WAIT_CAP) -> None:
    """Make pyghmi wait at most `cap` seconds per internal wait (idempotent).

    A reply queued before its caller registered its wait otherwise sleeps until the 0.5-1 s retry timer.
    """
    with _lock:
        current = ipmi_session._io_wait
        if getattr(current, "rackd_capped", False):
            return
        original = current

        def capped_io_wait(timeout: float, myaddr: Any = None, evq: Any = None) -> Any:
            return original(min(timeout, cap), myaddr, evq)

        capped_io_wait.rackd_capped = True  # type: ignore[attr-defined]  # marker against double patching
        ipmi_session._io_wait = capped_io_wait


def fine_clock() -> None:
    """Give pyghmi's session module `time.monotonic` instead of `os.times()[4]` (idempotent).

    `os.times()` moves in 10 ms ticks: with the 20 ms wait cap a waiter's deadline often lands on the current tick,
    its timeout computes to exactly 0, and pyghmi's I/O thread spins in `select(..., 0)` until the tick turns.
    Measured in bench/bmc_polling (docs/benchmarks.md): CPU per BMC poll fell from ~20 ms to ~10 ms.
    """
    with _lock:
        ipmi_session._monotonic_time = time.monotonic


def merge_session_locks() -> None:
    """Use one re-entrant lock for pyghmi's two global session tables (idempotent).

    `Session.wait_for_rsp` holds WAITING_SESSIONS while a timed-out session retransmits, and retransmitting takes
    KEEPALIVE_SESSIONS; `send_payload` in any other thread takes them in the opposite order. With several worker
    threads and a lost reply, every pyghmi thread of the process deadlocked (seen in the fault tests). A single
    RLock cannot be taken in two orders.
    """
    with _lock:
        shared = ipmi_session.KEEPALIVE_SESSIONS
        if ipmi_session.WAITING_SESSIONS is not shared:
            ipmi_session.WAITING_SESSIONS = shared


def apply() -> None:
    """Every mitigation, once per process."""
    cap_io_wait()
    fine_clock()
    merge_session_locks()
