"""Keeps the garbage collector's full passes short: the objects the daemon built to run are frozen out of them."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import structlog

from rackd.runtime.clock import Clock

log = structlog.get_logger(__name__)

# A full pass walks every object the collector tracks, with the whole process stopped (it holds the GIL). At 1,000
# BMCs that was 160-190 ms every ~10 s, and it was the tail of the site benchmark's command latency
# (docs/benchmarks.md). Frozen objects (config, drivers, sessions, SDR caches: alive for the daemon's life) are
# skipped by every pass; only the objects that come and go are walked. A frozen object that later becomes part of
# a garbage cycle (a session discarded after a re-login) is only reclaimed once thawed: hence the refreeze, one
# full pass an hour, held back while a command runs.
REFREEZE_EVERY = 3600.0
WARMUP_LIMIT = 300.0  # freeze by then even if a device never answers its first poll
IDLE_CHECK = 1.0


def refreeze() -> None:
    """Thaw, collect everything (one full pass), freeze what is still alive."""
    started = time.perf_counter()
    gc.unfreeze()
    collected = gc.collect()
    gc.freeze()
    log.info(
        "heap_frozen",
        objects=gc.get_freeze_count(),
        collected=collected,
        pause_ms=round((time.perf_counter() - started) * 1000, 1),
    )


async def keep_frozen(first_polls: Iterable[Awaitable[object]], clock: Clock, idle: Callable[[], bool]) -> None:
    """Freeze once `first_polls` are done (or WARMUP_LIMIT s passed); refreeze every REFREEZE_EVERY s."""
    warm: asyncio.Future[Any] = asyncio.gather(*first_polls)
    limit: asyncio.Future[Any] = asyncio.ensure_future(clock.sleep(WARMUP_LIMIT))
    try:
        await asyncio.wait({warm, limit}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        warm.cancel()
        limit.cancel()
    while True:
        while not idle():  # a command's latency matters more than the hour being exact
            await clock.sleep(IDLE_CHECK)
        refreeze()
        await clock.sleep(REFREEZE_EVERY)
