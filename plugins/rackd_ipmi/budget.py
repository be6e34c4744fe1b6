"""How many sessions rackd may have open on one BMC, half-made ones included: Open Session is refused past that."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

BmcAddress = tuple[str, int]  # host, port


@dataclass
class _Account:
    """One BMC's sessions as far as rackd can tell."""

    limit: int = 3
    setup_timeout: float = 10.0
    idle_timeout: float = 60.0
    held: int = 0  # logged-in sessions in use
    pending: list[float] = field(default_factory=list)  # when each Open Session not (yet) logged in was sent
    lingering: list[float] = field(default_factory=list)  # when each session whose Close went unanswered ended


class SessionBudget:
    """Per BMC: sessions in use + Open Session requests within the BMC's setup timeout + unconfirmed closes.

    A BMC has a few session slots (4 per user or channel on many). Every Open Session request may take one: if its
    reply is lost, or the login fails after it, the half-made session holds the slot until the BMC's setup timeout
    (OpenBMC 5 s, rackd's simulator 10 s) and nobody can close it, because no authenticated session exists to send
    Close Session from. A logout whose Close Session copies all go unanswered may leave its session until the BMC's
    idle timeout. Under 30 % loss the soak saw 4 sessions at once on one BMC: the account would be locked out of
    its own BMC. With this budget, a login past the limit is refused before it sends anything (SessionLimitError,
    and the poller backs off) until the BMC must have expired enough of them.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        """Empty; a BMC's limits come with its first `configure`."""
        self._clock = clock
        self._lock = threading.Lock()
        self._accounts: dict[BmcAddress, _Account] = {}

    def configure(self, bmc: BmcAddress, limit: int, setup_timeout: float, idle_timeout: float) -> None:
        """Set this BMC's limit and timeouts (from its options), keeping what is already counted."""
        with self._lock:
            account = self._accounts.setdefault(bmc, _Account())
            account.limit, account.setup_timeout, account.idle_timeout = limit, setup_timeout, idle_timeout

    def claim(self, bmc: BmcAddress) -> str | None:
        """Count one Open Session request about to be sent; None if allowed, else why it must not be sent."""
        now = self._clock()
        with self._lock:
            account = self._accounts.setdefault(bmc, _Account())
            self._expire(account, now)
            in_use = account.held + len(account.pending) + len(account.lingering)
            if in_use >= account.limit:
                frees = [t + account.setup_timeout for t in account.pending]
                frees += [t + account.idle_timeout for t in account.lingering]
                wait = f"; one frees in {min(frees) - now:.1f} s" if frees else ""
                return (
                    f"rackd session budget used: {account.held} in use, {len(account.pending)} half-made, "
                    f"{len(account.lingering)} unconfirmed closes of {account.limit} allowed{wait}"
                )
            account.pending.append(now)
            return None

    def refused(self, bmc: BmcAddress) -> None:
        """The BMC answered the newest Open Session with an error: it made no session."""
        with self._lock:
            account = self._accounts.get(bmc)
            if account is not None and account.pending:
                account.pending.pop()

    def settle(self, bmc: BmcAddress) -> None:
        """The newest Open Session became a logged-in session (logins to one BMC are serialized)."""
        with self._lock:
            account = self._accounts.setdefault(bmc, _Account())
            if account.pending:
                account.pending.pop()
            account.held += 1

    def closed_half_made(self, bmc: BmcAddress, count: int) -> None:
        """The BMC confirmed closing `count` half-made sessions: their slots are free (the oldest counted go)."""
        with self._lock:
            account = self._accounts.get(bmc)
            if account is not None:
                del account.pending[:count]

    def release(self, bmc: BmcAddress, confirmed: bool) -> None:
        """A logged-in session ended; unless the BMC confirmed its close, count it until the BMC's idle timeout."""
        now = self._clock()
        with self._lock:
            account = self._accounts.setdefault(bmc, _Account())
            account.held = max(0, account.held - 1)
            if not confirmed:
                account.lingering.append(now)

    def in_use(self, bmc: BmcAddress) -> int:
        """Sessions counted on this BMC now."""
        with self._lock:
            account = self._accounts.get(bmc)
            if account is None:
                return 0
            self._expire(account, self._clock())
            return account.held + len(account.pending) + len(account.lingering)

    @staticmethod
    def _expire(account: _Account, now: float) -> None:
        account.pending = [t for t in account.pending if now - t < account.setup_timeout]
        account.lingering = [t for t in account.lingering if now - t < account.idle_timeout]


SESSIONS = SessionBudget()
