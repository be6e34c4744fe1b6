"""Freezing the heap: full collector passes skip the daemon's long-lived objects; the hourly refreeze frees cycles."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest
from structlog.testing import capture_logs

from rackd.runtime.heap import REFREEZE_EVERY, keep_frozen, refreeze
from rackd.testing.clock import ManualClock


class Node:
    """An object that can refer to itself (a garbage cycle once nothing else refers to it)."""

    me: Node | None = None


@pytest.fixture(autouse=True)
def thawed() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the test process's heap is not left frozen


def test_a_frozen_cycle_is_skipped_by_full_passes_and_freed_by_the_refreeze() -> None:
    node = Node()
    node.me = node
    alive = weakref.ref(node)
    gc.freeze()
    del node
    gc.collect()
    assert alive() is not None  # frozen: a full pass does not walk it (this is what keeps the passes short)
    refreeze()
    assert alive() is None
    assert gc.get_freeze_count() > 0  # what is still alive is frozen again


async def test_frozen_after_the_first_polls_refrozen_hourly_never_during_a_command() -> None:
    clock = ManualClock()
    first_poll = asyncio.Event()
    commands_running = [False]
    with capture_logs() as logs:
        task = asyncio.create_task(keep_frozen([first_poll.wait()], clock, lambda: not commands_running[0]))
        await clock.advance(10)
        assert gc.get_freeze_count() == 0  # the devices' sessions and caches are not built yet
        first_poll.set()
        await clock.settle()
        assert gc.get_freeze_count() > 0
        commands_running[0] = True
        await clock.advance(REFREEZE_EVERY + 60)
        assert [entry["event"] for entry in logs].count("heap_frozen") == 1
        commands_running[0] = False
        await clock.advance(1)
        assert [entry["event"] for entry in logs].count("heap_frozen") == 2
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_frozen_by_the_warmup_limit_when_a_device_never_answers() -> None:
    clock = ManualClock()
    never = asyncio.Event()
    task = asyncio.create_task(keep_frozen([never.wait()], clock, lambda: True))
    await clock.advance(299)
    assert gc.get_freeze_count() == 0
    await clock.advance(2)
    assert gc.get_freeze_count() > 0
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
