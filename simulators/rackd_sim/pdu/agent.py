"""One simulated PDU as an SNMP agent on a loopback UDP port: its own pysnmp engine, communities and v3 users."""

from __future__ import annotations

import functools
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from pysnmp.carrier.asyncio.dgram import udp
from pysnmp.entity import config, engine
from pysnmp.entity.rfc3413 import cmdrsp, context
from pysnmp.proto import rfc1902

from rackd_sim.pdu import snmprec
from rackd_sim.pdu.mib import MibStore, PduMibController
from rackd_sim.pdu.model import Outlet, PowerOn, SimulatedPdu, Timing
from rackd_sim.pdu.vendors import VendorSim, oid
from rackd_sim.pdu.vendors.registry import VENDORS, vendor_for_sys_object_id

log = structlog.get_logger(__name__)

LOOPBACK = "127.0.0.1"
_SYS_DESCR, _SYS_OBJECT_ID, _SYS_UPTIME, _SYS_NAME = (
    (1, 3, 6, 1, 2, 1, 1, 1, 0),
    (1, 3, 6, 1, 2, 1, 1, 2, 0),
    (1, 3, 6, 1, 2, 1, 1, 3, 0),
    (1, 3, 6, 1, 2, 1, 1, 5, 0),
)
_EVERYTHING = (1, 3, 6)
_NOTHING = (0, 0)  # a dummy write view: pysnmp treats an *empty* write view as "allow all" (lextudio/pysnmp#48)
_AUTH = {"SHA": config.USM_AUTH_HMAC96_SHA, "SHA-256": config.USM_AUTH_HMAC192_SHA256}
_PRIV = {"AES": config.USM_PRIV_CFB128_AES, "AES-256": config.USM_PRIV_CFB256_AES}


@dataclass(frozen=True, slots=True)
class V3User:
    """An SNMPv3 authPriv user of the simulated PDU (read-write)."""

    name: str
    auth_key: str
    priv_key: str
    auth_protocol: str = "SHA"
    priv_protocol: str = "AES"


@dataclass
class PduSpec:
    """What to simulate and where."""

    name: str = "pdu1"
    vendor: str | None = None  # required unless a recording names it through its sysObjectID
    recording: Path | None = None
    outlets: int | None = None  # default: as many as the recording names, else 8
    host: str = LOOPBACK
    port: int = 0  # 0: a free port
    read_community: str = "public"
    write_community: str = "private"
    v3_users: tuple[V3User, ...] = ()
    timing: Timing = field(default_factory=Timing)
    load_w: float = 120.0  # initial load per outlet
    voltage: float | None = None  # supply voltage; default: as recorded, else 230 V
    power_on: PowerOn = PowerOn.LAST


def _recorded_names(store: MibStore, vendor: VendorSim) -> dict[int, str]:
    names: dict[int, str] = {}
    for column in vendor.recorded_name_columns:
        prefix = oid(column)
        for instance in store.under(prefix):
            value = store.values[instance]
            number = instance[-1]
            if number not in names:
                names[number] = bytes(value.asOctets()).decode("utf-8", "replace") if hasattr(value, "asOctets") else ""
    return names


