"""The per-BMC session budget: Open Session past the limit is refused until the BMC must have expired enough."""

from __future__ import annotations

from rackd_ipmi.budget import SessionBudget, frees_in

from rackd.testing.clock import ManualClock

BMC = ("127.0.0.1", 623)
OTHER = ("127.0.0.1", 624)


def budget(clock: ManualClock, limit: int = 3) -> SessionBudget:
    sessions = SessionBudget(clock.monotonic)
    sessions.configure(BMC, limit, setup_timeout=10.0, idle_timeout=60.0)
    return sessions


async def test_half_made_sessions_count_until_the_setup_timeout() -> None:
    clock = ManualClock()
    sessions = budget(clock)
    assert [sessions.claim(BMC) for _ in range(3)] == [None, None, None]
    await clock.advance(2.0)
    refusal = sessions.claim(BMC)
    assert refusal is not None
    assert "session budget" in refusal
    assert "0 in use, 3 half-made" in refusal
    assert frees_in(refusal) == 8.0  # what the driver passes on as SessionLimitError.retry_after
    assert frees_in("BMC has no free session") is None
    assert sessions.claim(OTHER) is None  # per BMC
    await clock.advance(7.9)
    assert sessions.claim(BMC) is not None
    await clock.advance(0.1)
    assert sessions.in_use(BMC) == 0
    assert sessions.claim(BMC) is None


async def test_a_login_lost_after_rakp3_counts_until_the_idle_timeout() -> None:
    # Only RAKP 4 was lost: the BMC holds a logged-in session that rackd never saw, until its idle timeout.
    clock = ManualClock()
    sessions = budget(clock)
    assert sessions.claim(BMC) is None
    sessions.answered(BMC, 0x11)
    sessions.rakp3_sent(BMC, 0x11)
    assert sessions.claim(BMC) is None  # the login starts over: a plain half-made one
    sessions.answered(BMC, 0x12)
    await clock.advance(10.0)
    assert sessions.in_use(BMC) == 1
    await clock.advance(50.0)
    assert sessions.in_use(BMC) == 0


async def test_a_logged_in_session_counts_until_released_and_an_unconfirmed_close_until_the_idle_timeout() -> None:
    clock = ManualClock()
    sessions = budget(clock, limit=2)
    assert sessions.claim(BMC) is None
    sessions.answered(BMC, 7)
    sessions.rakp3_sent(BMC, 7)
    sessions.settle(BMC, 7)
    await clock.advance(100.0)
    assert sessions.in_use(BMC) == 1  # in use: no timeout, and its claim is not counted twice
    sessions.release(BMC, confirmed=True)
    assert sessions.in_use(BMC) == 0
    assert sessions.claim(BMC) is None
    sessions.settle(BMC, 8)
    sessions.release(BMC, confirmed=False)  # every Close Session copy went unanswered
    await clock.advance(59.0)
    assert sessions.in_use(BMC) == 1
    await clock.advance(1.0)
    assert sessions.in_use(BMC) == 0


async def test_a_refused_open_session_frees_its_slot_at_once() -> None:
    clock = ManualClock()
    sessions = budget(clock, limit=2)
    assert sessions.claim(BMC) is None
    sessions.refused(BMC)  # the BMC answered Open Session with an error: no session made
    assert sessions.in_use(BMC) == 0
    assert sessions.claim(BMC) is None
    sessions.answered(BMC, 21)
    assert sessions.claim(BMC) is None
    assert sessions.claim(BMC) is not None
