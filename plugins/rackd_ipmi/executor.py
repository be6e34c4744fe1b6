"""The driver's bounded thread pool, which remembers unfinished work so shutdown can wait for it (bounded)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class TrackingExecutor(ThreadPoolExecutor):
    """A ThreadPoolExecutor whose unfinished futures can be listed (calls abandoned at a deadline, logouts)."""

    def __init__(self, max_workers: int, thread_name_prefix: str = "") -> None:
        """A pool of at most `max_workers` threads."""
        super().__init__(max_workers=max_workers, thread_name_prefix=thread_name_prefix)
        self._pending: set[Future[Any]] = set()
        self._pending_lock = threading.Lock()

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Submit and remember the future until it is done."""
        future = super().submit(fn, *args, **kwargs)
        with self._pending_lock:
            self._pending.add(future)
        future.add_done_callback(self._forget)
        return future

    def _forget(self, future: Future[Any]) -> None:
        with self._pending_lock:
            self._pending.discard(future)

    def pending(self) -> list[Future[Any]]:
        """Futures not finished yet."""
        with self._pending_lock:
            return list(self._pending)