class _FaultyUdpTransport(udp.UdpAsyncioTransport):  # type: ignore[misc]  # pysnmp is untyped
    """The agent's UDP endpoint; drops or delays requests when the PDU's faults say so."""

    def __init__(self, pdu: SimulatedPdu, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._pdu = pdu

    def datagram_received(self, datagram: bytes, transport_address: Any) -> None:
        if not self._pdu.answers():
            return
        deliver = functools.partial(udp.UdpAsyncioTransport.datagram_received, self, datagram, transport_address)
        if self._pdu.faults.reply_delay > 0:
            self.loop.call_later(self._pdu.faults.reply_delay, deliver)
        else:
            deliver()


class PduAgent:
    """A simulated PDU answering SNMP on its own port."""

    def __init__(self, spec: PduSpec) -> None:
        """Build the PDU and its MIB; nothing listens until `start`."""
        self.spec = spec
        store = MibStore(snmprec.load(spec.recording) if spec.recording else {})
        vendor_cls = self._vendor_class(spec, store)
        self.vendor = vendor_cls()
        names = _recorded_names(store, self.vendor) if spec.recording else {}
        count = spec.outlets or (max(names) if names else 8)
        outlets = [
            Outlet(number, names.get(number) or f"Outlet {number}", power_on=spec.power_on, load_w=spec.load_w)
            for number in range(1, count + 1)
        ]
        voltage = spec.voltage or self.vendor.recorded_voltage(store) or 230.0
        self.pdu = SimulatedPdu(
            spec.name,
            outlets,
            spec.timing,
            voltage=voltage,
            reboot_when_off_turns_on=self.vendor.reboot_when_off_turns_on,
        )
        self.vendor.drop_recorded_outlets(store)
        if not spec.recording:
            store.put(_SYS_DESCR, rfc1902.OctetString(self.vendor.sys_descr.encode()))
            store.put(_SYS_OBJECT_ID, rfc1902.ObjectIdentifier(self.vendor.sys_object_id))
            store.put(_SYS_UPTIME, rfc1902.TimeTicks(0))
            store.put(_SYS_NAME, rfc1902.OctetString(spec.name.encode()))
        self.vendor.install(self.pdu, store)
        self.controller = PduMibController(self.pdu, self.vendor, store)
        self._engine: Any = None
        self.port = spec.port

    @staticmethod
    def _vendor_class(spec: PduSpec, store: MibStore) -> type[VendorSim]:
        if spec.vendor is not None:
            try:
                return VENDORS[spec.vendor]
            except KeyError:
                raise ValueError(f"unknown vendor {spec.vendor!r} (known: {', '.join(VENDORS)})") from None
        recorded = store.values.get(_SYS_OBJECT_ID)
        vendor = vendor_for_sys_object_id(str(recorded)) if recorded is not None else None
        if vendor is None:
            raise ValueError(f"{spec.recording}: sysObjectID {recorded} is no simulated vendor; pass a vendor")
        return vendor

    @property
    def endpoint(self) -> str:
        """host:port the agent answers on."""
        return f"{self.spec.host}:{self.port}"

    def start(self) -> None:
        """Bind the port and serve inside the running event loop (an engine of its own)."""
        snmp_engine, self.port = open_engine(self.spec.host, self.spec.port, _FaultyUdpTransport(self.pdu))
        snmp_context = context.SnmpContext(snmp_engine)
        snmp_context.unregister_context_name(b"")
        self.register(snmp_engine, snmp_context, b"")
        start_responders(snmp_engine, snmp_context)
        self._engine = snmp_engine
        log.info("sim_pdu_listening", pdu=self.spec.name, endpoint=self.endpoint, vendor=self.vendor.name)

    def register(self, snmp_engine: Any, snmp_context: Any, context_name: bytes) -> None:
        """Communities, v3 users and views of this PDU, bound to `context_name` of an engine."""
        read_area, write_area = f"{self.spec.name}-read", f"{self.spec.name}-write"
        config.add_v1_system(snmp_engine, read_area, self.spec.read_community, contextName=context_name)
        config.add_v1_system(snmp_engine, write_area, self.spec.write_community, contextName=context_name)
        for model in (1, 2):  # SNMPv1 and v2c security models
            config.add_vacm_user(
                snmp_engine, model, read_area, "noAuthNoPriv", _EVERYTHING, _NOTHING, contextName=context_name
            )
            config.add_vacm_user(
                snmp_engine, model, write_area, "noAuthNoPriv", _EVERYTHING, _EVERYTHING, contextName=context_name
            )
        for user in self.spec.v3_users:
            config.add_v3_user(
                snmp_engine,
                user.name,
                _AUTH[user.auth_protocol],
                user.auth_key,
                _PRIV[user.priv_protocol],
                user.priv_key,
            )
            config.add_vacm_user(
                snmp_engine, 3, user.name, "authPriv", _EVERYTHING, _EVERYTHING, contextName=context_name
            )
        snmp_context.register_context_name(context_name, self.controller)

    def stop(self) -> None:
        """Stop serving and cancel the PDU's timers; safe to call more than once."""
        snmp_engine, self._engine = self._engine, None
        self.pdu.close()
        if snmp_engine is not None:
            close_engine(snmp_engine)


def open_engine(host: str, port: int, transport: Any) -> tuple[Any, int]:
    """A pysnmp engine serving UDP on host:port (0 = a free port) through `transport`; returns it and the port."""
    snmp_engine = engine.SnmpEngine()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)  # noqa: FBT003 - socket API takes a positional flag
    config.add_transport(snmp_engine, udp.DOMAIN_NAME, transport.open_server_mode(sock=sock))
    return snmp_engine, int(sock.getsockname()[1])


def start_responders(snmp_engine: Any, snmp_context: Any) -> None:
    """Answer GET, GETNEXT, GETBULK and SET; keep the dispatcher running inside the event loop."""
    for responder in (
        cmdrsp.GetCommandResponder,
        cmdrsp.NextCommandResponder,
        cmdrsp.BulkCommandResponder,
        cmdrsp.SetCommandResponder,
    ):
        responder(snmp_engine, snmp_context)
    snmp_engine.transport_dispatcher.job_started(1)


def close_engine(snmp_engine: Any) -> None:
    """Stop an engine's dispatcher and close its socket."""
    snmp_engine.transport_dispatcher.job_finished(1)
    snmp_engine.close_dispatcher()
