"""One UDP socket for every PDU's SNMP v1/v2c reads: request-id matching, timeout and resends, stray replies dropped."""

from __future__ import annotations

import asyncio
import secrets
import socket
from dataclasses import dataclass

import structlog

from rackd_snmp.ber import Oid
from rackd_snmp.v2c import Message, MessageError, PduType, Version, decode_message, encode_request

log = structlog.get_logger(__name__)

_ID_SPACE = 2**31 - 1  # request-ids 1 .. 2^31-1: positive Integer32, as agents expect
_ID_WINDOW = 1 << 20  # ids this recent count as ours (a late reply), older ones as an agent's invention
_MAX_DATAGRAM = 65535
_READS_PER_WAKEUP = 64  # drain bursts in one callback, yet let a flood yield to the rest of the loop

Address = tuple[str, int]


class NoReply(Exception):  # noqa: N818 - an outcome, not a fault of ours
    """Every try went unanswered."""


class BadReply(Exception):  # noqa: N818 - the agent's fault, named for what arrived
    """A reply arrived that cannot be the answer: malformed, or not matching the request; says what was wrong."""


class SendFailed(Exception):  # noqa: N818 - wraps the OSError of the send
    """The kernel refused to send the request (no route, network down); carries its message."""


class TransportClosed(Exception):  # noqa: N818 - a state, reported to requests still waiting
    """The driver closed the socket while the request waited."""


@dataclass(slots=True)
class _Pending:
    address: Address
    version: Version
    community: bytes
    payload: bytes
    timeout: float
    tries_left: int
    future: asyncio.Future[Message]
    timer: asyncio.TimerHandle | None = None


@dataclass(slots=True)
class Counters:
    """Datagrams that were not an answer to a waiting request (diagnostics and tests)."""

    late: int = 0  # a reply to a request that was already answered, timed out or abandoned
    foreign: int = 0  # a reply to a request of ours, but from another address than it went to
    malformed: int = 0
    unsolicited: int = 0  # unclaimable, from an address nothing waits on


