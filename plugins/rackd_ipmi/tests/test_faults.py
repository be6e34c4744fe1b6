"""Fault tests: hung BMC, packet loss, cold reset, and no session/thread/fd leaks after many faulty polls."""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

import pyghmi.ipmi.private.session as pyghmi_session
import pytest
from rackd_ipmi.budget import SESSIONS
from rackd_ipmi.driver import IpmiDriver
from rackd_ipmi.link import HURRY_RETRANSMIT_AFTER, BmcLink
from rackd_ipmi.options import IpmiOptions
from rackd_ipmi.session import IpmiSession
from rackd_sim.bmc.process import BmcProcess

from rackd.drivers.contract import SessionContext
from rackd.errors import (
    DeviceError,
    DeviceProtocolError,
    DeviceTimeoutError,
    DeviceUnreachableError,
    SessionLimitError,
)
from rackd.model import PowerState
from rackd.runtime.clock import SystemClock
from rackd.runtime.reader import call_with_deadline

OptionsFactory = Callable[..., IpmiOptions]


def open_fds() -> int:
    return len(list(Path("/proc/self/fd").iterdir()))


async def wait_out_the_budget(refusal: SessionLimitError) -> None:
    """rackd's session budget refused a login: lost logins left sessions the BMC still holds. The runner waits as
    long as the refusal says (`retry_after`); so does a test (a BMC timeout, not a synchronisation)."""
    await asyncio.sleep(refusal.retry_after + 0.1 if refusal.retry_after is not None else 1.0)


async def poll_until_ok(
    session: IpmiSession, attempts: int = 40, deadline: float = 1.0, budget_waits: int = 10
) -> PowerState:
    """What the runtime does: call under a deadline, again after a failure (bounded); back off while the session
    budget refuses the re-login (not an attempt: no request was sent)."""
    last: BaseException | None = None
    tried = waited = 0
    while tried < attempts:
        try:
            async with asyncio.timeout(deadline):
                return await session.get_power("chassis")
        except SessionLimitError as exc:
            last = exc
            waited += 1
            if waited > budget_waits:
                break
            await wait_out_the_budget(exc)
        except (TimeoutError, DeviceError) as exc:
            last = exc
            tried += 1
    raise AssertionError(f"no successful call in {tried} attempts and {waited} budget waits; last error: {last!r}")


async def test_hung_bmc_costs_only_its_own_deadline(
    driver: IpmiDriver, start_sim: Callable[..., BmcProcess], context: SessionContext, options: OptionsFactory,
    tmp_path: Path,
) -> None:
    hung_sim, healthy_sim = start_sim(), start_sim()
    other = SessionContext(device_id="gpu-02", role="bmc", state_dir=tmp_path)
    hung = await driver.open(context, options(hung_sim))
    healthy = await driver.open(other, options(healthy_sim))
    try:
        hung_sim.control("faults", hang=True)

        async def hung_call() -> None:
            async with asyncio.timeout(2.0):
                await hung.read_sensors()

        hung_task = asyncio.create_task(hung_call())
        for _ in range(5):  # the healthy BMC is served while the hung call waits for its deadline
            readings = await healthy.read_sensors()
            assert any(r.sensor == "system_power" for r in readings)
            assert not hung_task.done()
        with pytest.raises(TimeoutError):
            await hung_task
        hung_sim.control("faults", hang=False)
        # the session that missed its deadline was discarded; the next call logs in afresh
        assert await poll_until_ok(hung) is PowerState.ON
        assert hung_sim.status()["logins"] == 2
    finally:
        await hung.close()
        await healthy.close()


@pytest.mark.timeout(300)  # up to five 20 s attempts, plus waits for the session budget (BMC timeouts)
async def test_twenty_percent_packet_loss_still_yields_readings(
    driver: IpmiDriver, sim: BmcProcess, context: SessionContext, options: OptionsFactory
) -> None:
    session: IpmiSession | None = await driver.open(context, options(sim))
    try:
        sim.control("faults", drop_rate=0.2)
        readings = None
        attempts = 0
        while attempts < 5:
            try:
                async with asyncio.timeout(20):
                    if session is None:
                        session = await driver.open(context, options(sim))
                    readings = await session.read_sensors()
                break
            except SessionLimitError as exc:
                await wait_out_the_budget(exc)
            except (TimeoutError, DeviceError):
                # A missed deadline poisons the session (as in the runtime): log in again, as the runner would.
                # A login over this link can fail too (a lost handshake, the BMC's half-open sessions all taken).
                attempts += 1
                if session is not None:
                    await session.close()
                session = None
        assert session is not None
        assert readings is not None
        assert len([r for r in readings if r.value is not None]) >= 20
        for _ in range(3):
            assert await poll_until_ok(session, deadline=5.0) is PowerState.ON
    finally:
        if session is not None:
            await session.close()


