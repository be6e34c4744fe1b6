"""One BMC's pyghmi session, used from worker threads only: login, paced raw requests, poison, logout."""

from __future__ import annotations

import contextlib
import struct
import threading
import time
from typing import Any

import structlog
from pyghmi.exceptions import IpmiException
from pyghmi.ipmi import command as ipmi_command
from pyghmi.ipmi.private import session as ipmi_session

from rackd.errors import DeviceError, DeviceProtocolError, UnsupportedError
from rackd_ipmi.budget import SESSIONS
from rackd_ipmi.options import PRIVILEGE_LEVELS, IpmiOptions
from rackd_ipmi.translate import call_error, login_error

log = structlog.get_logger(__name__)

# pyghmi's Session.attemptedhash after login: 256 = SHA-256 (suite 17), 1 = SHA-1 (suite 3).
NEGOTIATED_SUITE = {256: 17, 1: 3}
RETRANSMIT_BUDGET = 4  # pyghmi Session.maxtimeout: gives up when its retry timer exceeds this
NO_RESPONSE = 0xFFFF  # pyghmi's completion code for 'the BMC did not answer'
NETFN_APP, CMD_CLOSE_SESSION = 0x06, 0x3C
CC_INVALID_SESSION_ID = 0x87  # Close Session of an id the BMC no longer has: that slot is free too
# Close Session goes out up to three times until the BMC answers: at 0, 0.25 and 1.5 s, given up at 3.75 s (pyghmi's
# retry timer adds 1 s to the wait after each copy and gives up once the wait passes CLOSE_RETRANSMIT_BUDGET).
# At 30 % loss one close in 37 then never reaches the BMC, and one in 8 goes unconfirmed.
CLOSE_FIRST_WAIT = 0.25  # seconds: a BMC answers Close Session within milliseconds
CLOSE_RETRANSMIT_BUDGET = 2.5
SHORT_REPLY = (IndexError, struct.error)  # what pyghmi raises on a reply shorter than it expects
# An operator's command waiting behind a poll's request that went unanswered this long resends that request now
# rather than at pyghmi's retry timer (0.5-1 s): at 5 % loss that timer was the command latency p99. Resending a
# poll's read early is harmless (a BMC answers a repeated sequence number again; pyghmi drops the extra reply).
HURRY_RETRANSMIT_AFTER = 0.05


def abandon_login(options: IpmiOptions, password: str, kg: str | None) -> None:
    """Make a pyghmi login still running in a worker thread give up (its caller's deadline passed).

    pyghmi's Session constructor loops while `logging` is set; a reply lost when no retry timer is left keeps it
    there for ever, holding its thread and the login gate. The half-made session sits in initting_sessions
    (logins to one BMC are serialized, so the entry is this login's): marking it broken ends the loop with an error.
    """
    session = ipmi_session.Session.initting_sessions.get((options.host, options.username, password, options.port, kg))
    if session is not None:
        session.errormsg = "login abandoned at the caller's deadline"
        session.broken = True
        session.logging = False


