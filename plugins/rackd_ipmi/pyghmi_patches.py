"""Process-wide mitigations for pyghmi: capped I/O waits (ipmi.md §1.3), a fine clock, one lock instead of two, poll."""

from __future__ import annotations

import select
import threading
import time
from collections.abc import Sequence
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


class PollSelect:
    """Stands in for the `select` module inside pyghmi: `select()` on read sets through poll(2).

    pyghmi's I/O thread waits in `select.select`, which refuses descriptors >= 1024 (FD_SETSIZE) with ValueError
    and the thread dies: every IPMI call of the process then waits for ever. A daemon with hundreds of console
    connections and log files opens pyghmi's sockets above 1024 as the fleet grows (seen at ~600 BMCs + 500
    consoles: the whole IPMI side stopped 40 s after start). poll(2) has no such limit.
    """

    error = select.error

    @staticmethod
    def select(rlist: Sequence[Any], wlist: Sequence[Any], xlist: Sequence[Any], timeout: float | None = None) -> Any:
        """Readable members of `rlist` (pyghmi passes no write or error sets)."""
        if wlist or xlist:
            raise ValueError("PollSelect supports read sets only")
        poller = select.poll()
        by_fd = {}
        for member in rlist:
            fd = member if isinstance(member, int) else member.fileno()
            by_fd[fd] = member
            poller.register(fd, select.POLLIN)
        wait_ms = None if timeout is None else max(0.0, timeout) * 1000.0
        ready = [by_fd[fd] for fd, _ in poller.poll(wait_ms) if fd in by_fd]
        return ready, [], []


def poll_instead_of_select() -> None:
    """Make pyghmi's I/O thread use poll(2) (idempotent): see PollSelect."""
    with _lock:
        ipmi_session.select = PollSelect


def apply() -> None:
    """Every mitigation, once per process."""
    cap_io_wait()
    fine_clock()
    merge_session_locks()
    poll_instead_of_select()
