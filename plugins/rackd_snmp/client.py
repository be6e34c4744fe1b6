"""SNMP requests to one PDU over the driver's shared engine: GET, bounded column walks, SET; errors translated."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from pysnmp.carrier.asyncio.dgram import udp
from pysnmp.error import PySnmpError
from pysnmp.hlapi.v3arch.asyncio import (
    USM_AUTH_HMAC96_SHA,
    USM_AUTH_HMAC192_SHA256,
    USM_PRIV_CFB128_AES,
    USM_PRIV_CFB256_AES,
    CommunityData,
    ContextData,
    Integer32,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    UdpTransportTarget,
    UsmUserData,
    bulk_cmd,
    get_cmd,
    next_cmd,
    set_cmd,
)
from pysnmp.proto import errind
from pysnmp.proto.rfc1905 import EndOfMibView, NoSuchInstance, NoSuchObject

from rackd.errors import (
    AuthError,
    DeviceProtocolError,
    DeviceRefusedError,
    DeviceTimeoutError,
    DeviceUnreachableError,
    UnsupportedError,
)
from rackd_snmp.options import CommunityAuth, SnmpOptions, UsmAuth

log = structlog.get_logger(__name__)

Index = tuple[int, ...]
Value = int | str | None  # None: the agent has no such instance
MAX_VARBINDS = 64  # snmpsim and the pysnmp agent truncate GETBULK replies here; many PDUs do worse
MAX_PAGES = 256  # a walk that needs more requests than this is an agent that never ends its table
RECEIVE_BUFFER = 4 << 20  # replies of many PDUs land on one socket; the default ~208 KiB overflows

_AUTH_FAILURES = (
    errind.WrongDigest,
    errind.UnknownUserName,
    errind.UnknownSecurityName,
    errind.AuthenticationFailure,
    errind.AuthenticationError,
    errind.DecryptionError,
    errind.UnsupportedSecurityLevel,
    errind.UnknownCommunityName,
)
_AUTH_PROTOCOLS = {"SHA": USM_AUTH_HMAC96_SHA, "SHA-256": USM_AUTH_HMAC192_SHA256}
_PRIV_PROTOCOLS = {"AES": USM_PRIV_CFB128_AES, "AES-256": USM_PRIV_CFB256_AES}
# SET error statuses: permission problems versus a refusal of this value in this state.
_SET_PERMISSION = {"noAccess", "authorizationError", "readOnly"}
_SET_UNSUPPORTED = {"notWritable", "noCreation", "noSuchName"}


class EnginePool:
    """The process's one SNMP engine (owned by the driver) and the cap on requests in flight through its socket."""

    def __init__(self, max_in_flight: int = 24) -> None:
        """Create lazily: an engine costs ~0.1 s CPU, so only when a PDU is actually opened."""
        self._engine: SnmpEngine | None = None
        self._max_in_flight = max_in_flight
        self._in_flight: asyncio.Semaphore | None = None
        self._socket_tuned = False

    @property
    def engine(self) -> SnmpEngine:
        """The shared engine."""
        if self._engine is None:
            self._engine = SnmpEngine()
        return self._engine

    @property
    def in_flight(self) -> asyncio.Semaphore:
        """Requests wait here: one UDP socket serves every PDU and its receive buffer overflows otherwise."""
        if self._in_flight is None:
            self._in_flight = asyncio.Semaphore(self._max_in_flight)
        return self._in_flight

    def _socket(self) -> Any:
        """The TransportSocket of the engine's UDP endpoint (it supports get/setsockopt), or None."""
        dispatcher = self._engine.transport_dispatcher if self._engine is not None else None
        transport = dispatcher.get_transport(udp.DOMAIN_NAME) if dispatcher is not None else None
        asyncio_transport = getattr(transport, "transport", None)
        return asyncio_transport.get_extra_info("socket") if asyncio_transport is not None else None

    def tune_socket(self) -> None:
        """Raise the shared socket's receive buffer once it exists (pysnmp opens it on the first request)."""
        if self._socket_tuned:
            return
        sock = self._socket()
        if sock is None:
            return
        self._socket_tuned = True
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        except OSError as exc:  # capped by net.core.rmem_max; the in-flight cap still protects us
            log.warning("snmp_receive_buffer_not_raised", error=str(exc))

    def receive_buffer(self) -> int | None:
        """The shared socket's receive buffer in bytes (None before the first request)."""
        sock = self._socket()
        return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)) if sock is not None else None

    def close(self) -> None:
        """Close the engine's socket and timers; safe to call more than once."""
        self._socket_tuned = False
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.close_dispatcher()


