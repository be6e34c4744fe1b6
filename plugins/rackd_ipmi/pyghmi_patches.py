"""Process-wide mitigations for pyghmi: waits, clock, keepalives, locks, poll, sockets, login, budget, replies."""

from __future__ import annotations

import contextlib
import random
import select
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

import pyghmi.ipmi.private.session as ipmi_session
from pyghmi.ipmi.private.util import get_ipmi_error

from rackd_ipmi.budget import SESSIONS

IO_WAIT_CAP = 0.02  # seconds; callers loop on their own deadlines, so a short wait only costs a re-check
_lock = threading.Lock()


def cap_io_wait(cap: float = IO_WAIT_CAP) -> None:
    """Make pyghmi wait at most `cap` seconds per internal wait (idempotent).

    A reply queued before its caller registered its wait otherwise sleeps until the 0.5-1 s retry timer.
    """
    with _lock:
        current = ipmi_session._io_wait
        if getattr(current, "rackd_capped", False):
            return
        original = current

        def capped_io_wait(timeout: float, myaddr: Any = None, evq: Any = None) -> Any:
            return original(min(timeout, cap), myaddr, evq)

        capped_io_wait.rackd_capped = True  # type: ignore[attr-defined]  # marker against double patching
        ipmi_session._io_wait = capped_io_wait


def fine_clock() -> None:
    """Give pyghmi's session module `time.monotonic` instead of `os.times()[4]` (idempotent).

    `os.times()` moves in 10 ms ticks: with the 20 ms wait cap a waiter's deadline often lands on the current tick,
    its timeout computes to exactly 0, and pyghmi's I/O thread spins in `select(..., 0)` until the tick turns.
    Measured in bench/bmc_polling (docs/benchmarks.md): CPU per BMC poll fell from ~20 ms to ~10 ms.
    """
    with _lock:
        ipmi_session._monotonic_time = time.monotonic


KEEPALIVE_IDLE = 20.0  # seconds; pyghmi keeps a session alive this long minus 0-4.9 s after its last packet


def keepalive_with_margin(idle: float = KEEPALIVE_IDLE) -> None:
    """Send keepalives 15-20 s after a session's last packet instead of pyghmi's 24-29 s (idempotent).

    BMCs drop a session idle for their inactivity timeout, 30 s on OpenIPMI's ipmi_sim (measured: a session idle
    28 s answered, one idle 33 s was gone) and 60 s in the IPMI spec. pyghmi's keepalive at up to 29 s left a lost
    keepalive's resend (0.5-1 s later) past 30 s: the session was gone, and the next poll failed after ~9 s of
    retransmissions and logged in again. That was most failed polls of the 1,000-BMC site benchmark at 5 % loss
    (seventh session). From 15-20 s a keepalive has three resends before 30 s. A session polled every 30 s still
    gets one keepalive per poll, as before.
    """
    with _lock:
        ipmi_session.MAX_IDLE = idle


def merge_session_locks() -> None:
    """Use one re-entrant lock for pyghmi's two global session tables (idempotent).

    `Session.wait_for_rsp` holds WAITING_SESSIONS while a timed-out session retransmits, and retransmitting takes
    KEEPALIVE_SESSIONS; `send_payload` in any other thread takes them in the opposite order. With several worker
    threads and a lost reply, every pyghmi thread of the process deadlocked (seen in the fault tests). A single
    RLock cannot be taken in two orders.
    """
    with _lock:
        shared = ipmi_session.KEEPALIVE_SESSIONS
        if ipmi_session.WAITING_SESSIONS is not shared:
            ipmi_session.WAITING_SESSIONS = shared


