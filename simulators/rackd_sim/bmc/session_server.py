"""RMCP+ server session with the fixes pyghmi's server class needs: cipher suites 3 and 17, auth errors, slots."""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from typing import TYPE_CHECKING, Any

import pyghmi.ipmi.private.constants as ipmi_constants
from pyghmi.ipmi.private import serversession

from rackd_sim.bmc.sessions import SessionRecord

if TYPE_CHECKING:
    from rackd_sim.bmc.server import SimulatedBmc

# RMCP+ status codes (IPMI 2.0 table 13-15).
STATUS_OK = 0x00
STATUS_NO_RESOURCES = 0x01
STATUS_UNAUTHORIZED_NAME = 0x0D
STATUS_INVALID_INTEGRITY_CHECK = 0x0F
STATUS_NO_CIPHER_SUITE = 0x11
STATUS_ILLEGAL_PARAMETER = 0x12

# (authentication, integrity, confidentiality) algorithm -> cipher suite id.
CIPHER_SUITES = {(1, 1, 1): 3, (3, 4, 1): 17}
SUITE_HASH = {3: (hashlib.sha1, 12), 17: (hashlib.sha256, 16)}
PAYLOAD_OPEN_REQUEST = 0x10
NETFN_APP, CMD_CLOSE_SESSION = 0x06, 0x3C
CC_INVALID_SESSION_ID = 0x87  # Close Session: no such session


