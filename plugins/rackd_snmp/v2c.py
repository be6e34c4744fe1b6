"""SNMP v1/v2c community messages (RFC 1157, 1901, 3416): encoding and strict decoding, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

from rackd_snmp.ber import (
    BerError,
    Oid,
    decode_integer,
    decode_oid,
    encode_length,
    encode_tlv,
    integer_content,
    oid_content,
    read_header,
)


class Version(IntEnum):
    """The message's version field."""

    V1 = 0
    V2C = 1


class Tag(IntEnum):
    """The value types of a varbind (RFC 2578 ApplicationSyntax and RFC 3416 exceptions)."""

    INTEGER = 0x02
    OCTET_STRING = 0x04
    NULL = 0x05
    OBJECT_IDENTIFIER = 0x06
    IP_ADDRESS = 0x40
    COUNTER32 = 0x41
    GAUGE32 = 0x42  # also Unsigned32
    TIMETICKS = 0x43
    OPAQUE = 0x44
    COUNTER64 = 0x46
    NO_SUCH_OBJECT = 0x80
    NO_SUCH_INSTANCE = 0x81
    END_OF_MIB_VIEW = 0x82


class PduType(IntEnum):
    """The PDUs a manager sends and receives (traps and informs are not rackd's business)."""

    GET = 0xA0
    GET_NEXT = 0xA1
    RESPONSE = 0xA2
    SET = 0xA3
    GET_BULK = 0xA5


ERROR_STATUS_NAMES = (
    "noError", "tooBig", "noSuchName", "badValue", "readOnly", "genErr", "noAccess", "wrongType", "wrongLength",
    "wrongEncoding", "wrongValue", "noCreation", "inconsistentValue", "resourceUnavailable", "commitFailed",
    "undoFailed", "authorizationError", "notWritable", "inconsistentName",
)  # fmt: skip

_SEQUENCE = 0x30
_INT32 = (-(2**31), 2**31 - 1)
_UINT32 = (0, 2**32 - 1)
# Value ranges by tag; a value outside is a broken agent, as pysnmp's decoder also rejects it.
_RANGES = {
    Tag.INTEGER: _INT32,
    Tag.COUNTER32: _UINT32,
    Tag.GAUGE32: _UINT32,
    Tag.TIMETICKS: _UINT32,
    Tag.COUNTER64: (0, 2**64 - 1),
}
_BYTES_TAGS = frozenset({Tag.OCTET_STRING, Tag.IP_ADDRESS, Tag.OPAQUE})
_V2_ONLY_TAGS = frozenset({Tag.COUNTER64, Tag.NO_SUCH_OBJECT, Tag.NO_SUCH_INSTANCE, Tag.END_OF_MIB_VIEW})
_TAGS = {tag.value: tag for tag in Tag}
_PDU_TYPES = {pdu.value: pdu for pdu in PduType}
_NULL_VALUE = b"\x05\x00"
# Replies of one PDU name the same OIDs every poll: decoding each once saves most of the decoder's time.
_OID_CACHE: dict[bytes, Oid] = {}
_OID_CACHE_LIMIT = 50_000  # about 10 MB at worst; emptied when full (a walk of a huge MIB, not a PDU poll)
_REQUEST_VARBINDS: dict[Oid, bytes] = {}  # the same for requests: column roots and cursors recur every poll

Value = int | bytes | Oid | None


class VarBind(NamedTuple):
    """One variable binding: the OID, the value's tag and the value (int, bytes, OID tuple, or None when empty)."""

    oid: Oid
    tag: Tag
    value: Value


@dataclass(frozen=True, slots=True)
class Message:
    """A community message carrying one PDU; for GETBULK, error_status/error_index hold the two bulk fields."""

    version: Version
    community: bytes
    pdu_type: PduType
    request_id: int
    error_status: int
    error_index: int
    varbinds: tuple[VarBind, ...]

    @property
    def non_repeaters(self) -> int:
        """GETBULK's non-repeaters (the error-status position)."""
        return self.error_status

    @property
    def max_repetitions(self) -> int:
        """GETBULK's max-repetitions (the error-index position)."""
        return self.error_index


class MessageError(BerError):
    """A datagram that is not a well-formed SNMP message; carries the request-id when it was readable."""

    def __init__(self, detail: str, request_id: int | None = None) -> None:
        """`detail` says what was wrong and where."""
        super().__init__(detail)
        self.request_id = request_id


def error_status_name(status: int) -> str:
    """The error-status as pysnmp names it ("" for noError, the number when unnamed)."""
    if status == 0:
        return ""
    return ERROR_STATUS_NAMES[status] if 0 < status < len(ERROR_STATUS_NAMES) else str(status)