class PollSelect:
    """Stands in for the `select` module inside pyghmi: `select()` on read sets through poll(2).

    pyghmi's I/O thread waits in `select.select`, which refuses descriptors >= 1024 (FD_SETSIZE) with ValueError
    and the thread dies: every IPMI call of the process then waits for ever. A daemon with hundreds of console
    connections and log files opens pyghmi's sockets above 1024 as the fleet grows (seen at ~600 BMCs + 500
    consoles: the whole IPMI side stopped 40 s after start). poll(2) has no such limit.
    """

    error = select.error

    @staticmethod
    def select(rlist: Sequence[Any], wlist: Sequence[Any], xlist: Sequence[Any], timeout: float | None = None) -> Any:
        """Readable members of `rlist` (pyghmi passes no write or error sets)."""
        if wlist or xlist:
            raise ValueError("PollSelect supports read sets only")
        poller = select.poll()
        by_fd = {}
        for member in rlist:
            fd = member if isinstance(member, int) else member.fileno()
            by_fd[fd] = member
            poller.register(fd, select.POLLIN)
        wait_ms = None if timeout is None else max(0.0, timeout) * 1000.0
        ready = [by_fd[fd] for fd, _ in poller.poll(wait_ms) if fd in by_fd]
        return ready, [], []


def poll_instead_of_select() -> None:
    """Make pyghmi's I/O thread use poll(2) (idempotent): see PollSelect."""
    with _lock:
        ipmi_session.select = PollSelect


def _send(sock: Any, packet: bytes, address: Any) -> None:
    if hasattr(sock, "fd"):
        sock = sock.fd  # pyghmi's own special case for eventlet's green sockets
    # As pyghmi: a packet that could not be sent is a lost packet, and the retry timer deals with it.
    with contextlib.suppress(OSError):
        sock.sendto(packet, address)


def _receive(sock: Any, size: int) -> Any:
    try:
        return sock.recvfrom(size, socket.MSG_DONTWAIT)
    except OSError:
        return None  # nothing queued (EAGAIN), as pyghmi expects


def socket_modes_untouched() -> None:
    """Send and receive on pyghmi's shared sockets without switching their blocking mode (idempotent).

    pyghmi's `_io_sendto` switches the socket to blocking before each send and its `_io_recvfrom` switches it
    back to non-blocking before each receive. Several sessions share a socket and send from any worker thread
    while pyghmi's I/O thread receives, so a send landing between the I/O thread's switch and its `recvfrom`
    left that thread in a blocking receive: every IPMI exchange of the process then stopped until a packet
    happened to reach that one socket. Seen in the 1,000-BMC site benchmark once logins ran concurrently: 64
    workers waiting for replies, CPU idle, the I/O thread's kernel stack in `__skb_wait_for_more_packets`. With
    MSG_DONTWAIT a receive never waits whatever the socket's mode, and nothing changes the mode any more.
    """
    with _lock:
        ipmi_session._io_sendto = _send
        ipmi_session._io_recvfrom = _receive


NETFN_APP, CMD_SET_SESSION_PRIVILEGE = 0x06, 0x3B
ADMINISTRATOR, OPERATOR = 4, 3
REFUSED_LEVEL = (0x80, 0x81)  # Set Session Privilege Level: 'not available for this user' / 'exceeds the limit'


def _request_privilege(session: Any) -> None:
    """The last login step (Set Session Privilege Level), sent with a callback instead of waited for.

    Replaces pyghmi's `Session._req_priv_level`, which sends the request with a blocking `raw_command`. pyghmi
    runs that step from `_got_rakp4`, i.e. in whichever thread happened to process the RAKP 4 packet: a thread
    logging in BMC A, or polling BMC C, finds itself waiting for BMC B's reply, processing only B's packets. Under
    packet loss B re-logs in from inside that wait and the nested exchange never sees its reply: with 8 logins at
    once next to 300 logged-in BMCs at 5 % loss, every login thread stopped within 90 s (a /tmp experiment; the
    stacks showed two threads inside other sessions' `_req_priv_level`). The site benchmark saw the same at 4
    concurrent logins, which is why logins ran one at a time. Sent with a callback, the step only transmits: the
    login stays a state machine that any thread can advance without blocking.
    """
    session.logged = 1
    session.logoutexpiry = None
    session.maxtimeout = 4  # pyghmi's value for this step
    # A lost reply fails this login (the driver logs in afresh) rather than pyghmi re-logging in from the timer.
    session.logontries = 0
    _send_privilege_request(session, session.privlevel)


