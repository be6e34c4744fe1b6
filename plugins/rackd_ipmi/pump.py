"""One thread that keeps pyghmi's shared event loop turning while the driver has sessions or consoles open."""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog
from pyghmi.ipmi.private import session as ipmi_session

log = structlog.get_logger(__name__)

PUMP_WAIT = 0.2  # seconds per turn at most (pyghmi's own timers and the 20 ms I/O wait cap make turns shorter)


class LoopPump:
    """Turns `Session.wait_for_rsp` while anything holds it: keepalives, retry timers and SOL traffic then run.

    pyghmi sends its keepalives (every 24-29 s of idleness) and fires retry timers only inside `wait_for_rsp`,
    which runs while a thread is logging in or a console is pumped, not while calls wait for their own replies.
    Once a fleet's logins were over, nothing turned it: BMCs that drop a session after 30 s idle (OpenIPMI's
    ipmi_sim does) dropped every session polled at a 30 s interval, so every other poll failed and logged in
    again (site benchmark: 324 such failures in two minutes on 900 BMCs; a 10-BMC experiment failed every 30 s
    poll after the first and none at 10 s).
    """

    def __init__(self) -> None:
        """Idle until the first holder."""
        self._lock = threading.Lock()
        self._holders: set[object] = set()
        self._each_turn: dict[object, Callable[[], None]] = {}
        self._thread: threading.Thread | None = None

    def add(self, holder: object, each_turn: Callable[[], None] | None = None) -> None:
        """Keep turning while `holder` is open (starts the thread for the first); `each_turn` runs after every turn."""
        with self._lock:
            self._holders.add(holder)
            if each_turn is not None:
                self._each_turn[holder] = each_turn
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="rackd-ipmi-loop", daemon=True)
                self._thread.start()

    def remove(self, holder: object) -> None:
        """`holder` closed; the thread ends after the last one."""
        with self._lock:
            self._holders.discard(holder)
            self._each_turn.pop(holder, None)

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._holders:
                    self._thread = None
                    return
                callbacks = list(self._each_turn.values())
            try:
                ipmi_session.Session.wait_for_rsp(PUMP_WAIT)
            except Exception as exc:  # noqa: BLE001 - one bad packet or pyghmi bug must not stop every keepalive
                log.warning("ipmi_loop_turn_failed", error=repr(exc))
            for callback in callbacks:
                callback()
