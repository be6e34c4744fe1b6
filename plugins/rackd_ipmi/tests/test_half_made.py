"""The registry of half-made BMC sessions: only recent ids are closed, a bounded number per BMC."""

from __future__ import annotations

from rackd_ipmi.link import HalfMadeSessions

BMC = ("127.0.0.1", 623)
OTHER = ("127.0.0.1", 624)


class Clock:
    """Seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_recent_ids_are_taken_once_per_bmc() -> None:
    clock = Clock()
    registry = HalfMadeSessions(clock)
    registry.add(BMC, [11, 12, 11])
    registry.add(OTHER, [21])
    assert sorted(registry.take(BMC)) == [11, 12]
    assert registry.take(BMC) == []
    assert registry.take(OTHER) == [21]


def test_old_ids_are_never_closed() -> None:
    # By then the BMC expired the half-made session, and may have given its id to another client's session.
    clock = Clock()
    registry = HalfMadeSessions(clock)
    registry.add(BMC, [11])
    clock.now += HalfMadeSessions.MAX_AGE
    registry.add(BMC, [12])
    assert registry.take(BMC) == [12]


def test_only_the_newest_ids_are_kept() -> None:
    clock = Clock()
    registry = HalfMadeSessions(clock)
    for session_id in range(20):
        registry.add(BMC, [session_id])
        clock.now += 0.1
    assert sorted(registry.take(BMC)) == list(range(20 - HalfMadeSessions.KEEP, 20))
