"""The simulated BMC: pyghmi's Bmc server class plus SDR, sensors, SEL, FRU, DCMI, sessions and faults."""

from __future__ import annotations

import queue
import random
import struct
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pyghmi.ipmi.bmc as pyghmi_bmc
import pyghmi.ipmi.console as pyghmi_console
import pyghmi.ipmi.private.session as ipmisession
import structlog

from rackd_sim.bmc.fru import FruInfo, fru_image
from rackd_sim.bmc.machine import DIRECTIVES, ServerMachine
from rackd_sim.bmc.sdr import reading_reply, record_for, threshold_reply
from rackd_sim.bmc.session_server import PAYLOAD_OPEN_REQUEST, SimServerSession
from rackd_sim.bmc.sessions import SessionTable

log = structlog.get_logger(__name__)

# Completion codes (IPMI 2.0 table 5-2).
CC_OK = 0x00
CC_INVALID_COMMAND = 0xC1
CC_REQUEST_LENGTH_INVALID = 0xC7
CC_PARAMETER_OUT_OF_RANGE = 0xC9
CC_NOT_PRESENT = 0xCB
CC_INVALID_DATA_FIELD = 0xCC
CC_RESERVATION_CANCELLED = 0xC5

NETFN_CHASSIS = 0x00
NETFN_SENSOR = 0x04
NETFN_APP = 0x06
NETFN_STORAGE = 0x0A
NETFN_DCMI = 0x2C
DCMI_GROUP = 0xDC

MANUFACTURER_ID = 32473  # IANA enterprise number reserved for documentation (RFC 5612): no pyghmi OEM quirks
PRODUCT_ID = 0x0847
FIRMWARE = (2, 0x15)  # shown as 2.15
FRU_MAX_READ = 224


@dataclass
class Faults:
    """What the BMC currently does wrong (changed at run time through the control API)."""

    hang: bool = False  # stop answering anything
    drop_rate: float = 0.0  # share of incoming packets silently dropped
    drop_next: int = 0  # drop exactly this many incoming packets from now (a deterministic burst of loss)
    drop_rakp1: int = 0  # lose this many RAKP 1 messages: each leaves a half-made session holding a slot
    drop_rakp4: int = 0  # lose this many RAKP 4 replies: each leaves a logged-in session the client never saw
    delay: float = 0.0  # seconds before each packet is handled (a slow BMC firmware)
    reject_credentials: bool = False  # every login fails with "unauthorized name"
    empty_replies: bool = False  # every request after login is answered "success" with no data (broken firmware)


