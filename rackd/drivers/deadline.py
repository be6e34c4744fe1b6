"""A driver call's deadline, paused while the call waits for the driver's own capacity rather than for the device."""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class CallDeadline:
    """The deadline the runtime set on one driver call.

    A driver that queues work on its own capacity (worker threads, login slots) calls `pause()` before it waits and
    `resume()` (on the event loop) when the work reaches the device. The device then gets the call's whole budget
    however long the queue was, and a queue longer than `queue_limit` ends the call as DriverBusyError instead of
    being blamed on a device that was never asked. `urgent` calls (operator commands) go ahead of polls; among
    the rest, calls of the job that started first (`order`: when its poll began) go first, so that a driver short
    of threads finishes the polls it has begun instead of starting every poll and finishing none.
    """

    def __init__(
        self,
        seconds: float,
        queue_limit: float,
        *,
        urgent: bool,
        order: float | None = None,
        now: Callable[[], float],
        reschedule: Callable[[float], None],
    ) -> None:
        """A deadline `seconds` from now; `reschedule(when)` moves the runtime's timeout to `when`."""
        self.queue_limit = queue_limit
        self.urgent = urgent
        self.order = now() if order is None else order  # queue position among calls of equal urgency
        self._now = now
        self._reschedule = reschedule
        self._expires = now() + seconds
        self._remaining_when_paused: float | None = None
        self._over = False

    @property
    def paused(self) -> bool:
        """Whether the call is waiting for the driver's capacity now."""
        return self._remaining_when_paused is not None

    def pause(self) -> None:
        """Stop the device's clock: from now on only `queue_limit` bounds the wait."""
        if self._over or self._remaining_when_paused is not None:
            return
        now = self._now()
        self._remaining_when_paused = max(0.0, self._expires - now)
        self._reschedule(now + self.queue_limit)

    def resume(self) -> None:
        """Restart the device's clock with what was left of the budget when it paused."""
        remaining = self._remaining_when_paused
        if self._over or remaining is None:
            return
        self._remaining_when_paused = None
        self._expires = self._now() + remaining
        self._reschedule(self._expires)

    def end(self) -> None:
        """The call is over: later pauses and resumes (a worker starting late) change nothing."""
        self._over = True


_current: contextvars.ContextVar[CallDeadline | None] = contextvars.ContextVar("rackd_call_deadline", default=None)


def current_deadline() -> CallDeadline | None:
    """The deadline of the driver call running in this task, if the runtime set one."""
    return _current.get()


@contextmanager
def bound(deadline: CallDeadline) -> Iterator[CallDeadline]:
    """Make `deadline` the current one for the block (the runtime, around one driver call)."""
    token = _current.set(deadline)
    try:
        yield deadline
    finally:
        deadline.end()
        _current.reset(token)