async def test_cold_reset_is_recovered_without_a_restart(
    driver: IpmiDriver, sim: BmcProcess, context: SessionContext, options: OptionsFactory
) -> None:
    session = await driver.open(context, options(sim))
    try:
        assert await session.get_power("chassis") is PowerState.ON
        sim.control("cold_reset")
        sim.wait_for(lambda s: s["cold_resets"] == 1 or s["open_sessions"] == 0)
        assert await poll_until_ok(session) is PowerState.ON
        status = sim.wait_for(lambda s: s["cold_resets"] == 1 and s["established_sessions"] == 1)
        assert status["open_sessions"] == 1
    finally:
        await session.close()
    sim.wait_for(lambda s: s["open_sessions"] == 0)


async def test_no_session_thread_or_fd_leak_after_200_faulty_polls(
    driver: IpmiDriver, start_sim: Callable[..., BmcProcess], context: SessionContext, options: OptionsFactory
) -> None:
    sim = start_sim("--session-timeout", "3")
    # The BMC's idle timeout as an operator would configure it: a session whose logout was lost to the hang counts
    # in the session budget only that long.
    session = await driver.open(context, options(sim, bmc_idle_timeout=3.0))
    await session.read_sensors()
    threads_before, fds_before = threading.active_count(), open_fds()
    # Phases: packet loss absorbed by retransmission, a hang (deadlines missed, sessions discarded), a BMC cold
    # reset, a slow and lossy stretch, another hang; the rest is healthy polling.
    faults: dict[int, dict[str, object] | str] = {
        0: {"drop_rate": 0.2},
        20: {"drop_rate": 0.0},
        30: {"hang": True},
        35: {"hang": False},
        60: "cold_reset",
        100: {"drop_rate": 0.1, "delay": 0.002},
        120: {"drop_rate": 0.0, "delay": 0.0, "hang": True},
        125: {"hang": False},
    }
    ok = 0
    try:
        for cycle in range(200):
            fault = faults.get(cycle)
            if fault == "cold_reset":
                sim.control("cold_reset")
            elif isinstance(fault, dict):
                sim.control("faults", **fault)
            hanging = 30 <= cycle < 35 or 120 <= cycle < 125
            for _ in range(5):  # a poll refused by the session budget waits and goes again, as the runner's does
                try:
                    # a deadline like the runtime's: short for polls, long enough for a login over a lossy link
                    async with asyncio.timeout(0.5 if hanging else 10.0):
                        if cycle % 20 == 19:
                            await session.read_sensors()
                        else:
                            await session.get_power("chassis")
                    ok += 1
                except SessionLimitError as refusal:
                    # Lost logins left half-made sessions the BMC still holds; no request was sent. Counting the
                    # refusal as a failed poll let 100 cycles pass in the budget's 10 s wait (a clean-clone CI run).
                    await wait_out_the_budget(refusal)
                    continue
                except (TimeoutError, DeviceError):
                    pass
                break
        assert ok >= 150
        assert await poll_until_ok(session) is PowerState.ON
        # BMCs reap sessions a client abandoned (logout lost to the fault) after their idle timeout
        status = sim.wait_for(lambda s: s["open_sessions"] <= 1, timeout=15)
        assert status["established_sessions"] <= 1
        assert threading.active_count() <= threads_before + 12  # bounded by the driver's pool
        assert open_fds() <= fds_before + 2
        # Sessions discarded in the faults are logged out in the background; one the BMC already dropped (the
        # cold reset, its idle timeout) never gets an answer to its Close Session, given up after 3.75 s.
        background = driver._executor.pending()
        await asyncio.to_thread(concurrent.futures.wait, background, 10.0)
        assert all(future.done() for future in background)
        port = sim.endpoint.port if sim.endpoint else 0
        keepalives = [s for s in pyghmi_session.Session.keepalive_sessions if getattr(s, "port", None) == port]
        assert len(keepalives) <= 1  # no abandoned client session is kept alive by pyghmi
    finally:
        await session.close()
    sim.wait_for(lambda s: s["open_sessions"] == 0, timeout=15)


