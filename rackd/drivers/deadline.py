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
        self._on_hurry: list[Callable[[], None]] = []

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

    def hurry(self) -> None:
        """Make the call urgent from now on: an operator command waits for it (see Hurry)."""
        if self.urgent or self._over:
            return
        self.urgent = True
        callbacks, self._on_hurry = self._on_hurry, []
        for callback in callbacks:
            callback()

    def on_hurry(self, callback: Callable[[], None]) -> None:
        """Call `callback` (on the event loop) if the call is hurried: a driver moves its queued work forward."""
        if not self._over and not self.urgent:
            self._on_hurry.append(callback)

    def end(self) -> None:
        """The call is over: later pauses and resumes (a worker starting late) change nothing."""
        self._over = True
        self._on_hurry.clear()


class Hurry:
    """Makes the calls of one job (a poll) urgent while it runs: an operator command is waiting for the job.

    A device does one thing at a time, so a command waits for the poll in progress; at site scale each of that
    poll's calls queued for a driver thread behind a thousand other devices' polls (a 6.8 s command p99 in the
    site benchmark). Hurried, the poll's calls in progress and those still to come go ahead of other polls.
    """

    def __init__(self) -> None:
        """Not requested."""
        self.requested = False
        self._live: set[CallDeadline] = set()

    def request(self) -> None:
        """Hurry every call of the job from now on."""
        self.requested = True
        for deadline in list(self._live):
            deadline.hurry()

    @contextmanager
    def covering(self, deadline: CallDeadline) -> Iterator[CallDeadline]:
        """Count `deadline` as one of the job's calls for the block."""
        if self.requested:
            deadline.hurry()
        self._live.add(deadline)
        try:
            yield deadline
        finally:
            self._live.discard(deadline)


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