# --- encoding -------------------------------------------------------------------------------------------------


def encode_value(tag: Tag, value: Value) -> bytes:
    """One varbind value as a TLV; the value must suit the tag (the same checks as the decoder)."""
    if tag in _RANGES:
        low, high = _RANGES[tag]
        if not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"{tag.name} takes an integer in {low}..{high}, not {value!r}")
        return encode_tlv(tag, integer_content(value))
    if tag in _BYTES_TAGS:
        if not isinstance(value, bytes) or (tag is Tag.IP_ADDRESS and len(value) != 4):
            raise ValueError(f"{tag.name} takes bytes (4 for an IpAddress), not {value!r}")
        return encode_tlv(tag, value)
    if tag is Tag.OBJECT_IDENTIFIER:
        if not isinstance(value, tuple):
            raise ValueError(f"OBJECT_IDENTIFIER takes a tuple of arcs, not {value!r}")
        return encode_tlv(tag, oid_content(value))
    if value is not None:
        raise ValueError(f"{tag.name} has no value, not {value!r}")
    return bytes((tag, 0))


def _sequence(parts: list[bytes]) -> bytes:
    body = b"".join(parts)
    return bytes((_SEQUENCE,)) + encode_length(len(body)) + body


def _frame(
    version: int, community: bytes, pdu_type: int, request_id: int, first: int, second: int, varbinds: list[bytes]
) -> bytes:
    pdu = b"".join(
        (
            encode_tlv(Tag.INTEGER, integer_content(request_id)),
            encode_tlv(Tag.INTEGER, integer_content(first)),
            encode_tlv(Tag.INTEGER, integer_content(second)),
            _sequence(varbinds),
        )
    )
    return _sequence(
        [
            encode_tlv(Tag.INTEGER, integer_content(version)),
            encode_tlv(Tag.OCTET_STRING, community),
            bytes((pdu_type,)) + encode_length(len(pdu)) + pdu,
        ]
    )


def encode_message(message: Message) -> bytes:
    """The datagram for a message (any PDU type: requests in production, responses in tests)."""
    varbinds = [
        _sequence([encode_tlv(Tag.OBJECT_IDENTIFIER, oid_content(vb.oid)), encode_value(vb.tag, vb.value)])
        for vb in message.varbinds
    ]
    return _frame(
        message.version, message.community, message.pdu_type, message.request_id, message.error_status,
        message.error_index, varbinds,
    )  # fmt: skip


def encode_request(
    version: Version,
    community: bytes,
    pdu_type: PduType,
    request_id: int,
    oids: list[Oid] | tuple[Oid, ...],
    non_repeaters: int = 0,
    max_repetitions: int = 0,
) -> bytes:
    """A GET/GETNEXT/GETBULK request: every varbind's value is NULL."""
    if pdu_type is PduType.GET_BULK and version is Version.V1:
        raise ValueError("SNMPv1 has no GETBULK")
    varbinds = []
    for oid in oids:
        varbind = _REQUEST_VARBINDS.get(oid)
        if varbind is None:
            varbind = _sequence([encode_tlv(Tag.OBJECT_IDENTIFIER, oid_content(oid)), _NULL_VALUE])
            if len(_REQUEST_VARBINDS) >= _OID_CACHE_LIMIT:
                _REQUEST_VARBINDS.clear()
            _REQUEST_VARBINDS[oid] = varbind
        varbinds.append(varbind)
    return _frame(version, community, pdu_type, request_id, non_repeaters, max_repetitions, varbinds)


# --- decoding -------------------------------------------------------------------------------------------------


def _oid_at(data: bytes, start: int, end: int, what: str) -> Oid:
    key = data[start:end]
    oid = _OID_CACHE.get(key)
    if oid is None:
        oid = decode_oid(data, start, end, what)
        if len(_OID_CACHE) >= _OID_CACHE_LIMIT:
            _OID_CACHE.clear()
        _OID_CACHE[key] = oid
    return oid


def decode_message(data: bytes) -> Message:
    """A community message, checked field by field; anything else raises MessageError saying what and where."""
    try:
        return _decode(data)
    except MessageError:
        raise
    except BerError as exc:  # before the request-id was read
        raise MessageError(str(exc)) from None