@pytest.mark.timeout(300)  # four polls each, plus waits for the session budget (BMC timeouts)
async def test_several_lossy_bmcs_polled_concurrently(
    driver: IpmiDriver, start_sim: Callable[..., BmcProcess], options: OptionsFactory, tmp_path: Path
) -> None:
    """Several worker threads in pyghmi at once, with retransmissions: no deadlock, every BMC answers."""
    sims = [start_sim() for _ in range(3)]
    sessions = [
        await driver.open(SessionContext(f"gpu-{i}", "bmc", tmp_path), options(sim)) for i, sim in enumerate(sims)
    ]
    try:
        for sim in sims:
            sim.control("faults", drop_rate=0.25)

        errors: list[str] = []

        async def poll(session: IpmiSession) -> int:
            successes = attempts = 0
            while attempts < 4:
                try:
                    async with asyncio.timeout(15):
                        await session.get_power("chassis")
                        await session.read_log(None)
                    successes += 1
                    attempts += 1
                except SessionLimitError as exc:
                    await wait_out_the_budget(exc)  # not an attempt: no request was sent
                except (TimeoutError, DeviceError) as exc:
                    errors.append(f"{session.context.device_id}: {exc!r}")
                    attempts += 1
            return successes

        async with asyncio.timeout(240):  # a deadlock would stop every BMC at once
            results = await asyncio.gather(*(poll(s) for s in sessions))
        assert all(r >= 2 for r in results), (results, errors)
    finally:
        for session in sessions:
            await session.close()


async def test_a_session_is_closed_on_the_bmc_even_when_close_requests_are_lost(
    driver: IpmiDriver, start_sim: Callable[..., BmcProcess], context: SessionContext, options: OptionsFactory
) -> None:
    """Close Session has no retransmission in pyghmi; one lost copy used to leave the session open on the BMC
    until its idle timeout (the soak's lossy BMC reached 4 sessions, the limit of some BMCs)."""
    sim = start_sim("--session-timeout", "600")  # the BMC would keep a leaked session ten minutes
    session = await driver.open(context, options(sim))
    assert await session.get_power("chassis") is PowerState.ON
    assert sim.status()["open_sessions"] == 1
    sim.control("faults", drop_next=2)  # the first two copies of Close Session are lost
    await session.close()
    status = sim.wait_for(lambda s: s["open_sessions"] == 0, timeout=10)
    assert status["faults"]["drop_next"] == 0  # both losses happened: the third copy closed it


async def test_logins_to_hung_bmcs_do_not_fail_the_login_of_a_healthy_one(
    start_sim: Callable[..., BmcProcess], options: OptionsFactory, tmp_path: Path
) -> None:
    """Each login to a BMC that does not answer holds a thread and a login place for ~5 s after its caller's
    deadline. A healthy BMC's login queued behind them must get its own full deadline once it starts."""
    driver = IpmiDriver(workers=8)
    silent = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    healthy_sim = start_sim()
    clock = SystemClock()
    try:
        for sock in silent:
            sock.bind(("127.0.0.1", 0))  # bound and never read: a hung BMC
        hung_logins = [
            asyncio.create_task(
                call_with_deadline(
                    clock, 0.5, f"hung-{i}: login",
                    lambda sock=sock, i=i: driver.open(  # type: ignore[misc]
                        SessionContext(f"hung-{i}", "bmc", tmp_path),
                        IpmiOptions.model_validate(
                            {
                                "host": "127.0.0.1", "port": sock.getsockname()[1], "username": "admin",
                                "password": "x", "presence_probe": False,  # the login itself must hang
                            }
                        ),
                    ),
                    queue_limit=60,
                )
            )
            for i, sock in enumerate(silent)
        ]  # fmt: skip
        await asyncio.sleep(0)
        session = await call_with_deadline(
            clock, 0.8, "healthy: login",  # less than the hung logins' deadlines added up (the old serial gate)
            lambda: driver.open(SessionContext("healthy", "bmc", tmp_path), options(healthy_sim)),
            queue_limit=60,
        )  # fmt: skip
        try:
            assert await session.get_power("chassis") is PowerState.ON
        finally:
            await session.close()
        for task in hung_logins:
            with pytest.raises(DeviceTimeoutError, match=r"login: no answer within 0\.5 s"):
                await task
    finally:
        await driver.aclose(grace=10)
        for sock in silent:
            sock.close()


