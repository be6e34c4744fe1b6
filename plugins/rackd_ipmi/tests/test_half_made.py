"""The registry of half-made BMC sessions: only recent ids are closed, a bounded number per BMC."""

from __future__ import annotations

from rackd_ipmi.link import HalfMadeSessions

from rackd.testing.clock import ManualClock

BMC = ("127.0.0.1", 623)
OTHER = ("127.0.0.1", 624)


def test_recent_ids_are_taken_once_per_bmc() -> None:
    registry = HalfMadeSessions(ManualClock().monotonic)
    registry.add(BMC, [11, 12, 11])
    registry.add(OTHER, [21])
    assert sorted(registry.take(BMC)) == [11, 12]
    assert registry.take(BMC) == []
    assert registry.take(OTHER) == [21]


async def test_old_ids_are_never_closed() -> None:
    # By then the BMC expired the half-made session, and may have given its id to another client's session.
    clock = ManualClock()
    registry = HalfMadeSessions(clock.monotonic)
    registry.add(BMC, [11])
    await clock.advance(HalfMadeSessions.MAX_AGE)
    registry.add(BMC, [12])
    assert registry.take(BMC) == [12]


async def test_only_the_newest_ids_are_kept() -> None:
    clock = ManualClock()
    registry = HalfMadeSessions(clock.monotonic)
    for session_id in range(20):
        registry.add(BMC, [session_id])
        await clock.advance(0.1)
    assert sorted(registry.take(BMC)) == list(range(20 - HalfMadeSessions.KEEP, 20))
