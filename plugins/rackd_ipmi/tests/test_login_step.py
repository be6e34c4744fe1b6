"""pyghmi's shared I/O loop, as patched: the last login step never holds a thread; sockets keep their mode; replies."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pyghmi.ipmi.private.session as ipmi_session
import pytest
from pyghmi.ipmi import command as ipmi_command
from pyghmi.ipmi.private.session import Session
from rackd_ipmi import pyghmi_patches
from rackd_sim.bmc.process import BmcProcess

from rackd.model import PowerState

SAFETY = 30.0  # seconds; only bounds a broken login loop so the test fails instead of hanging


@pytest.fixture
def logged_in(sim: BmcProcess) -> Iterator[Any]:
    """A pyghmi Command logged in to the simulated BMC, with rackd's patches applied."""
    pyghmi_patches.apply()
    ep = sim.endpoint
    assert ep is not None
    command = ipmi_command.Command(bmc=ep.host, userid=ep.username, password=ep.password, port=ep.port)
    yield command
    command.ipmi_session.logout()


def run_login_loop(session: Any) -> None:
    """What pyghmi's Session constructor does after sending a login packet: let the shared loop advance it."""
    give_up = time.monotonic() + SAFETY
    while session.logging and time.monotonic() < give_up:
        Session.wait_for_rsp()


def test_privilege_step_returns_before_the_bmc_answers_and_completes_later(sim: BmcProcess, logged_in: Any) -> None:
    # pyghmi runs this step from whichever thread processed the RAKP 4 packet. Its own version waits there for the
    # reply, processing only this session's packets: other logins and polls that thread serves stop meanwhile, and
    # under loss they never resumed (pyghmi_patches._request_privilege). The step must only transmit.
    session = logged_in.ipmi_session
    sim.control("faults", hang=True)
    session.logging = True  # as between RAKP 4 and the end of the login
    session._req_priv_level()
    # pyghmi's blocking version only returns once its retries are spent, with the session broken.
    assert session.logging
    assert not session.broken
    assert session in Session.waiting_sessions  # the request is in flight, under pyghmi's retry timer
    sim.control("faults", hang=False)
    run_login_loop(session)
    assert not session.logging
    assert not session.broken
    assert session.logged
    assert logged_in.get_power()["powerstate"] == PowerState.ON.value


def test_privilege_step_without_a_reply_fails_the_login_with_a_clear_error(sim: BmcProcess, logged_in: Any) -> None:
    session = logged_in.ipmi_session
    sim.control("faults", hang=True)
    session.logging = True
    session._req_priv_level()
    session.maxtimeout = 1  # one transmission only (pyghmi allows 4 s of retries): the BMC stays silent anyway
    run_login_loop(session)
    assert not session.logging
    assert session.broken
    assert "privilege level 4" in str(session.errormsg)


def test_sending_and_receiving_leave_a_shared_socket_in_its_mode() -> None:
    # pyghmi toggled the mode on every send and receive; a send from a worker thread between the I/O thread's
    # switch to non-blocking and its recvfrom left the I/O thread blocked for good (pyghmi_patches).
    pyghmi_patches.apply()
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender,
    ):
        receiver.bind(("127.0.0.1", 0))
        sender.bind(("127.0.0.1", 0))
        assert receiver.getblocking()
        assert ipmi_session._io_recvfrom(receiver, 3000) is None  # nothing queued: returns at once, even blocking
        assert receiver.getblocking()
        sender.setblocking(False)
        ipmi_session._io_sendto(sender, b"\x06\x00\xff\x07", receiver.getsockname())
        assert not sender.getblocking()
        data, source = ipmi_session._io_recvfrom(receiver, 3000)
        assert data == b"\x06\x00\xff\x07"
        assert source == sender.getsockname()


def test_marking_a_busy_session_broken_closes_it_without_waiting_for_its_command(
    sim: BmcProcess, logged_in: Any
) -> None:
    # pyghmi marks sessions broken from its timer loop while holding the global session lock; its logout then
    # waited for the command in progress to end, which needs that lock: every IPMI exchange stopped (site bench).
    session = logged_in.ipmi_session
    assert sim.status()["established_sessions"] == 1
    session.incommand = time.monotonic() + 3600  # a command in progress for the next hour
    with ipmi_session.util.protect(ipmi_session.WAITING_SESSIONS):  # as in wait_for_rsp's timer pass
        session._mark_broken("no answer")
    assert session.broken
    assert session.errormsg == "no answer"
    # Close Session went out at once (pyghmi's would have waited the hour for the command to end)
    for _ in range(50):
        if sim.status()["open_sessions"] == 0:
            break
    assert sim.status()["open_sessions"] == 0


def test_the_reason_is_set_before_pyghmi_ends_the_login_wait(logged_in: Any) -> None:
    # pyghmi's logout (run by _mark_broken) clears `logging`, which ends a login thread's wait in another
    # thread; that thread then raised IpmiException(session.errormsg) before the reason was set: AttributeError,
    # a driver bug in the one-hour soak once the keepalive thread ran pyghmi's timers.
    session = logged_in.ipmi_session
    seen: list[object] = []
    pyghmi_logout = session.logout

    def logout(*args: Any) -> Any:
        seen.append(getattr(session, "errormsg", "unset"))
        return pyghmi_logout(*args)

    session.logout = logout
    session._mark_broken("no answer")
    assert seen == ["no answer"]


def test_a_request_sent_while_its_predecessor_s_reply_is_handed_over_gets_its_answer(logged_in: Any) -> None:
    # pyghmi hands a reply to its caller and then tidied up with the request fields as they are by then: when the
    # woken caller had already sent its next request from another thread, that request's entry went too, and every
    # answer to it was dropped (pyghmi_patches.replies_never_drop_the_next_request). The callback below is that
    # caller at the worst moment: it sends the next request before pyghmi is done with the reply.
    session = logged_in.ipmi_session
    answers: list[dict[str, Any]] = []

    def second(response: dict[str, Any]) -> None:
        session.incommand = False  # what raw_command's caller must do when it passes a callback
        answers.append(response)

    def first(_response: dict[str, Any]) -> None:
        session.incommand = False
        session.raw_command(netfn=0x00, command=0x01, callback=second)  # Get Chassis Status

    session.raw_command(netfn=0x06, command=0x01, callback=first)  # Get Device ID
    give_up = time.monotonic() + SAFETY
    while not answers and time.monotonic() < give_up:
        Session.wait_for_rsp(0.1)
    assert answers, "no answer and no timeout"
    assert "error" not in answers[0], answers[0]  # before the patch: pyghmi's retries ran out ('timeout')
    assert answers[0]["command"] == 0x01
    assert answers[0]["code"] == 0