def _decode(data: bytes) -> Message:
    end = len(data)
    _, pos, stop = read_header(data, 0, end, "the message", _SEQUENCE)
    if stop != end:
        raise MessageError(f"{end - stop} bytes after the end of the message")
    _, pos, field_end = read_header(data, pos, stop, "the version", Tag.INTEGER)
    number = decode_integer(data, pos, field_end, "the version")
    if number not in (Version.V1, Version.V2C):
        raise MessageError(f"version {number} is neither SNMPv1 (0) nor SNMPv2c (1)")
    version = Version(number)
    _, pos, field_end = read_header(data, field_end, stop, "the community", Tag.OCTET_STRING)
    community = data[pos:field_end]
    if field_end < stop and data[field_end] not in _PDU_TYPES:
        raise MessageError(
            f"wrong tag: the PDU at byte {field_end} has tag 0x{data[field_end]:02x}, no SNMP request or response"
        )
    tag, pos, pdu_end = read_header(data, field_end, stop, "the PDU")
    pdu_type = _PDU_TYPES[tag]
    if pdu_end != stop:
        raise MessageError(f"{stop - pdu_end} bytes after the PDU, inside the message")
    _, pos, field_end = read_header(data, pos, pdu_end, "the request-id", Tag.INTEGER)
    request_id = decode_integer(data, pos, field_end, "the request-id")
    if not _INT32[0] <= request_id <= _INT32[1]:
        raise MessageError(f"request-id {request_id} does not fit 32 bits")
    try:
        return Message(version, community, pdu_type, request_id, *_decode_rest(data, field_end, pdu_end, version))
    except BerError as exc:
        raise MessageError(str(exc), request_id) from None


def _decode_rest(data: bytes, pos: int, pdu_end: int, version: Version) -> tuple[int, int, tuple[VarBind, ...]]:
    _, pos, field_end = read_header(data, pos, pdu_end, "the error-status", Tag.INTEGER)
    error_status = decode_integer(data, pos, field_end, "the error-status")
    _, pos, field_end = read_header(data, field_end, pdu_end, "the error-index", Tag.INTEGER)
    error_index = decode_integer(data, pos, field_end, "the error-index")
    if not 0 <= error_index <= _INT32[1]:
        raise MessageError(f"error-index {error_index} outside 0..2^31-1")
    _, pos, list_end = read_header(data, field_end, pdu_end, "the varbind list", _SEQUENCE)
    if list_end != pdu_end:
        raise MessageError(f"{pdu_end - list_end} bytes after the varbind list, inside the PDU")
    varbinds: list[VarBind] = []
    v1 = version is Version.V1
    try:
        while pos < list_end:
            _, pos, bind_end = read_header(data, pos, list_end, "the varbind", _SEQUENCE)
            _, pos, name_end = read_header(data, pos, bind_end, "its name", Tag.OBJECT_IDENTIFIER)
            oid = _oid_at(data, pos, name_end, "its name")
            tag, pos, value_end = read_header(data, name_end, bind_end, "its value")
            if value_end != bind_end:
                raise MessageError(f"{bind_end - value_end} bytes after its value")
            varbinds.append(_value(data, tag, pos, value_end, oid, v1))
            pos = bind_end
    except BerError as exc:
        raise MessageError(f"varbind {len(varbinds) + 1}: {exc}") from None
    return error_status, error_index, tuple(varbinds)


def _value(data: bytes, tag: int, start: int, end: int, oid: Oid, v1: bool) -> VarBind:
    kind = _TAGS.get(tag)
    if kind is None:
        raise MessageError(f"wrong tag: the value of {_dotted(oid)} at byte {start} has tag 0x{tag:02x}, no SNMP type")
    if v1 and kind in _V2_ONLY_TAGS:
        raise MessageError(f"the value of {_dotted(oid)} is a {kind.name}, which SNMPv1 does not have")
    bounds = _RANGES.get(kind)
    if bounds is not None:
        if end <= start:  # checked here so the OID is named only when something is wrong (the hot path)
            raise MessageError(f"the {kind.name} value of {_dotted(oid)} is an INTEGER with no content octets")
        number = decode_integer(data, start, end, "")
        if number < bounds[0] or number > bounds[1]:
            raise MessageError(f"the {kind.name} value of {_dotted(oid)} is {number}, outside {bounds[0]}..{bounds[1]}")
        return VarBind(oid, kind, number)
    if kind in _BYTES_TAGS:
        if kind is Tag.IP_ADDRESS and end - start != 4:
            raise MessageError(f"the IpAddress value of {_dotted(oid)} has {end - start} octets, not 4")
        return VarBind(oid, kind, data[start:end])
    if kind is Tag.OBJECT_IDENTIFIER:
        return VarBind(oid, kind, _oid_at(data, start, end, "its value"))
    if end != start:
        raise MessageError(f"the {kind.name} value of {_dotted(oid)} has {end - start} content octets, not 0")
    return VarBind(oid, kind, None)


def _dotted(oid: Oid) -> str:
    return ".".join(map(str, oid))
