"""SNMP requests to one PDU: GET and column walks (lean v1/v2c codec or pysnmp), SET (pysnmp); errors translated."""

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
from rackd_snmp.ber import Oid, parse_oid
from rackd_snmp.options import CommunityAuth, SnmpOptions, UsmAuth
from rackd_snmp.transport import Address, BadReply, NoReply, SendFailed, TransportClosed, V2cSocket
from rackd_snmp.v2c import PduType, Tag, VarBind, Version, error_status_name

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
    """The process's SNMP engine and lean v1/v2c socket (owned by the driver), and the cap on requests in flight."""

    def __init__(self, max_in_flight: int = 24) -> None:
        """Create lazily: an engine costs ~0.1 s CPU, so only when a PDU actually needs pysnmp (v3, SET)."""
        self._engine: SnmpEngine | None = None
        self._v2c: V2cSocket | None = None
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
    def v2c(self) -> V2cSocket:
        """The socket of the lean v1/v2c reads, shared by every PDU like pysnmp's (opened on its first request)."""
        if self._v2c is None:
            self._v2c = V2cSocket(RECEIVE_BUFFER)
        return self._v2c

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
        """The smaller receive buffer of the two shared sockets, in bytes (None before the first request)."""
        sock = self._socket()
        sizes = [int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))] if sock is not None else []
        lean = self._v2c.receive_buffer() if self._v2c is not None else None
        sizes += [lean] if lean is not None else []
        return min(sizes) if sizes else None

    def close(self) -> None:
        """Close the engine's socket and timers and the lean socket; safe to call more than once."""
        self._socket_tuned = False
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.close_dispatcher()
        if self._v2c is not None:
            self._v2c.close()


def _text(octets: bytes) -> str:
    return octets.decode("utf-8", errors="replace").rstrip("\x00").strip()


def _dotted(oid: Sequence[int]) -> str:
    return ".".join(str(part) for part in oid)


def _decode(value: Any) -> Value:
    """A pysnmp value as the rest of the driver sees it."""
    if isinstance(value, (NoSuchInstance, NoSuchObject, EndOfMibView)):
        return None
    tag_set = getattr(value, "tagSet", None)
    if tag_set is None:
        return str(value)
    if hasattr(value, "asOctets"):  # OctetString and its subtypes (IpAddress, Opaque; Null is one too)
        return _text(bytes(value.asOctets()))
    if hasattr(value, "asTuple"):  # ObjectIdentifier
        return _dotted(value.asTuple())
    return int(value)


def lean_value(varbind: VarBind) -> Value:
    """A lean-codec value exactly as `_decode` renders pysnmp's value of the same bytes."""
    value = varbind.value
    if isinstance(value, int):  # INTEGER, Counter32, Gauge32/Unsigned32, TimeTicks, Counter64
        return value
    if isinstance(value, bytes):  # OCTET STRING, IpAddress, Opaque
        return _text(value)
    if isinstance(value, tuple):
        return _dotted(value)
    return "" if varbind.tag is Tag.NULL else None  # pysnmp's Null is an empty OctetString


def _suffix(oid: tuple[int, ...], prefix: tuple[int, ...]) -> Index | None:
    if len(oid) > len(prefix) and oid[: len(prefix)] == prefix:
        return oid[len(prefix) :]
    return None


def _octets(community: str) -> bytes:
    """The community's bytes as pysnmp sends them (its OctetString is Latin-1), UTF-8 beyond."""
    try:
        return community.encode("latin-1")
    except UnicodeEncodeError:
        return community.encode("utf-8")


@dataclass(frozen=True, slots=True)
class _Reply:
    status: str
    index: int
    varbinds: Sequence[Any]  # pysnmp's (name, value) pairs


@dataclass(frozen=True, slots=True)
class _Read:
    """A GET/GETNEXT/GETBULK reply from either path: status and (oid, value, end of MIB view) per varbind."""

    status: str
    varbinds: list[tuple[Oid, Value, bool]]