def _send_privilege_request(session: Any, level: int) -> None:
    def answered(response: dict[str, Any]) -> None:
        session.incommand = False  # what raw_command's caller must do when it passes a callback
        while session.evq:
            session.evq.popleft().set()
        if "error" in response:  # pyghmi's timer gave up: no reply
            _login_failed(session, f"{response['error']} while requesting privilege level {level}")
            return
        code = response.get("code", 0)
        if code in REFUSED_LEVEL and level == ADMINISTRATOR:
            session.privlevel = OPERATOR  # as pyghmi: some BMCs accept the login and then refuse administrator
            _send_privilege_request(session, OPERATOR)
            return
        if code:
            suffix = f" while requesting privilege level {level} for {session.userid!r}"
            _login_failed(session, get_ipmi_error(response, suffix=suffix) or f"completion code 0x{code:02X}{suffix}")
            return
        session.logontries = 1  # as pyghmi after a login: one re-login to heal an established session
        session.logging = False
        with ipmi_session.util.protect(ipmi_session.KEEPALIVE_SESSIONS):
            ipmi_session.Session.keepalive_sessions[session] = {
                "ipmisession": session,
                "timeout": ipmi_session._monotonic_time() + ipmi_session.MAX_IDLE - random.random() * 4.9,
            }
        session.onlogon({"success": True})

    session.raw_command(netfn=NETFN_APP, command=CMD_SET_SESSION_PRIVILEGE, data=[level], callback=answered)


def _login_failed(session: Any, error: str) -> None:
    session.logged = 0
    session.onlogpayload = None
    # pyghmi's onlogon marks the session broken (and only then clears `logging`): the constructor raises.
    session.onlogon({"error": error})


def privilege_step_never_blocks() -> None:
    """Install `_request_privilege` as pyghmi's last login step (idempotent)."""
    with _lock:
        ipmi_session.Session._req_priv_level = _request_privilege


def mark_broken_without_waiting() -> None:
    """Make pyghmi's `_mark_broken` never wait and keep the first reason it was given (idempotent).

    Never to wait: pyghmi marks a session broken from its timer loop (`wait_for_rsp`) while it holds the global
    session-table lock, and `_mark_broken` logs out, sending Close Session through `raw_command`, which first
    waits (`_cmdwait`) until the session's command in progress is over — up to its whole retry window (~6 s).
    That command's thread cannot end it, because it needs the same lock to process its reply. Every IPMI exchange
    of the process stopped meanwhile, the replies left unprocessed timed out in turn, and the next timer pass
    broke more sessions the same way: in the 1,000-BMC site benchmark, 63 of 64 workers waited on that lock while
    one sat in `_cmdwait` under it, and polls were skipped by the hundred. The session is being torn down, so its
    command in progress is over: it is marked so, and Close Session goes out at once.

    The first reason: when a login request times out, pyghmi reports the timeout to the login step, which marks
    the session broken with a reason, and then marks it broken once more without one: the login failed with
    `IpmiException(None)`. And the reason is set first (see below).
    """
    with _lock:
        original = ipmi_session.Session._mark_broken
        if getattr(original, "rackd_patched", False):
            return

        def mark_broken(session: Any, error: Any = None) -> Any:
            if error is None and session.broken:
                error = getattr(session, "errormsg", None)
            session.incommand = False
            # Set before pyghmi's own code runs: its logout clears `logging` first, and a login thread waiting
            # on that flag in another thread then raised `IpmiException(self.errormsg)` before the reason was
            # set, an AttributeError (a driver bug in the soak, once the keepalive thread ran the timers).
            session.errormsg = error
            return original(session, error)

        mark_broken.rackd_patched = True  # type: ignore[attr-defined]  # marker against double patching
        ipmi_session.Session._mark_broken = mark_broken


def count_open_session_replies() -> None:
    """Tell the session budget what the BMC answered to each Open Session: a session id, or an error (idempotent).

    The budget counts every Open Session request as a session the BMC may hold (`budget_open_sessions`); the id
    links that count to the RAKP 3 and the login that follow, and an error reply frees it at once.
    """
    with _lock:
        original = ipmi_session.Session._got_rmcp_response
        if getattr(original, "rackd_patched", False):
            return

        def got_open_session_response(session: Any, data: Any) -> Any:
            if session.sessioncontext == "OPENSESSION" and len(data) > 1 and data[0] == session.rmcptag and data[1]:
                SESSIONS.refused((session.bmc, session.port))  # an error status: the BMC made no session
            before = getattr(session, "pendingsessionid", None)
            result = original(session, data)
            after = getattr(session, "pendingsessionid", None)
            if after is not None and after != before:
                SESSIONS.answered((session.bmc, session.port), after)
            return result

        got_open_session_response.rackd_patched = True  # type: ignore[attr-defined]  # marker against double patching
        ipmi_session.Session._got_rmcp_response = got_open_session_response


