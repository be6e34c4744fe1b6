from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from rackd.model import Health, Reading, SensorKind, worst_health
from rackd.testing.clock import ManualClock


def test_reading_enforces_canonical_units_and_slugs() -> None:
    assert Reading.of("inlet_temp", SensorKind.TEMPERATURE, 21).unit == "Cel"
    with pytest.raises(ValueError, match="unit"):
        Reading("inlet_temp", SensorKind.TEMPERATURE, 21.0, "C", Health.OK, dt.datetime.now(dt.UTC))
    with pytest.raises(ValueError, match="slug"):
        Reading.of("Inlet Temp", SensorKind.TEMPERATURE, 21)
    with pytest.raises(ValueError, match="NaN"):
        Reading.of("x", SensorKind.POWER, float("nan"))
    with pytest.raises(ValueError, match="UTC"):
        Reading.of("x", SensorKind.POWER, 1, observed_at=dt.datetime(2026, 1, 1))  # noqa: DTZ001 - naive on purpose


def test_worst_health() -> None:
    assert worst_health([Health.OK, Health.WARNING, Health.UNKNOWN]) is Health.WARNING
    assert worst_health([]) is Health.OK


async def test_manual_clock_timeout_fires_only_on_advance() -> None:
    clock = ManualClock()
    done = asyncio.Event()
    outcome: list[str] = []

    async def guarded() -> None:
        try:
            async with clock.timeout(5):
                await done.wait()
            outcome.append("finished")
        except TimeoutError:
            outcome.append("timeout")

    task = asyncio.create_task(guarded())
    await clock.advance(4.9)
    assert outcome == []
    await clock.advance(0.2)
    await task
    assert outcome == ["timeout"]


async def test_manual_clock_timeout_does_not_swallow_outer_cancellation() -> None:
    clock = ManualClock()

    async def guarded() -> None:
        async with clock.timeout(5):
            await asyncio.Event().wait()

    task = asyncio.create_task(guarded())
    await clock.settle()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