class SimServerSession(serversession.ServerSession):  # type: ignore[misc]  # pyghmi ships no types
    """One client session; unlike the base class it negotiates suite 3 or 17 and answers auth failures."""

    bmc: SimulatedBmc
    record: SessionRecord | None = None
    suite: int = 3

    def _status_reply(self, request: bytes | bytearray, status: int) -> bytearray:
        return bytearray([request[0], status, 0, 0]) + bytearray(request[4:8])

    def create_open_session_response(self, request: bytearray) -> bytearray:
        """Pick a cipher suite from the proposal and take a session slot (or refuse, with the right status)."""
        self.clientsessionid = request[4:8]
        if len(request) < 32:
            return self._status_reply(request, STATUS_ILLEGAL_PARAMETER)
        proposal = (request[12], request[20], request[28])
        suite = CIPHER_SUITES.get(proposal)
        if suite is None or suite not in self.bmc.cipher_suites:
            # The base class always answered suite 3, whatever was proposed: pyghmi then failed in RAKP 2.
            return self._status_reply(request, STATUS_NO_CIPHER_SUITE)
        record = self.bmc.sessions.open(str(self.sockaddr), suite)
        if record is None:
            return self._status_reply(request, STATUS_NO_RESOURCES)
        self.record = record
        self.suite = suite
        self.currhashlib, self.currhashlen = SUITE_HASH[suite]
        self.managedsessionid = os.urandom(4)
        record.session_id = struct.unpack("<I", self.managedsessionid)[0]
        self.privlevel = 4
        auth, integrity, confidentiality = proposal
        return (
            bytearray([request[0], STATUS_OK, self.privlevel, 0])
            + self.clientsessionid
            + self.managedsessionid
            + bytearray([0, 0, 0, 8, auth, 0, 0, 0])
            + bytearray([1, 0, 0, 8, integrity, 0, 0, 0])
            + bytearray([2, 0, 0, 8, confidentiality, 0, 0, 0])
        )

    def _got_rmcp_openrequest(self, data: bytearray) -> None:
        # A known client (same UDP source) logs in again: start a fresh session object instead of reusing
        # this one, whose keys, sequence numbers and integrity flags belong to the old session.
        SimServerSession(self.authdata, self.kg, self.sockaddr, self.socket, data, self.uuid, bmc=self.bmc)

    def _refuse_rakp2(self, data: bytearray, status: int) -> None:
        self.bmc.sessions.login_failed(self.record)
        reply = bytearray([data[0], status, 0, 0]) + bytearray(self.clientsessionid)
        self.send_payload(reply, ipmi_constants.payload_types["rakp2"], retry=False)

    def _got_rakp1(self, data: bytearray) -> None:
        """RAKP 1 → 2 with the negotiated hash; unknown users get 'unauthorized name' instead of silence."""
        if self.record is None:
            return
        clienttag = data[0]
        self.Rm = data[8:24]
        self.rolem = data[24]
        self.maxpriv = self.rolem & 0b111
        namelen = data[27]
        self.username = bytes(data[28 : 28 + namelen])
        if self.bmc.faults.drop_rakp1:
            self.bmc.faults.drop_rakp1 -= 1
            return  # lost on the way: the session stays half made (its slot held until it expires)
        self.bmc.sessions.login_attempt()
        password = self.authdata.get(self.username.decode("utf-8", "replace"))
        if password is None or self.bmc.faults.reject_credentials:
            self._refuse_rakp2(data, STATUS_UNAUTHORIZED_NAME)
            return
        uuidbytes = self.uuid.bytes
        self.uuiddata = uuidbytes
        self.Rc = os.urandom(16)
        hmacdata = (
            self.clientsessionid
            + self.managedsessionid
            + self.Rm
            + self.Rc
            + uuidbytes
            + bytearray([self.rolem, len(self.username)])
            + self.username
        )
        self.kuid = password.encode("utf-8")
        self.kg_effective = self.kg if self.kg is not None else self.kuid
        authcode = hmac.new(self.kuid, bytes(hmacdata), self.currhashlib).digest()
        reply = bytearray([clienttag, 0, 0, 0]) + self.clientsessionid + self.Rc + uuidbytes + authcode
        self.send_payload(reply, ipmi_constants.payload_types["rakp2"], retry=False)

    def _got_rakp3(self, data: bytearray) -> None:
        """RAKP 3 → 4; a wrong key exchange code is answered with 'invalid integrity check value'."""
        if self.record is None or not hasattr(self, "kuid"):
            return
        digest = self.currhashlib
        role_user = struct.pack("2B", self.rolem, len(self.username)) + self.username
        self.sik = hmac.new(self.kg_effective, bytes(self.Rm + self.Rc) + role_user, digest).digest()
        self.k1 = hmac.new(self.sik, b"\x01" * 20, digest).digest()
        self.k2 = hmac.new(self.sik, b"\x02" * 20, digest).digest()
        self.aeskey = self.k2[0:16]
        expected = hmac.new(self.kuid, bytes(self.Rc + self.clientsessionid) + role_user, digest).digest()
        if data[1] != 0:
            self.bmc.sessions.login_failed(self.record)  # the client rejected our RAKP 2 (wrong password)
            return
        if not hmac.compare_digest(expected, bytes(data[8 : 8 + len(expected)])):
            self.bmc.sessions.login_failed(self.record)
            reply = bytearray([data[0], STATUS_INVALID_INTEGRITY_CHECK, 0, 0]) + bytearray(self.clientsessionid)
            self.send_payload(reply, ipmi_constants.payload_types["rakp4"], retry=False)
            return
        self.localsid = struct.unpack("<I", self.managedsessionid)[0]
        self.ipmicallback = self.handle_client_request
        self._send_rakp4(data[0], 0)

    def _send_rakp4(self, tagvalue: int, statuscode: int) -> None:
        payload = bytearray([tagvalue, statuscode, 0, 0]) + self.clientsessionid
        icv_data = bytes(self.Rm + self.managedsessionid + self.uuiddata)
        payload += hmac.new(self.sik, icv_data, self.currhashlib).digest()[: self.currhashlen]
        if self.bmc.faults.drop_rakp4:
            self.bmc.faults.drop_rakp4 -= 1  # lost on the way back: the session is logged in, the client never knows
        else:
            self.send_payload(payload, ipmi_constants.payload_types["rakp4"], retry=False)
        self.confalgo = "aes"
        self.integrityalgo = "sha256" if self.suite == 17 else "sha1"
        self.sequencenumber = 1
        self.sessionid = struct.unpack("<I", struct.pack("4B", *self.clientsessionid))[0]
        if self.record is not None:
            self.bmc.sessions.established(self.record)

    def handle_client_request(self, request: dict[str, Any]) -> None:
        """Close Session names the session to close: this one, or another (pyghmi's base class ignored the id)."""
        data = request["data"]
        if request["netfn"] == NETFN_APP and request["command"] == CMD_CLOSE_SESSION and len(data) >= 4:
            target = struct.unpack("<I", bytes(data[:4]))[0]
            if target not in (0, self.localsid):
                closed = self.bmc.sessions.close_id(target)
                self.send_ipmi_response(code=0 if closed else CC_INVALID_SESSION_ID)
                return
        super().handle_client_request(request)

    def close_server_session(self) -> None:
        """Close Session (netfn 6, cmd 0x3c) frees the slot."""
        if self.record is not None:
            self.bmc.sessions.close(self.record)

    def process_pktqueue(self) -> None:
        """Apply the BMC's faults, drop traffic of expired sessions, then handle packets as usual."""
        kept: list[Any] = []
        while self.pktqueue:
            packet = self.pktqueue.popleft()
            if not self.bmc.admit():
                continue
            data = packet[0]
            # Only in-session traffic (RMCP+ IPMI or SOL payloads) needs a live session; logins and sessionless
            # requests from the same client address must get through.
            in_session = len(data) > 5 and data[4] == 6 and (data[5] & 0x3F) in (0x00, 0x01)
            if in_session and self.record is not None and not self.bmc.sessions.touch(self.record):
                continue  # idle-expired or closed: a real BMC no longer knows this session
            kept.append(packet)
        self.pktqueue.extend(kept)
        super().process_pktqueue()