def budget_open_sessions() -> None:
    """Send Open Session only within the BMC's session budget (`budget.SESSIONS`); past it the login fails.

    pyghmi sends a new Open Session each time a login attempt times out (a retransmission of Open Session is a new
    request, and a lost RAKP restarts the login), so one login on a lossy link can leave several half-made
    sessions on the BMC. Counting each request as it goes out bounds them however the login got there.
    """
    with _lock:
        original = ipmi_session.Session._open_rmcpplus_request
        if getattr(original, "rackd_patched", False):
            return

        def open_within_budget(session: Any) -> Any:
            refusal = SESSIONS.claim((session.bmc, session.port))
            if refusal is not None:
                session.lastpayload = None  # nothing in flight: the retry timer must not resend an old request
                _login_failed(session, refusal)
                return None
            session.rackd_claimed = True  # BmcLink or the SOL console settles the claim once logged in
            return original(session)

        open_within_budget.rackd_patched = True  # type: ignore[attr-defined]  # marker against double patching
        ipmi_session.Session._open_rmcpplus_request = open_within_budget

        send_rakp3 = ipmi_session.Session._send_rakp3

        def rakp3_counted(session: Any) -> Any:
            # Once RAKP 3 is out, only RAKP 4 may be lost: the BMC then holds a logged-in session we never saw,
            # until its idle timeout rather than its setup timeout (the one-hour soak's peak of 4 with the budget).
            SESSIONS.rakp3_sent((session.bmc, session.port), session.pendingsessionid)
            return send_rakp3(session)

        ipmi_session.Session._send_rakp3 = rakp3_counted


def replies_never_drop_the_next_request() -> None:
    """Keep the next request's entry when a reply is parsed (idempotent).

    pyghmi matches a reply to a request by an entry (netfn, sequence, command) it adds when it builds the request.
    After parsing a reply, which hands it to the waiting caller, pyghmi removes the entry of `(expectednetfn,
    seqlun, expectedcmd)`: normally a no-op, since parsing has just reset those to a value no request has. But the
    caller it woke may already have built its next request in another thread, and then that line removes the *next*
    request's entry: every answer to it, retransmissions included, is dropped as "not ours", and the call fails
    with "no answer" after its retries although the BMC answered each copy. At 1,000 BMCs this was most of the
    start-up failures ("Session no longer connected" on the first Get Chassis Status after a login, whose last step
    is answered through a callback in whichever thread read it): a relay trace showed `ipmi_sim` answering all five
    copies. 200 `ipmi_sim` without loss, three logins and polls each: 4 of 600 failed this way before the patch.
    The replacement is pyghmi's method for a client session without that line.
    """
    with _lock:
        original = ipmi_session.Session._parse_ipmi_payload
        if getattr(original, "rackd_patched", False):
            return

        def parse_reply(session: Any, payload: Any) -> Any:
            if session.servermode or len(payload) < 7:
                return original(session, payload)
            entry = (payload[1] >> 2, payload[4] >> 2, payload[5])  # netfn, rqSeq, command of the reply
            if entry not in session.request_entry:
                return -1  # not an answer to a request of ours (as pyghmi)
            session._remove_request_entry(entry)
            if entry[0] in (0x06, 0x07) and entry[2] == 0x34 and payload[-2] == 0:
                return -1  # Send Message (bridged): this reply only says the message went out (as pyghmi)
            session._parse_payload(payload)
            return None

        parse_reply.rackd_patched = True  # type: ignore[attr-defined]  # marker against double patching
        ipmi_session.Session._parse_ipmi_payload = parse_reply


def apply() -> None:
    """Every mitigation, once per process."""
    cap_io_wait()
    fine_clock()
    keepalive_with_margin()
    merge_session_locks()
    poll_instead_of_select()
    socket_modes_untouched()
    privilege_step_never_blocks()
    mark_broken_without_waiting()
    count_open_session_replies()
    replies_never_drop_the_next_request()
    budget_open_sessions()