class V2cSocket:
    """The driver's socket for community-based requests; replies are matched by request-id and source address."""

    def __init__(self, receive_buffer: int) -> None:
        """Nothing is opened until the first request (inside the running event loop)."""
        self._receive_buffer = receive_buffer
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: dict[int, _Pending] = {}
        self._last_id = secrets.randbelow(_ID_SPACE)  # 0-based; a random start: ids are not guessable off-path
        self._issued = 0
        self.counters = Counters()

    def _open(self) -> socket.socket:
        loop = asyncio.get_running_loop()
        if self._sock is not None and self._loop is loop:
            return self._sock
        self.close()  # a socket of another (finished) loop cannot serve this one
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)  # noqa: FBT003 - the socket API's own signature
            sock.bind(("0.0.0.0", 0))  # noqa: S104 - replies come from PDUs on any network
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._receive_buffer)
            except OSError as exc:  # capped by net.core.rmem_max; the in-flight cap still protects us
                log.warning("snmp_receive_buffer_not_raised", error=str(exc))
            loop.add_reader(sock.fileno(), self._readable)
        except BaseException:
            sock.close()
            raise
        self._sock, self._loop = sock, loop
        return sock

    @property
    def waiting(self) -> int:
        """Requests waiting for their reply."""
        return len(self._pending)

    def receive_buffer(self) -> int | None:
        """The socket's receive buffer in bytes (None before the first request)."""
        return int(self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)) if self._sock is not None else None

    def _next_id(self) -> int:
        self._last_id = (self._last_id + 1) % _ID_SPACE
        self._issued += 1
        return self._last_id + 1

    def _was_issued(self, request_id: int) -> bool:
        """Whether an id is one of the recent ones we sent (so a reply with it is late, not invented)."""
        if not 1 <= request_id <= _ID_SPACE:
            return False
        return (self._last_id - (request_id - 1)) % _ID_SPACE < min(self._issued, _ID_WINDOW)

    async def request(
        self,
        address: Address,
        version: Version,
        community: bytes,
        pdu_type: PduType,
        oids: list[Oid],
        wait: float,
        retries: int,
        non_repeaters: int = 0,
        max_repetitions: int = 0,
    ) -> Message:
        """Send, resend after each `wait` seconds up to `retries` times, and return the matching Response.

        Raises NoReply, BadReply (an unacceptable reply from the address asked), SendFailed or TransportClosed.
        """
        sock = self._open()
        assert self._loop is not None
        request_id = self._next_id()
        payload = encode_request(version, community, pdu_type, request_id, oids, non_repeaters, max_repetitions)
        pending = _Pending(address, version, community, payload, wait, retries, self._loop.create_future())
        self._pending[request_id] = pending
        try:
            self._send(sock, pending)
            pending.timer = self._loop.call_later(wait, self._expire, request_id)
            return await pending.future
        finally:
            self._pending.pop(request_id, None)
            if pending.timer is not None:
                pending.timer.cancel()

    def _send(self, sock: socket.socket, pending: _Pending) -> None:
        try:
            sock.sendto(pending.payload, pending.address)
        except (BlockingIOError, InterruptedError):
            pass  # the send buffer is full: as good as a datagram lost on the way; the next try resends
        except OSError as exc:
            raise SendFailed(exc.strerror or str(exc)) from None

    def _expire(self, request_id: int) -> None:
        pending = self._pending.get(request_id)
        if pending is None or pending.future.done():
            return
        if pending.tries_left <= 0:
            pending.future.set_exception(NoReply())
            return
        pending.tries_left -= 1
        assert self._sock is not None
        assert self._loop is not None
        try:
            self._send(self._sock, pending)
        except SendFailed as exc:
            pending.future.set_exception(exc)
            return
        pending.timer = self._loop.call_later(pending.timeout, self._expire, request_id)

    def _readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        for _ in range(_READS_PER_WAKEUP):
            try:
                data, address = sock.recvfrom(_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # an ICMP error queued on the socket; the request it concerns times out
                log.debug("snmp_socket_error", error=str(exc))
                continue
            self._dispatch(data, (address[0], address[1]))

    def _dispatch(self, data: bytes, address: Address) -> None:
        try:
            message = decode_message(data)
        except MessageError as exc:
            self._malformed(address, exc.request_id, str(exc))
            return
        pending = self._pending.get(message.request_id)
        if pending is None or pending.future.done():
            if self._was_issued(message.request_id):
                self.counters.late += 1  # answered already, timed out or abandoned: nothing waits for it
            else:
                self._fail_from(address, f"the reply carries request-id {message.request_id}, which is none of ours")
            return
        if pending.address != address:
            self.counters.foreign += 1
            log.debug("snmp_reply_from_other_address", expected=f"{pending.address[0]}:{pending.address[1]}",
                      came_from=f"{address[0]}:{address[1]}")
            return
        problem = _mismatch(pending, message)
        if problem:
            pending.future.set_exception(BadReply(problem))
        else:
            pending.future.set_result(message)

    def _malformed(self, address: Address, request_id: int | None, detail: str) -> None:
        self.counters.malformed += 1
        if request_id is not None:
            pending = self._pending.get(request_id)
            if pending is not None and pending.address == address and not pending.future.done():
                pending.future.set_exception(BadReply(f"malformed reply: {detail}"))
                return
            if self._was_issued(request_id):
                self.counters.late += 1
                return
        self._fail_from(address, f"malformed reply: {detail}")

    def _fail_from(self, address: Address, problem: str) -> None:
        """A reply from `address` that no request can claim fails whatever waits on that address."""
        waiting = [p for p in self._pending.values() if p.address == address and not p.future.done()]
        if not waiting:
            self.counters.unsolicited += 1
            return
        for pending in waiting:
            pending.future.set_exception(BadReply(problem))

    def close(self) -> None:
        """Close the socket; requests still waiting fail with TransportClosed. Safe to call more than once."""
        sock, loop, self._sock, self._loop = self._sock, self._loop, None, None
        if loop is not None and not loop.is_closed():
            for pending in self._pending.values():
                if not pending.future.done():
                    pending.future.set_exception(TransportClosed())
            if sock is not None:
                loop.remove_reader(sock.fileno())
        else:  # the loop is gone, and with it every coroutine that waited
            self._pending.clear()
        if sock is not None:
            sock.close()


def _mismatch(pending: _Pending, message: Message) -> str:
    """What makes a reply with the right request-id and address unacceptable ("" when nothing)."""
    if message.pdu_type is not PduType.RESPONSE:
        return f"the reply is a {message.pdu_type.name} PDU, not a Response"
    if message.version is not pending.version:
        return f"the reply is SNMP {_VERSION_NAMES[message.version]}, the request {_VERSION_NAMES[pending.version]}"
    if message.community != pending.community:
        return "the reply carries another community than the request"  # never the community itself: a secret
    return ""


_VERSION_NAMES = {Version.V1: "v1", Version.V2C: "v2c"}
