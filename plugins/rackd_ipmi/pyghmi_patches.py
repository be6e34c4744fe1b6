"""Process-wide mitigation for pyghmi's lost-wakeup stalls: cap each internal I/O wait (see ipmi.md §1.3)."""

from __future__ import annotations

import threading
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