async def test_a_silent_bmc_fails_its_presence_probe_without_taking_a_thread(
    start_sim: Callable[..., BmcProcess], options: OptionsFactory, tmp_path: Path
) -> None:
    driver = IpmiDriver(workers=2)
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))  # bound and never read: a hung BMC
    sim = start_sim()
    try:
        hung_options = IpmiOptions.model_validate(
            {"host": "127.0.0.1", "port": silent.getsockname()[1], "username": "admin", "password": "x"}
        )
        with pytest.raises(DeviceUnreachableError, match="presence probe"):
            await driver.open(SessionContext("hung", "bmc", tmp_path), hung_options)
        assert driver._executor.pending() == []  # no login thread was started for it
        session = await driver.open(SessionContext("ok", "bmc", tmp_path), options(sim))  # answers: logs in
        try:
            assert await session.get_power("chassis") is PowerState.ON
        finally:
            await session.close()
    finally:
        await driver.aclose()
        silent.close()


async def test_an_empty_reply_is_a_device_error_not_a_driver_bug(
    driver: IpmiDriver, sim: BmcProcess, context: SessionContext, options: OptionsFactory
) -> None:
    # pyghmi indexes into replies without checking their length: an empty Get Device ID reply (on the way to the
    # FRU) raised IndexError, which the daemon reported as a driver bug (site benchmark, 5 % loss).
    session = await driver.open(context, options(sim))
    try:
        sim.control("faults", empty_replies=True)
        with pytest.raises(DeviceProtocolError, match="malformed or short reply"):
            await session.read_inventory()
        sim.control("faults", empty_replies=False)
        inventory = await session.read_inventory()  # on a fresh session: the one that got the bad reply is gone
        assert inventory.model
        assert sim.status()["logins"] == 2
    finally:
        await session.close()


async def test_a_command_waits_for_one_sensor_read_not_for_a_whole_poll(
    driver: IpmiDriver, sim: BmcProcess, context: SessionContext, options: OptionsFactory
) -> None:
    # Calls to one BMC are serialized; a sensor walk that did not give way would hold an operator's command back
    # for the whole walk (seconds over a lossy link). The walk yields after the sensor in flight when a command
    # comes to wait, so the command goes in between.
    session = await driver.open(context, options(sim))
    try:
        sim.control("faults", delay=0.05)  # a slow BMC: the walk of ~30 sensors takes over a second
        walk = asyncio.create_task(session.read_sensors())
        while (await asyncio.to_thread(sim.status))["sensor_reads"] < 3:  # the walk is under way
            assert not walk.done()
        command = await call_with_deadline(  # as the runtime sends an operator's command: urgent
            SystemClock(), 10.0, "power state", lambda: session.get_power("chassis"), urgent=True
        )
        assert command is PowerState.ON
        assert not walk.done()  # the command was served in the middle of the walk
        readings = await walk
        assert any(r.sensor == "system_power" for r in readings)
        assert sim.status()["logins"] == 1
    finally:
        await session.close()


async def test_a_half_made_session_of_a_lost_rakp_counts_in_the_budget_until_the_bmc_expires_it(
    driver: IpmiDriver, sim: BmcProcess, context: SessionContext, options: OptionsFactory
) -> None:
    # A lost RAKP 1 makes pyghmi start over with a new Open Session; the BMC keeps the first, half-made session
    # (holding one of its few slots) until its setup timeout: 10 s in the simulator. rackd leaves it to that
    # timeout (closing it from the new session confused pyghmi about the new session's replies) and counts it.
    sim.control("faults", drop_rakp1=1)
    bmc_options = options(sim)
    bmc = (bmc_options.host, bmc_options.port)
    session = await driver.open(context, bmc_options)
    try:
        status = sim.status()
        assert status["faults"]["drop_rakp1"] == 0  # the fault happened: the first attempt was left half made
        assert status["open_sessions"] == 2
        assert SESSIONS.in_use(bmc) == 2
        assert await session.get_power("chassis") is PowerState.ON
    finally:
        await session.close()
    assert sim.status()["open_sessions"] == 1  # the logged-in one closed, the half-made one not yet expired
    assert SESSIONS.in_use(bmc) == 1
    sim.wait_for(lambda s: s["open_sessions"] == 0, timeout=30)