_PYSNMP_READS = {PduType.GET: get_cmd, PduType.GET_NEXT: next_cmd, PduType.GET_BULK: bulk_cmd}
_EMPTY_RESPONSE = "Empty SNMP response message"  # pysnmp's words (errind.emptyResponse), kept for both paths


class SnmpClient:
    """Requests to one PDU; every failure becomes a rackd error that names the endpoint and the OID."""

    def __init__(self, pool: EnginePool, options: SnmpOptions) -> None:
        """Bind to the shared engine and socket; credentials are revealed here, once, into the auth data."""
        self._pool = pool
        self._options = options
        self._endpoint = options.endpoint
        self._target: UdpTransportTarget | None = None
        self._address: Address | None = None
        auth = options.snmp
        self._lean: Version | None = None  # the version the lean codec speaks for this PDU; None: pysnmp reads
        self._community = b""
        self._auth: CommunityData | UsmUserData
        if isinstance(auth, CommunityAuth):
            community = auth.community.reveal()
            self._auth = CommunityData(community, mpModel=0 if auth.version == "1" else 1)
            if options.lean_codec:
                self._lean = Version.V1 if auth.version == "1" else Version.V2C
                self._community = _octets(community)
        else:
            self._auth = UsmUserData(
                auth.user,
                authKey=auth.auth_key.reveal(),
                privKey=auth.priv_key.reveal(),
                authProtocol=_AUTH_PROTOCOLS[auth.auth_protocol],
                privProtocol=_PRIV_PROTOCOLS[auth.priv_protocol],
            )
        context = auth.context if isinstance(auth, UsmAuth) else ""
        self._context = ContextData(contextName=context)

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

    @property
    def lean(self) -> bool:
        """Whether reads go through the lean v1/v2c codec (else pysnmp)."""
        return self._lean is not None

    async def _lean_address(self) -> Address:
        """The PDU's IPv4 address, resolved once (pysnmp's UDP target is IPv4 too)."""
        if self._address is None:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(
                    self._options.host, self._options.port, family=socket.AF_INET, type=socket.SOCK_DGRAM,
                    proto=socket.IPPROTO_UDP,
                )  # fmt: skip
            except (OSError, UnicodeError) as exc:  # socket.gaierror is an OSError
                raise DeviceUnreachableError(f"{self._endpoint}: cannot resolve the PDU's address: {exc}") from None
            host, port = infos[0][4][:2]
            self._address = (str(host), int(port))
        return self._address

    def _timed_out(self, what: str) -> DeviceTimeoutError:
        tries = self._options.retries + 1
        return DeviceTimeoutError(
            f"{self._endpoint}: no response to {what} within {self._options.timeout:g} s x {tries} "
            "tries (the PDU is down, or the community / v3 privacy key is wrong: both look the same)"
        )

    def _check(self, what: str, error_indication: Any) -> None:
        if not error_indication:
            return
        if isinstance(error_indication, errind.RequestTimedOut):
            raise self._timed_out(what)
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

    async def _read(self, what: str, pdu_type: PduType, oids: list[Oid], max_repetitions: int = 0) -> _Read:
        """One GET/GETNEXT/GETBULK through the lean codec or pysnmp; both give the same _Read."""
        if self._lean is not None:
            return await self._lean_read(what, pdu_type, oids, max_repetitions)
        bulk = (0, max_repetitions) if pdu_type is PduType.GET_BULK else ()
        reply = await self._request(
            what, _PYSNMP_READS[pdu_type], *bulk, *(ObjectType(ObjectIdentity(_dotted(oid))) for oid in oids)
        )
        return _Read(
            reply.status,
            [(tuple(name.asTuple()), _decode(v), isinstance(v, EndOfMibView)) for name, v in reply.varbinds],
        )

    async def _lean_read(self, what: str, pdu_type: PduType, oids: list[Oid], max_repetitions: int) -> _Read:
        assert self._lean is not None
        address = await self._lean_address()
        async with self._pool.in_flight:
            try:
                message = await self._pool.v2c.request(
                    address, self._lean, self._community, pdu_type, oids, self._options.timeout,
                    self._options.retries, 0, max_repetitions,
                )  # fmt: skip
            except NoReply:
                raise self._timed_out(what) from None
            except BadReply as exc:
                raise DeviceProtocolError(f"{self._endpoint}: {what}: {exc}") from None
            except SendFailed as exc:
                raise DeviceUnreachableError(f"{self._endpoint}: {what}: {exc}") from None
            except TransportClosed:
                raise DeviceUnreachableError(f"{self._endpoint}: {what}: the driver closed its SNMP socket") from None
        status = error_status_name(message.error_status)
        if not status and not message.varbinds and pdu_type is not PduType.GET:
            raise DeviceProtocolError(f"{self._endpoint}: {what}: {_EMPTY_RESPONSE}")  # as pysnmp reports it
        return _Read(status, [(vb.oid, lean_value(vb), vb.tag is Tag.END_OF_MIB_VIEW) for vb in message.varbinds])

    async def get(self, oids: Sequence[str]) -> dict[str, Value]:
        """GET several instances at once; absent ones map to None."""
        if not oids:
            return {}
        what = f"GET {oids[0]}" + (f" (+{len(oids) - 1})" if len(oids) > 1 else "")
        reply = await self._read(what, PduType.GET, [parse_oid(oid) for oid in oids])
        if reply.status:
            if reply.status == "noSuchName":  # SNMPv1 says this where v2c returns noSuchInstance
                return dict.fromkeys(oids)
            raise DeviceProtocolError(f"{self._endpoint}: {what}: {reply.status}")
        if len(reply.varbinds) != len(oids):
            raise DeviceProtocolError(
                f"{self._endpoint}: {what}: the reply has {len(reply.varbinds)} varbinds for {len(oids)} OIDs asked"
            )
        return {oid: value for oid, (_, value, _) in zip(oids, reply.varbinds, strict=True)}

    async def first_under(self, subtree: str) -> bool:
        """True when the agent has anything under `subtree` (one GETNEXT, via a 1-repetition GETBULK)."""
        columns = await self.walk([subtree], max_repetitions=1, max_pages=1)
        return bool(columns[subtree])

    async def walk(
        self, columns: Sequence[str], max_repetitions: int, max_pages: int = MAX_PAGES
    ) -> dict[str, dict[Index, Value]]:
        """GETBULK the given columns in step, each bounded to its own subtree: {column: {index: value}}."""
        prefixes = {column: parse_oid(column) for column in columns}
        results: dict[str, dict[Index, Value]] = {column: {} for column in columns}
        cursors = dict(prefixes)
        for _ in range(max_pages):
            active = list(cursors)
            if not active:
                break
            repetitions = max(1, min(max_repetitions, MAX_VARBINDS // len(active)))
            what = f"GETBULK {active[0]}" + (f" (+{len(active) - 1} columns)" if len(active) > 1 else "")
            oids = [cursors[column] for column in active]
            if self._options.snmp.version == "1":  # no GETBULK in v1
                reply = await self._read(what, PduType.GET_NEXT, oids)
            else:
                reply = await self._read(what, PduType.GET_BULK, oids, repetitions)
            if reply.status:
                if reply.status == "noSuchName":  # v1 end of MIB
                    break
                raise DeviceProtocolError(f"{self._endpoint}: {what}: {reply.status}")
            self._absorb(active, prefixes, results, cursors, reply.varbinds)
        return results

    @staticmethod
    def _absorb(
        active: Sequence[str],
        prefixes: Mapping[str, Oid],
        results: dict[str, dict[Index, Value]],
        cursors: dict[str, Oid],
        varbinds: Sequence[tuple[Oid, Value, bool]],
    ) -> None:
        """Sort a row-major GETBULK reply into columns; a column is done once it leaves its subtree."""
        progressed: set[str] = set()
        for position, (oid, value, end_of_mib) in enumerate(varbinds):
            column = active[position % len(active)]
            if column not in cursors:
                continue
            index = _suffix(oid, prefixes[column])
            if index is None or end_of_mib:
                del cursors[column]
                continue
            if index in results[column]:  # an agent that repeats itself: stop rather than loop
                del cursors[column]
                continue
            results[column][index] = value
            cursors[column] = oid
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