def _decode(value: Any) -> Value:
    if isinstance(value, (NoSuchInstance, NoSuchObject, EndOfMibView)):
        return None
    tag_set = getattr(value, "tagSet", None)
    if tag_set is None:
        return str(value)
    if hasattr(value, "asOctets"):  # OctetString and its subtypes (IpAddress, Opaque)
        return bytes(value.asOctets()).decode("utf-8", errors="replace").rstrip("\x00").strip()
    if hasattr(value, "asTuple"):  # ObjectIdentifier
        return ".".join(str(part) for part in value.asTuple())
    return int(value)


def _parse_oid(oid: str) -> tuple[int, ...]:
    return tuple(int(part) for part in oid.strip(".").split("."))


def _suffix(oid: tuple[int, ...], prefix: tuple[int, ...]) -> Index | None:
    if len(oid) > len(prefix) and oid[: len(prefix)] == prefix:
        return oid[len(prefix) :]
    return None


@dataclass(frozen=True, slots=True)
class _Reply:
    status: str
    index: int
    varbinds: Sequence[Any]


class SnmpClient:
    """Requests to one PDU; every failure becomes a rackd error that names the endpoint and the OID."""

    def __init__(self, pool: EnginePool, options: SnmpOptions) -> None:
        """Bind to the shared engine; credentials are revealed here, once, into pysnmp's auth data."""
        self._pool = pool
        self._options = options
        self._endpoint = options.endpoint
        self._target: UdpTransportTarget | None = None
        self._auth = self._auth_data(options)
        context = options.snmp.context if isinstance(options.snmp, UsmAuth) else ""
        self._context = ContextData(contextName=context)

    @staticmethod
    def _auth_data(options: SnmpOptions) -> CommunityData | UsmUserData:
        auth = options.snmp
        if isinstance(auth, CommunityAuth):
            return CommunityData(auth.community.reveal(), mpModel=0 if auth.version == "1" else 1)
        return UsmUserData(
            auth.user,
            authKey=auth.auth_key.reveal(),
            privKey=auth.priv_key.reveal(),
            authProtocol=_AUTH_PROTOCOLS[auth.auth_protocol],
            privProtocol=_PRIV_PROTOCOLS[auth.priv_protocol],
        )

    @property
    def endpoint(self) -> str:
        """host:port of the PDU."""
        return self._endpoint

    async def _transport(self) -> UdpTransportTarget:
        if self._target is None:
            try:
                self._target = await UdpTransportTarget.create(
                    (self._options.host, self._options.port),
                    timeout=self._options.timeout,
                    retries=self._options.retries,
                )
            except PySnmpError as exc:
                raise DeviceUnreachableError(f"{self._endpoint}: cannot resolve the PDU's address: {exc}") from None
        return self._target

    def _check(self, what: str, error_indication: Any) -> None:
        if not error_indication:
            return
        if isinstance(error_indication, errind.RequestTimedOut):
            tries = self._options.retries + 1
            raise DeviceTimeoutError(
                f"{self._endpoint}: no response to {what} within {self._options.timeout:g} s x {tries} "
                "tries (the PDU is down, or the community / v3 privacy key is wrong: both look the same)"
            )
        if isinstance(error_indication, _AUTH_FAILURES):
            raise AuthError(f"{self._endpoint}: {what}: SNMP credentials refused ({error_indication})")
        raise DeviceProtocolError(f"{self._endpoint}: {what}: {error_indication}")

    async def _request(self, what: str, send: Any, *args: Any) -> _Reply:
        target = await self._transport()
        async with self._pool.in_flight:
            try:
                error_indication, status, index, varbinds = await send(
                    self._pool.engine, self._auth, target, self._context, *args, lookupMib=False
                )
            except PySnmpError as exc:
                raise DeviceProtocolError(f"{self._endpoint}: {what}: {exc}") from None
            except OSError as exc:
                raise DeviceUnreachableError(f"{self._endpoint}: {what}: {exc.strerror or exc}") from None
        self._pool.tune_socket()
        self._check(what, error_indication)
        status_name = status.prettyPrint() if status else ""
        return _Reply(status_name, int(index or 0), varbinds)

    async def get(self, oids: Sequence[str]) -> dict[str, Value]:
        """GET several instances at once; absent ones map to None."""
        if not oids:
            return {}
        what = f"GET {oids[0]}" + (f" (+{len(oids) - 1})" if len(oids) > 1 else "")
        reply = await self._request(what, get_cmd, *(ObjectType(ObjectIdentity(oid)) for oid in oids))
        if reply.status:
            if reply.status == "noSuchName":  # SNMPv1 says this where v2c returns noSuchInstance
                return dict.fromkeys(oids)
            raise DeviceProtocolError(f"{self._endpoint}: {what}: {reply.status}")
        return {oid: _decode(value) for oid, (_, value) in zip(oids, reply.varbinds, strict=False)}

    async def first_under(self, subtree: str) -> bool:
        """True when the agent has anything under `subtree` (one GETNEXT, via a 1-repetition GETBULK)."""
        columns = await self.walk([subtree], max_repetitions=1, max_pages=1)
        return bool(columns[subtree])

    async def walk(
        self, columns: Sequence[str], max_repetitions: int, max_pages: int = MAX_PAGES
    ) -> dict[str, dict[Index, Value]]:
        """GETBULK the given columns in step, each bounded to its own subtree: {column: {index: value}}."""
        prefixes = {column: _parse_oid(column) for column in columns}
        results: dict[str, dict[Index, Value]] = {column: {} for column in columns}
        cursors = {column: column for column in columns}
        for _ in range(max_pages):
            active = list(cursors)
            if not active:
                break
            repetitions = max(1, min(max_repetitions, MAX_VARBINDS // len(active)))
            what = f"GETBULK {active[0]}" + (f" (+{len(active) - 1} columns)" if len(active) > 1 else "")
            if self._options.snmp.version == "1":
                reply = await self._getnext_v1(what, [cursors[column] for column in active])
            else:
                reply = await self._request(
                    what, bulk_cmd, 0, repetitions, *(ObjectType(ObjectIdentity(cursors[c])) for c in active)
                )
            if reply.status:
                if reply.status == "noSuchName":  # v1 end of MIB
                    break
                raise DeviceProtocolError(f"{self._endpoint}: {what}: {reply.status}")
            self._absorb(active, prefixes, results, cursors, reply.varbinds)
        return results

    async def _getnext_v1(self, what: str, oids: Sequence[str]) -> _Reply:
        return await self._request(what, next_cmd, *(ObjectType(ObjectIdentity(oid)) for oid in oids))

    @staticmethod
    def _absorb(
        active: Sequence[str],
        prefixes: Mapping[str, tuple[int, ...]],
        results: dict[str, dict[Index, Value]],
        cursors: dict[str, str],
        varbinds: Sequence[Any],
    ) -> None:
        """Sort a row-major GETBULK reply into columns; a column is done once it leaves its subtree."""
        progressed: set[str] = set()
        for position, (name, value) in enumerate(varbinds):
            column = active[position % len(active)]
            if column not in cursors:
                continue
            oid = tuple(name.asTuple())
            index = _suffix(oid, prefixes[column])
            if index is None or isinstance(value, EndOfMibView):
                del cursors[column]
                continue
            if index in results[column]:  # an agent that repeats itself: stop rather than loop
                del cursors[column]
                continue
            results[column][index] = _decode(value)
            cursors[column] = ".".join(str(part) for part in oid)
            progressed.add(column)
        for column in list(cursors):
            if column not in progressed:
                del cursors[column]

    async def set_integer(self, oid: str, value: int) -> None:
        """SET one Integer; a refusal names the OID and what the agent said."""
        what = f"SET {oid} = {value}"
        reply = await self._request(what, set_cmd, ObjectType(ObjectIdentity(oid), Integer32(value)))
        if not reply.status:
            log.info("snmp_set_accepted", endpoint=self._endpoint, oid=oid, value=value)
            return
        if reply.status in _SET_PERMISSION:
            raise AuthError(f"{self._endpoint}: {what}: {reply.status} (the community or user may only read)")
        if reply.status in _SET_UNSUPPORTED:
            raise UnsupportedError(f"{self._endpoint}: {what}: {reply.status} (this model cannot switch it)")
        raise DeviceRefusedError(f"{self._endpoint}: {what}: {reply.status}")