@pytest.mark.parametrize(("lost", "confirmed"), [(0, True), (2, True), (4, False)])
async def test_a_logout_frees_its_place_in_the_budget_once_the_bmc_answers_its_close(
    driver: IpmiDriver, sim: BmcProcess, context: SessionContext, options: OptionsFactory, lost: int, confirmed: bool
) -> None:
    # Close Session goes out up to three times until answered. An answered close frees the session's place at
    # once; when every copy is lost the BMC keeps the session until its idle timeout, and so does the budget
    # (four copies: when its retries run out pyghmi sends one more, without waiting for an answer).
    bmc_options = options(sim)
    bmc = (bmc_options.host, bmc_options.port)
    session = await driver.open(context, bmc_options)
    assert await session.get_power("chassis") is PowerState.ON
    assert SESSIONS.in_use(bmc) == 1
    sim.control("faults", drop_next=lost)
    await session.close()
    assert sim.status()["open_sessions"] == (0 if confirmed else 1)
    assert SESSIONS.in_use(bmc) == (0 if confirmed else 1)


async def test_a_login_while_the_last_session_closes_gets_a_session_of_its_own(
    sim: BmcProcess, options: OptionsFactory
) -> None:
    # The runner discards a failed session in the background and may log in again at once. pyghmi is written to
    # hand a logged-in session to a new login with the same credentials (it never matches today: it compares the
    # bytes it stored with the str it is given); the one being closed must not be handed over, or the new link
    # loses it when the close completes, and the close must still reach the BMC and be confirmed. (Marking the
    # closing session broken, the obvious guard, made pyghmi drop its routing, and so its close's answer.) Its
    # first two copies are lost here, so the close is under way (its third copy due at 1.5 s) during the login.
    bmc_options = options(sim)
    password = bmc_options.password.reveal()
    closing = await asyncio.to_thread(BmcLink, bmc_options, password, None)
    sim.control("faults", drop_next=2)
    logout = asyncio.create_task(asyncio.to_thread(closing.logout))
    await asyncio.to_thread(sim.wait_for, lambda s: s["faults"]["drop_next"] == 0, 5)
    assert not logout.done()
    fresh = await asyncio.to_thread(BmcLink, bmc_options, password, None)
    try:
        assert fresh.session is not closing.session
        await logout
        code, data = await asyncio.to_thread(fresh.raw, 0x00, 0x01)  # Get Chassis Status, after the close
        assert code == 0
        assert data
        assert sim.status()["logins"] == 2
    finally:
        await asyncio.to_thread(fresh.logout)
    assert sim.status()["open_sessions"] == 0
    assert SESSIONS.in_use((bmc_options.host, bmc_options.port)) == 0  # both closes confirmed


async def three_failed_logins_within_a_budget_of_two(
    driver: IpmiDriver, sim: BmcProcess, context: SessionContext, budget: IpmiOptions
) -> list[DeviceError]:
    """Three logins that fail; after each, the BMC holds at most the 2 sessions of the budget."""
    failures: list[DeviceError] = []
    for _ in range(3):
        with pytest.raises(DeviceError) as failed:
            await driver.open(context, budget)
        failures.append(failed.value)
        assert sim.status()["open_sessions"] <= 2
    return failures


async def test_logins_that_keep_failing_never_hold_more_sessions_than_the_budget(
    driver: IpmiDriver, sim: BmcProcess, context: SessionContext, options: OptionsFactory
) -> None:
    # Every RAKP 1 is lost: each login leaves half-made sessions (pyghmi starts over with a new Open Session) that
    # the BMC keeps for its setup timeout (10 s in the simulator) and that nobody can close. Past the budget a
    # login is refused before it sends anything, so the BMC never holds more than the budget.
    sim.control("faults", drop_rakp1=1000)
    budget = options(sim, max_sessions=2)
    failures = await three_failed_logins_within_a_budget_of_two(driver, sim, context, budget)
    assert isinstance(failures[-1], SessionLimitError), failures
    assert "session budget" in str(failures[-1])
    assert "127.0.0.1" in str(failures[-1])
    retry_after = failures[-1].retry_after  # the runner waits this long instead of a growing backoff
    assert retry_after is not None
    assert 0 < retry_after <= budget.session_setup_timeout
    assert sim.status()["open_sessions"] == 2  # the logins did reach the BMC: the budget, not luck, held the line
    sim.control("faults", drop_rakp1=0)
    sim.wait_for(lambda s: s["open_sessions"] == 0, timeout=30)  # the BMC expired them: so did the budget
    session = await driver.open(context, budget)
    try:
        assert await session.get_power("chassis") is PowerState.ON
    finally:
        await session.close()


