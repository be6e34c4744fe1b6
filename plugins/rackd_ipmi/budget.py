"""How many sessions rackd may have open on one BMC, half-made ones included: Open Session is refused past that."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

BmcAddress = tuple[str, int]  # host, port
FREES_IN = "; one frees in "  # the refusal travels through pyghmi as text: `frees_in` reads the wait back


@dataclass
class _Claim:
    """One Open Session request that may have left a session on the BMC."""

    sent: float
    session_id: int | None = None  # from the BMC's Open Session Response, once it answered
    maybe_established: bool = False  # RAKP 3 went out: the BMC may hold a logged-in session we never saw


@dataclass
class _Account:
    """One BMC's sessions as far as rackd can tell."""

    limit: int = 3
    setup_timeout: float = 10.0
    idle_timeout: float = 60.0
    held: int = 0  # logged-in sessions in use
    claims: list[_Claim] = field(default_factory=list)  # Open Session requests not (yet) logged in
    lingering: list[float] = field(default_factory=list)  # when each session whose Close went unanswered ended

    def expire(self, now: float) -> None:
        self.claims = [c for c in self.claims if now - c.sent < self.lifetime(c)]
        self.lingering = [t for t in self.lingering if now - t < self.idle_timeout]

    def in_use(self) -> int:
        return self.held + len(self.claims) + len(self.lingering)

    def lifetime(self, claim: _Claim) -> float:
        return self.idle_timeout if claim.maybe_established else self.setup_timeout

    def newest(self, session_id: int | None) -> _Claim | None:
        """The claim of this session id, else the newest one without an id."""
        for claim in reversed(self.claims):
            if claim.session_id == session_id:
                return claim
        return next((c for c in reversed(self.claims) if c.session_id is None), None)


class SessionBudget:
    """Per BMC: sessions in use + Open Session requests the BMC may still hold + unconfirmed closes.

    A BMC has a few session slots (4 per user or channel on many). Every Open Session request may take one: if its
    reply is lost, or the login fails after it, the half-made session holds the slot until the BMC's setup timeout
    (OpenBMC 5 s, rackd's simulator 10 s); rackd leaves it to that timeout (link.py says why it does not close it).
    If the login got as far as RAKP 3 and only RAKP 4 was lost, the BMC holds a *logged-in* session until its idle
    timeout. A logout whose Close Session copies all go unanswered may leave its session until the idle timeout too.
    Under 30 % loss the soak saw 4 sessions at once on one BMC: the account would be locked out of its own BMC.
    With this budget, a login past the limit is refused before it sends anything
    (SessionLimitError, and the poller backs off) until the BMC must have expired enough of them.
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
            account.expire(now)
            if account.in_use() >= account.limit:
                frees = [c.sent + account.lifetime(c) for c in account.claims]
                frees += [t + account.idle_timeout for t in account.lingering]
                wait = f"{FREES_IN}{min(frees) - now:.1f} s" if frees else ""
                return (
                    f"rackd session budget used: {account.held} in use, {len(account.claims)} half-made, "
                    f"{len(account.lingering)} unconfirmed closes of {account.limit} allowed{wait}"
                )
            account.claims.append(_Claim(now))
            return None

    def _claim_of(self, bmc: BmcAddress, session_id: int | None) -> tuple[_Account, _Claim] | None:
        """(account, claim) for this session id (None: the newest unanswered one), if counted; under the lock."""
        account = self._accounts.get(bmc)
        claim = account.newest(session_id) if account is not None else None
        return None if account is None or claim is None else (account, claim)

    def answered(self, bmc: BmcAddress, session_id: int) -> None:
        """The BMC answered the newest Open Session with this session id."""
        with self._lock:
            if found := self._claim_of(bmc, None):
                found[1].session_id = session_id

    def refused(self, bmc: BmcAddress) -> None:
        """The BMC answered the newest Open Session with an error: it made no session."""
        with self._lock:
            if found := self._claim_of(bmc, None):
                account, claim = found
                account.claims.remove(claim)

    def rakp3_sent(self, bmc: BmcAddress, session_id: int) -> None:
        """RAKP 3 went out for this session: from now on the BMC may hold it logged in, until its idle timeout."""
        with self._lock:
            if found := self._claim_of(bmc, session_id):
                found[1].maybe_established = True

    def settle(self, bmc: BmcAddress, session_id: int) -> None:
        """This session's Open Session became a logged-in session in use."""
        with self._lock:
            account = self._accounts.setdefault(bmc, _Account())
            claim = account.newest(session_id)
            if claim is not None:
                account.claims.remove(claim)
            account.held += 1

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
            account.expire(self._clock())
            return account.in_use()


def frees_in(refusal: str) -> float | None:
    """The seconds until a place frees, from a refusal `SessionBudget.claim` wrote; None if it named none."""
    _, found, rest = refusal.partition(FREES_IN)
    if not found:
        return None
    try:
        return max(0.0, float(rest.split(" ", 1)[0]))
    except ValueError:
        return None


SESSIONS = SessionBudget()