class SimulatedBmc(pyghmi_bmc.Bmc):  # type: ignore[misc]  # pyghmi ships no types
    """A GPU server's BMC on one UDP port (run one per process: see the reference page, bug 5)."""

    activated: bool = False  # SOL payload active (also set by the base class)
    sol: Any = None  # pyghmi ServerConsole of the active SOL client

    def __init__(
        self,
        users: dict[str, str],
        *,
        port: int = 0,
        address: str = "127.0.0.1",
        machine: ServerMachine | None = None,
        fru: FruInfo | None = None,
        session_limit: int = 4,
        session_timeout: float = 60.0,
        cipher_suites: Sequence[int] = (3, 17),
        cold_reset_time: float = 1.0,
        bmc_uuid: uuid.UUID | None = None,
    ) -> None:
        """Bind the UDP socket (port 0: a free one) and build the server behind it."""
        super().__init__(dict(users), port=port, bmcuuid=bmc_uuid, address=address)
        self.port = self.serversocket.getsockname()[1]
        self.address = address
        self.machine = machine or ServerMachine()
        self.fru = fru_image(fru or FruInfo())
        self.sessions = SessionTable(session_limit, session_timeout)
        self.cipher_suites = tuple(cipher_suites)
        self.faults = Faults()
        self.cold_reset_time = cold_reset_time
        self.cold_resets = 0
        self._resetting_until = 0.0
        self._reset_requested = False
        self._reset_lock = threading.Lock()
        self._boot_device = "default"
        self._sdr_timestamp = int(time.time())
        self._sdr_reservation = 0
        self.sdr_record_reads = 0  # Get SDR requests served: tells tests whether a client used its SDR cache
        self.sensor_reads = 0  # Get Sensor Reading requests served: tells tests how far a sensor walk has come
        self._started = time.monotonic()
        self.deviceid = 0x20
        self.revision = 0x01  # no device SDRs: clients use the SDR repository
        self.firmwaremajor, self.firmwareminor = FIRMWARE
        self.ipmiversion = 0x02
        self.additionaldevices = 0x8F  # chassis, FRU, SEL, SDR repository, sensor device
        self.mfgid = MANUFACTURER_ID
        self.prodid = PRODUCT_ID
        # SOL: console output goes through a queue to its own sender thread, because ServerConsole.send_data
        # blocks until the client's ACK, which only the serving thread can process (reference bug 4c).
        self._sol_output: queue.Queue[bytes] = queue.Queue()
        self.sol_input = bytearray()  # what SOL clients typed (tests read it through the control channel)
        self.machine.console_listeners.append(self._sol_output.put)
        threading.Thread(target=self._sol_sender, name="bmc-sol-sender", daemon=True).start()
        self._handlers: dict[tuple[int, int], Callable[[dict[str, Any], Any], None]] = {
            (NETFN_CHASSIS, 0x04): lambda _r, s: s.send_ipmi_response(),  # chassis identify
            (NETFN_SENSOR, 0x2D): self._get_sensor_reading,
            (NETFN_SENSOR, 0x27): self._get_sensor_thresholds,
            (NETFN_SENSOR, 0x25): lambda _r, s: s.send_ipmi_response(data=[0, 0]),
            (NETFN_SENSOR, 0x29): lambda _r, s: s.send_ipmi_response(data=[0xC0, 0, 0, 0, 0]),
            (NETFN_SENSOR, 0x2B): lambda _r, s: s.send_ipmi_response(data=[0xC0, 0, 0, 0, 0]),
            (NETFN_STORAGE, 0x10): self._get_fru_info,
            (NETFN_STORAGE, 0x11): self._read_fru,
            (NETFN_STORAGE, 0x20): self._get_sdr_info,
            (NETFN_STORAGE, 0x22): self._reserve_sdr,
            (NETFN_STORAGE, 0x23): self._get_sdr,
            (NETFN_STORAGE, 0x40): lambda _r, s: s.send_ipmi_response(data=self.machine.sel.info()),
            (NETFN_STORAGE, 0x42): self._reserve_sel,
            (NETFN_STORAGE, 0x43): self._get_sel_entry,
            (NETFN_STORAGE, 0x44): self._add_sel_entry,
            (NETFN_STORAGE, 0x47): self._clear_sel,
            (NETFN_STORAGE, 0x48): lambda _r, s: s.send_ipmi_response(
                data=list(struct.pack("<I", self.machine.sel.now()))
            ),
            (NETFN_DCMI, 0x01): self._dcmi_capabilities,
            (NETFN_DCMI, 0x02): self._dcmi_power_reading,
            (NETFN_APP, 0x38): lambda _r, s: s.send_ipmi_response(data=list(self.authcap[1:])),
        }

    # --- faults and the packet path ------------------------------------------------------------------

    def admit(self) -> bool:
        """Whether to handle the next incoming packet, after applying the injected faults."""
        if self._reset_requested:
            self._do_cold_reset()
        self.machine.tick()
        faults = self.faults
        if faults.hang or time.monotonic() < self._resetting_until:
            return False
        if faults.drop_next > 0:
            faults.drop_next -= 1
            return False
        if faults.drop_rate and random.random() < faults.drop_rate:
            return False
        if faults.delay:
            # A slow firmware: this BMC's only service thread is busy, as on real hardware.
            time.sleep(faults.delay)
        return True

    def request_cold_reset(self) -> None:
        """Reset the BMC: every session is dropped now, then it is silent for a moment."""
        self._resetting_until = time.monotonic() + self.cold_reset_time
        self._reset_requested = True
        self._do_cold_reset()

    def _do_cold_reset(self) -> None:
        with self._reset_lock:
            if not self._reset_requested:
                return
            self._reset_requested = False
            self.cold_resets += 1
            self.sessions.drop_all()
            # Forget every client session (the server socket's own entry is keyed by the socket, not a port).
            for handlers in list(ipmisession.Session.bmc_handlers.values()):
                if isinstance(handlers, dict):
                    handlers.pop(self.port, None)
        log.info("bmc_cold_reset", port=self.port)

    def process_pktqueue(self) -> None:
        """Sessionless traffic (channel auth, cipher suites, Open Session) also passes the fault filter."""
        kept = []
        while self.pktqueue:
            packet = self.pktqueue.popleft()
            if self.admit():
                kept.append(packet)
        self.pktqueue.extend(kept)
        super().process_pktqueue()

    def sessionless_data(self, data: bytes, sockaddr: Any) -> None:
        """Open Session requests start a SimServerSession; everything else as in the base class."""
        if len(data) >= 22 and data[0] == 6 and data[4] == 6 and (data[5] & 0x3F) == PAYLOAD_OPEN_REQUEST:
            SimServerSession(self.authdata, self.kg, sockaddr, self.serversocket, bytearray(data)[16:], self.uuid,
                             bmc=self)
            return
        super().sessionless_data(data, sockaddr)

    def send_cipher_suites(self, myaddr: int, mylun: int, clientaddr: int, clientlun: int, clientseq: int,
                           data: bytearray, sockaddr: Any) -> None:
        """Get Channel Cipher Suites, listing the suites this BMC accepts (the base class lists only 3)."""
        records = bytearray()
        for suite in self.cipher_suites:
            records += {3: b"\xc0\x03\x01\x41\x81", 17: b"\xc0\x11\x03\x44\x81"}[suite]
        index = data[22] & 0x3F if len(data) > 22 else 0
        chunk = records[index * 16 : index * 16 + 16]
        body = bytearray([myaddr, mylun | clientseq << 2, 0x54, 0x00, 0x01]) + chunk
        ipmihdr = bytearray([clientaddr, clientlun | (7 << 2)])
        ipmihdr.append(ipmisession._checksum(*ipmihdr))
        body.append(ipmisession._checksum(*body))
        message = ipmihdr + body
        header = bytearray(b"\x06\x00\xff\x07\x06\x00\x00\x00\x00\x00\x00\x00\x00\x00") + struct.pack(
            "<H", len(message)
        )
        ipmisession._io_sendto(self.serversocket, header + message, sockaddr)

    def send_device_id(self, session: Any) -> None:
        """Get Device ID with the spec's 15 bytes (the base class packs the ids as 4 bytes each)."""
        data = [
            self.deviceid,
            self.revision,
            self.firmwaremajor,
            self.firmwareminor,
            self.ipmiversion,
            self.additionaldevices,
            *struct.pack("<I", self.mfgid)[:3],
            *struct.pack("<H", self.prodid),
            0,
            0,
            0,
            0,
        ]
        session.send_ipmi_response(data=data)

    # --- chassis -------------------------------------------------------------------------------------

    def get_power_state(self) -> str:
        """'on' or 'off' from the server model."""
        return self.machine.power_state()

    def control_chassis(self, request: dict[str, Any], session: Any) -> None:
        """Chassis Control: every directive goes to the server model (0xD5 for reset/cycle/diag while off)."""
        data = request["data"]
        if not data:
            session.send_ipmi_response(code=CC_REQUEST_LENGTH_INVALID)
            return
        directive = DIRECTIVES.get(data[0] & 0x0F)
        if directive is None:
            session.send_ipmi_response(code=CC_INVALID_DATA_FIELD)
            return
        code = self.machine.control(directive)
        log.info("bmc_chassis_control", port=self.port, directive=str(directive), code=code)
        session.send_ipmi_response(code=code)

    def get_boot_device(self) -> str:
        """The boot override set last."""
        return self._boot_device

    def set_boot_device(self, bootdevice: str) -> None:
        """Remember a boot override."""
        self._boot_device = bootdevice

    def get_system_guid(self) -> uuid.UUID:
        """The BMC's GUID."""
        return self.uuid  # type: ignore[no-any-return]  # set by the untyped base class

    def cold_reset(self) -> int:
        """BMC Cold Reset from a client: answer, then reset."""
        self.request_cold_reset()
        return CC_OK

    # --- SOL -----------------------------------------------------------------------------------------

    def is_active(self) -> bool:
        """The SOL payload can always be activated (the serial port exists whether the host is on or not)."""
        return True

    def iohandler(self, data: Any) -> None:
        """Bytes typed by the SOL client: kept, and echoed like a terminal would."""
        if isinstance(data, bytes | bytearray):
            self.sol_input += data
            self._sol_output.put(bytes(data))

    def activate_payload(self, _request: dict[str, Any], session: Any) -> None:
        """Activate SOL with 255-byte payload sizes and the port little-endian (reference bugs 4a, 4b)."""
        if self.activated:
            session.send_ipmi_response(code=0x80)  # payload already active (a client can deactivate it)
            return
        # Attached before the client hears it is: a client that writes to the console the moment activation is
        # answered (rackd's SOL takeover test) lost that output to the sender while `sol` was still unset.
        self.sol = pyghmi_console.ServerConsole(session, self.iohandler)
        self.activated = True
        session.send_ipmi_response(data=[0, 0, 0, 0, 0xFF, 0x00, 0xFF, 0x00, *struct.pack("<H", self.port), 0xFF, 0xFF])

    def deactivate_payload(self, _request: dict[str, Any], session: Any) -> None:
        """Deactivate SOL and release a sender blocked on the departed client (reference bug 4c)."""
        if not self.activated:
            session.send_ipmi_response(code=0x80)
            return
        session.send_ipmi_response()
        sol = self.sol
        self.activated = False
        self.sol = None
        if sol is not None:
            sol.broken = True
            sol.awaitingack = False
            sol.close()

    def _sol_sender(self) -> None:
        while True:
            chunk = self._sol_output.get()
            sol = self.sol
            if sol is None or not self.activated:
                continue  # nobody attached: output is lost, as on a real serial port without a listener
            try:
                sol.send_data(chunk)
            except Exception:  # noqa: BLE001 - a client that went away must not kill the sender thread
                log.debug("bmc_sol_send_failed", port=self.port)

    # --- dispatch ------------------------------------------------------------------------------------

    def handle_raw_request(self, request: dict[str, Any], session: Any) -> None:
        """Commands the base class lacks; the rest goes to it."""
        if self.faults.empty_replies:
            session.send_ipmi_response(code=CC_OK)
            return
        handler = self._handlers.get((request["netfn"], request["command"]))
        if handler is None:
            super().handle_raw_request(request, session)
            return
        try:
            handler(request, session)
        except (IndexError, struct.error):
            session.send_ipmi_response(code=CC_REQUEST_LENGTH_INVALID)

    # --- sensors and SDR -----------------------------------------------------------------------------

    def _get_sensor_reading(self, request: dict[str, Any], session: Any) -> None:
        self.sensor_reads += 1
        spec = self.machine.by_number.get(request["data"][0])
        if spec is None:
            session.send_ipmi_response(code=CC_NOT_PRESENT)
            return
        if spec.discrete:
            session.send_ipmi_response(data=reading_reply(spec, None, self.machine.states(spec)))
        else:
            session.send_ipmi_response(data=reading_reply(spec, self.machine.value(spec)))

    def _get_sensor_thresholds(self, request: dict[str, Any], session: Any) -> None:
        spec = self.machine.by_number.get(request["data"][0])
        if spec is None or spec.discrete:
            session.send_ipmi_response(code=CC_NOT_PRESENT)
            return
        session.send_ipmi_response(data=threshold_reply(spec))

    def sdr_records(self) -> list[bytes]:
        """Every SDR record in order (record ids 1..n)."""
        return [record_for(index + 1, spec) for index, spec in enumerate(self.machine.sensors)]

    def _get_sdr_info(self, _request: dict[str, Any], session: Any) -> None:
        count = len(self.machine.sensors)
        data = [
            0x51,
            *struct.pack("<H", count),
            0xFF,
            0xFF,  # free space: unspecified
            *struct.pack("<I", self._sdr_timestamp),
            *struct.pack("<I", self._sdr_timestamp),
            0x02,  # reserve supported
        ]
        session.send_ipmi_response(data=data)

    def _reserve_sdr(self, _request: dict[str, Any], session: Any) -> None:
        self._sdr_reservation = (self._sdr_reservation % 0xFFFF) + 1
        session.send_ipmi_response(data=list(struct.pack("<H", self._sdr_reservation)))

    def _get_sdr(self, request: dict[str, Any], session: Any) -> None:
        _reservation, record_id, offset, length = struct.unpack("<HHBB", bytes(request["data"][:6]))
        records = self.sdr_records()
        index = 0 if record_id == 0 else record_id - 1
        if not 0 <= index < len(records):
            session.send_ipmi_response(code=CC_NOT_PRESENT)
            return
        self.sdr_record_reads += 1
        record = records[index]
        following = index + 2 if index + 1 < len(records) else 0xFFFF
        chunk = record[offset:] if length == 0xFF else record[offset : offset + length]
        session.send_ipmi_response(data=[*struct.pack("<H", following), *chunk])

    def bump_sdr(self) -> None:
        """Pretend the SDR changed (new timestamp): clients must reload it."""
        self._sdr_timestamp += 1

    # --- FRU -----------------------------------------------------------------------------------------

    def _get_fru_info(self, request: dict[str, Any], session: Any) -> None:
        if request["data"][0] != 0:
            session.send_ipmi_response(code=CC_NOT_PRESENT)
            return
        session.send_ipmi_response(data=[*struct.pack("<H", len(self.fru)), 0x00])

    def _read_fru(self, request: dict[str, Any], session: Any) -> None:
        fru_id, offset, count = struct.unpack("<BHB", bytes(request["data"][:4]))
        if fru_id != 0:
            session.send_ipmi_response(code=CC_NOT_PRESENT)
            return
        if count > FRU_MAX_READ:
            session.send_ipmi_response(code=0xCA)  # cannot return that many bytes
            return
        chunk = self.fru[offset : offset + count]
        session.send_ipmi_response(data=[len(chunk), *chunk])

    # --- SEL -----------------------------------------------------------------------------------------

    def _reserve_sel(self, _request: dict[str, Any], session: Any) -> None:
        session.send_ipmi_response(data=list(struct.pack("<H", self.machine.sel.reserve())))

    def _get_sel_entry(self, request: dict[str, Any], session: Any) -> None:
        _reservation, record_id, offset, length = struct.unpack("<HHBB", bytes(request["data"][:6]))
        found = self.machine.sel.entry(record_id)
        if found is None:
            session.send_ipmi_response(code=CC_NOT_PRESENT)
            return
        following, data = found
        chunk = data[offset:] if length == 0xFF else data[offset : offset + length]
        session.send_ipmi_response(data=[*struct.pack("<H", following), *chunk])

    def _add_sel_entry(self, request: dict[str, Any], session: Any) -> None:
        body = bytes(request["data"][2:16])
        if len(body) != 14:
            session.send_ipmi_response(code=CC_REQUEST_LENGTH_INVALID)
            return
        record_id = self.machine.sel.add(body)
        session.send_ipmi_response(data=list(struct.pack("<H", record_id)))

    def _clear_sel(self, request: dict[str, Any], session: Any) -> None:
        data = bytes(request["data"])
        reservation = struct.unpack("<H", data[:2])[0]
        if data[2:5] != b"CLR":
            session.send_ipmi_response(code=CC_INVALID_DATA_FIELD)
            return
        if not self.machine.sel.reservation_valid(reservation):
            session.send_ipmi_response(code=CC_RESERVATION_CANCELLED)
            return
        if data[5] == 0xAA:
            self.machine.sel.clear()
        session.send_ipmi_response(data=[0x01])  # erasure completed

    # --- DCMI ----------------------------------------------------------------------------------------

    def _dcmi_capabilities(self, request: dict[str, Any], session: Any) -> None:
        data = request["data"]
        if not data or data[0] != DCMI_GROUP:
            session.send_ipmi_response(code=CC_INVALID_DATA_FIELD)
            return
        parameter = data[1] if len(data) > 1 else 1
        params = {
            1: [0x00, 0x01, 0x00],  # mandatory: none extra; optional: power management; no OOB
            2: [0x00, 0x00, 0x00, 0x00, 0x00],  # mandatory attributes: SEL attributes etc.
            3: [0x20, 0x00, 0x01],  # optional attributes: power mgmt controller
            4: [0x00, 0x00, 0x00],
            5: [0x01, 0x00, 0x00],  # enhanced power statistics: none
        }
        payload = params.get(parameter)
        if payload is None:
            session.send_ipmi_response(code=CC_PARAMETER_OUT_OF_RANGE)
            return
        session.send_ipmi_response(data=[DCMI_GROUP, 0x01, 0x05, 0x02, *payload])

    def _dcmi_power_reading(self, request: dict[str, Any], session: Any) -> None:
        data = request["data"]
        if not data or data[0] != DCMI_GROUP:
            session.send_ipmi_response(code=CC_INVALID_DATA_FIELD)
            return
        current, minimum, maximum, average = self.machine.dcmi_reading()
        period_ms = int((time.monotonic() - self._started) * 1000) & 0xFFFFFFFF
        session.send_ipmi_response(
            data=[
                DCMI_GROUP,
                *struct.pack("<HHHH", current, minimum, maximum, average),
                *struct.pack("<I", int(time.time())),
                *struct.pack("<I", period_ms),
                0x40,  # power measurement active
            ]
        )


def serve_forever(stop: threading.Event | None = None, poll: float = 0.5) -> None:
    """Run pyghmi's server loop for every BMC of this process until `stop` is set; errors are logged, not fatal."""
    while stop is None or not stop.is_set():
        try:
            ipmisession.Session.wait_for_rsp(poll)
        except Exception:  # the base loop dies on any handler error (reference bug 7): log and keep serving
            log.exception("bmc_loop_error")