class BmcLink:
    """A logged-in pyghmi Command for one BMC, with a minimum interval between IPMI requests.

    Every method blocks and must run in the driver's executor. A link is used by one call at a time (the pool
    runs one call per BMC session at a time) and is never reused after it has been poisoned.
    """

    def __init__(self, options: IpmiOptions, password: str, kg: str | None) -> None:
        """Log in now (blocking). Raises a rackd error naming the BMC on failure."""
        self.options = options
        self.where = options.where
        self._bmc = (options.host, options.port)
        self.poisoned = False
        self._logged_out = False
        self._settled = False  # this link's session counts in the BMC's session budget
        self._pace_lock = threading.Lock()
        self._next_request = 0.0
        self.hurried = False  # a command waits behind this link's call in progress: resend its lost requests early
        privlevel = PRIVILEGE_LEVELS[options.privilege] if options.privilege else None
        # pyghmi registers every new session in Session.initting_sessions under str credentials but removes it
        # under bytes ones, so the entry is never removed: the next Command() to this BMC would adopt that old
        # (logged-out or poisoned) session. Logins to one BMC are serialized (LoginGate), so dropping it here is safe.
        initting_key = (options.host, options.username, password, options.port, kg)
        initting = ipmi_session.Session.initting_sessions
        initting.pop(initting_key, None)
        SESSIONS.configure(self._bmc, options.max_sessions, options.session_setup_timeout, options.bmc_idle_timeout)
        try:
            self.command: Any = ipmi_command.Command(
                bmc=options.host,
                userid=options.username,
                password=password,
                port=options.port,
                kg=kg,
                privlevel=privlevel,
            )
        except IpmiException as exc:
            raise login_error(self.where, exc) from None
        except OSError as exc:
            raise login_error(self.where, exc) from None
        finally:
            initting.pop(initting_key, None)
        self.session: Any = self.command.ipmi_session
        if self.session.__dict__.pop("rackd_claimed", False) and self.session.logged:
            SESSIONS.settle(self._bmc, int(self.session.sessionid))  # not if pyghmi handed over a counted one
            self._settled = True
        if self.session.broken or not self.session.logged:
            # pyghmi clears `logging` before it sets `broken`; a login thread that sees the one and not yet the
            # other returns from the constructor as if logged in, on a dead session.
            raise login_error(self.where, IpmiException(getattr(self.session, "errormsg", None)))
        # After a lost reply pyghmi would log in again by itself on the same object (leaving the old session
        # open on the BMC) and keep the caller's thread for ~20 s. With no login retries left, a silent BMC
        # fails the call after its retransmissions (~9 s, below) and the driver decides what to do.
        self.session.logontries = 0
        # Four transmissions per request (at ~0, ~0.75, ~2.5 and ~5.25 s; given up at ~9 s) instead of two, as
        # ipmitool (-R 4) and FreeIPMI retry: a request that fails loses the session, and the re-login and re-poll
        # cost a healthy BMC one telemetry interval. At 5 % loss three transmissions failed 1 request in 8,000, the
        # main cause of the 72 failed polls of a 1,000-BMC site run (seventh session); four fail 1 in 160,000.
        # A deadline still ends the wait earlier (see poison()).
        self.session.maxtimeout = RETRANSMIT_BUDGET
        self.suite = NEGOTIATED_SUITE.get(getattr(self.session, "attemptedhash", 0), 0)
        if self.suite not in options.cipher_suites:
            self.logout()
            raise UnsupportedError(
                f"{self.where}: BMC negotiated cipher suite {self.suite}, allowed: {list(options.cipher_suites)}"
            )
        self._install_pacing()
        # Half-made sessions of this login's lost attempts are left to the BMC's setup timeout, counted meanwhile by
        # the session budget. Closing them from this session (sixth to seventh session) sent Close Session without
        # waiting for its reply: pyghmi took that late reply for the answer to the session's next request, which
        # lost its retry timer; at 1,000 BMCs every start-up failure with code 0x87 followed such a close.
        self.last_used = time.monotonic()

    def _install_pacing(self) -> None:
        # pyghmi's Command methods all go through session.raw_command: pace there, on this session only.
        original = self.session.raw_command
        if getattr(original, "rackd_paced", False):
            return  # pyghmi handed us a session another link already shares (same BMC and credentials)
        interval = self.options.min_command_interval

        def paced_raw_command(*args: Any, **kwargs: Any) -> Any:
            if interval and kwargs.get("callback") is None:  # keepalives (callback) run on pyghmi's loop
                with self._pace_lock:
                    wait = self._next_request - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)  # in a worker thread: spaces requests so the BMC is not hammered
                    self._next_request = time.monotonic() + interval
            if self.hurried and kwargs.get("timeout") is None and kwargs.get("callback") is None:
                kwargs["timeout"] = HURRY_RETRANSMIT_AFTER  # pyghmi: the wait before the first resend only
            return original(*args, **kwargs)

        paced_raw_command.rackd_paced = True  # type: ignore[attr-defined]  # marker against double wrapping
        self.session.raw_command = paced_raw_command

    def hurry(self) -> None:
        """An operator's command waits behind this link's call in progress (event loop): resend early from now on.

        The request in flight now is resent HURRY_RETRANSMIT_AFTER s after it went out instead of at pyghmi's
        retry timer; the call's later requests get the same first wait (paced_raw_command). The call's owner ends
        the hurry when the call returns.
        """
        self.hurried = True
        session = self.session
        # Without pyghmi's WAITING_SESSIONS lock: its I/O loop holds that lock while it walks every waiting session
        # of the process and resends, so at 1,000 BMCs the event loop would wait for it. A dict read and an item
        # write are atomic; if pyghmi replaced or removed the entry meanwhile, the write lands on a dict it no
        # longer reads, and the resend simply happens at its own timer.
        waiting = ipmi_session.Session.waiting_sessions.get(session)
        if waiting is not None:
            sent = float(session.expiration) - float(session.timeout)
            waiting["timeout"] = min(float(waiting["timeout"]), sent + HURRY_RETRANSMIT_AFTER)

    def raw(self, netfn: int, command: int, data: bytes = b"") -> tuple[int, bytes]:
        """One raw IPMI request: (completion code, response data). Failures other than codes raise."""
        what = f"raw netfn 0x{netfn:02X} cmd 0x{command:02X}"
        try:
            response = self.command.raw_command(netfn=netfn, command=command, data=tuple(data))
        except IpmiException as exc:
            raise self.fail(what, exc) from None
        except OSError as exc:
            raise self.fail(what, exc) from None
        code = int(response.get("code", 0) or 0)
        if "error" in response and code in (0, 0xFFFF):
            raise self.fail(what, IpmiException(response["error"], 0xFFFF if code == 0xFFFF else 0))
        self.last_used = time.monotonic()
        return code, bytes(response.get("data", b""))

    def call(self, what: str, func: Any, *args: Any) -> Any:
        """Run a pyghmi Command method, translating its failures."""
        try:
            result = func(*args)
        except IpmiException as exc:
            raise self.fail(what, exc) from None
        except OSError as exc:
            raise self.fail(what, exc) from None
        except SHORT_REPLY as exc:
            # pyghmi indexes into replies without checking their completion code or length: a reply with an error
            # code and no data (or a stray one) surfaces as IndexError deep inside it (site benchmark: Get Device ID
            # under loss). That is the BMC's reply, not a rackd bug; the session's state is unknown afterwards.
            self.poison()
            raise DeviceProtocolError(f"{self.where}: {what}: malformed or short reply ({exc!r})") from None
        self.last_used = time.monotonic()
        return result

    def fail(self, what: str, exc: BaseException) -> DeviceError:
        """Translate a failure; a failure without a completion code means the session is no longer trusted."""
        error = call_error(self.where, what, exc)
        if getattr(exc, "ipmicode", 0) in (0, NO_RESPONSE):
            self.poison()
        return error

    def poison(self) -> None:
        """Never use this session again; pyghmi must not hand it to the next login either."""
        if not self.poisoned:
            self.poisoned = True
            # pyghmi de-duplicates sessions per (host, port, user, password): a session still marked good would
            # be adopted by the next Command(). Marking it broken makes the next login start a fresh one.
            self.session.broken = True
            # A worker still waiting for this session's reply re-checks these flags after every (capped) I/O
            # wait and gives up at once, instead of holding its thread for the rest of pyghmi's retry budget.
            self.session.logged = 0
            self.session.logging = False

    def logout(self) -> None:
        """Close the session on the BMC, waiting for its answer (up to three copies); never raises; once.

        pyghmi sends one Close Session without waiting for the reply. On a lossy link that one is lost often enough
        to leave sessions open on the BMC until its own timeout (4 at once on a BMC at 30 % loss in the soak, and
        some BMCs allow only 4). Only an answered close frees the session's place in the budget at once; an
        unanswered one counts until the BMC's idle timeout. Until the eighth session no close was ever confirmed:
        pyghmi's `retry=False` returns before any reply, so every logout held a place for 60 s.
        """
        with self._pace_lock:
            if self._logged_out:
                return
            self._logged_out = True
        session = self.session
        confirmed = False
        try:
            session.logged = 1  # pyghmi sends only on a logged session; poison() or pyghmi itself cleared it
            session.timeout, session.maxtimeout = CLOSE_FIRST_WAIT, CLOSE_RETRANSMIT_BUDGET
            reply = session.raw_command(
                netfn=NETFN_APP, command=CMD_CLOSE_SESSION, data=tuple(struct.pack("<I", int(session.sessionid)))
            )
            # 0x87: the BMC no longer has this session (it expired it): its place is free too.
            confirmed = isinstance(reply, dict) and reply.get("code") in (0, CC_INVALID_SESSION_ID)
        except Exception as exc:  # noqa: BLE001 - the BMC may be gone; the session is discarded either way
            log.debug("ipmi_logout_failed", bmc=self.where, error=repr(exc))
        finally:
            if self._settled:
                SESSIONS.release(self._bmc, confirmed)
            session.logged = 0  # so pyghmi's logout below only cleans up (keepalives, waiters): no extra copy
            with contextlib.suppress(Exception):
                session.logout()
            session.logging = False