async def test_logins_that_lose_rakp4_never_hold_more_sessions_than_the_budget(
    driver: IpmiDriver, sim: BmcProcess, context: SessionContext, options: OptionsFactory
) -> None:
    # Only RAKP 4 is lost: the BMC logs each attempt in and keeps it until its idle timeout (60 s here), though
    # the client never saw it. The budget counts such an attempt that long, not only for the setup timeout,
    # shortened here so that attempts a few seconds apart would otherwise fit again.
    sim.control("faults", drop_rakp4=1000)
    budget = options(sim, max_sessions=2, session_setup_timeout=0.5)
    failures = await three_failed_logins_within_a_budget_of_two(driver, sim, context, budget)
    assert isinstance(failures[-1], SessionLimitError), failures
    assert sim.status()["established_sessions"] == 2  # logged in on the BMC's side, never seen by the client


@pytest.mark.parametrize("urgent", [False, True])
async def test_a_command_s_state_read_resends_a_lost_request_early(
    driver: IpmiDriver, sim: BmcProcess, context: SessionContext, options: OptionsFactory, urgent: bool
) -> None:
    """An operator's command waits on its state reads: a lost one is resent HURRY_RETRANSMIT_AFTER after it went
    out. A poll's read keeps pyghmi's 0.5-1 s timer (no one waits on it; early resends would cost BMCs packets)."""
    session = await driver.open(context, options(sim))
    try:
        link = session._link
        assert link is not None
        pyghmi = link.session
        sim.control("faults", drop_next=1)  # the read's first copy is lost
        read = asyncio.create_task(
            call_with_deadline(SystemClock(), 10.0, "power state", lambda: session.get_power("chassis"), urgent=urgent)
        )
        while pyghmi not in pyghmi_session.Session.waiting_sessions:  # registered once the request is out
            await asyncio.sleep(0.001)
        resend_in = pyghmi.expiration - time.monotonic()
        if urgent:
            assert resend_in <= HURRY_RETRANSMIT_AFTER
        else:
            assert resend_in > 0.4
        assert await read is PowerState.ON  # the resend was answered
        assert not link.hurried  # only for that call
    finally:
        await session.close()


async def test_a_hurried_call_resends_its_lost_requests_early(
    driver: IpmiDriver, sim: BmcProcess, context: SessionContext, options: OptionsFactory
) -> None:
    """What a command waiting behind a poll's lost request gets: the resend moves from pyghmi's 0.5-1 s timer to
    HURRY_RETRANSMIT_AFTER after the request went out, for the request in flight and the call's next ones."""
    session = await driver.open(context, options(sim))
    try:
        link = session._link
        assert link is not None
        pyghmi = link.session
        waiting = pyghmi_session.Session.waiting_sessions

        async def lost_request_in_flight() -> Future[tuple[int, bytes]]:
            sim.control("faults", drop_next=1)
            call = driver._executor.submit(link.raw, 0x00, 0x01)  # Get Chassis Status, its first copy lost
            while pyghmi not in waiting:  # pyghmi registers its retry timer once the request is out
                await asyncio.sleep(0.001)
            return call

        call = await lost_request_in_flight()
        sent = pyghmi.expiration - pyghmi.timeout
        assert waiting[pyghmi]["timeout"] > sent + 0.4  # pyghmi's own first wait: 0.5-1 s
        link.hurry()
        assert waiting[pyghmi]["timeout"] <= sent + HURRY_RETRANSMIT_AFTER + 1e-6
        assert (await asyncio.wrap_future(call))[0] == 0  # the resend was answered

        call = await lost_request_in_flight()  # the same call's next request (hurried stays until the call ends)
        assert pyghmi.expiration - time.monotonic() <= HURRY_RETRANSMIT_AFTER
        assert (await asyncio.wrap_future(call))[0] == 0
    finally:
        await session.close()
