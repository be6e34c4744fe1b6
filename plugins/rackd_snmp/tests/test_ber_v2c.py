"""The lean codec: round trips, agreement with pysnmp's own BER codec (pyasn1), fuzzing, and every rejection."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pyasn1.codec.ber import decoder as pyasn1_decoder  # type: ignore[import-untyped]  # pysnmp's codec: no stubs
from pyasn1.codec.ber import encoder as pyasn1_encoder
from pysnmp.proto import api

from rackd_snmp.ber import MAX_SUBID, BerError, decode_integer, decode_oid, oid_content, parse_oid, read_header
from rackd_snmp.client import _decode, lean_value
from rackd_snmp.v2c import (
    ERROR_STATUS_NAMES,
    Message,
    MessageError,
    PduType,
    Tag,
    VarBind,
    Version,
    decode_message,
    encode_message,
    encode_request,
    encode_value,
    error_status_name,
)

V1_TAGS = [Tag.INTEGER, Tag.OCTET_STRING, Tag.NULL, Tag.OBJECT_IDENTIFIER, Tag.IP_ADDRESS, Tag.COUNTER32,
           Tag.GAUGE32, Tag.TIMETICKS, Tag.OPAQUE]  # fmt: skip
V2_ONLY_TAGS = [Tag.COUNTER64, Tag.NO_SUCH_OBJECT, Tag.NO_SUCH_INSTANCE, Tag.END_OF_MIB_VIEW]
UINT32 = st.integers(0, 2**32 - 1)


@st.composite
def oids(draw: st.DrawFn) -> tuple[int, ...]:
    first = draw(st.integers(0, 2))
    second = draw(st.integers(0, 39) if first < 2 else st.integers(0, MAX_SUBID - 80))
    rest = draw(st.lists(st.integers(0, 127) | UINT32, max_size=draw(st.sampled_from([12, 30, 126]))))
    return (first, second, *rest)


VALUES: dict[Tag, st.SearchStrategy[Any]] = {
    Tag.INTEGER: st.integers(-(2**31), 2**31 - 1),
    Tag.OCTET_STRING: st.binary(max_size=300),
    Tag.NULL: st.none(),
    Tag.OBJECT_IDENTIFIER: oids(),
    Tag.IP_ADDRESS: st.binary(min_size=4, max_size=4),
    Tag.COUNTER32: UINT32,
    Tag.GAUGE32: UINT32,
    Tag.TIMETICKS: UINT32,
    Tag.OPAQUE: st.binary(max_size=40),
    Tag.COUNTER64: st.integers(0, 2**64 - 1),
    Tag.NO_SUCH_OBJECT: st.none(),
    Tag.NO_SUCH_INSTANCE: st.none(),
    Tag.END_OF_MIB_VIEW: st.none(),
}


@st.composite
def varbinds(draw: st.DrawFn, version: Version) -> VarBind:
    tag = draw(st.sampled_from(V1_TAGS if version is Version.V1 else V1_TAGS + V2_ONLY_TAGS))
    return VarBind(draw(oids()), tag, draw(VALUES[tag]))


@st.composite
def messages(draw: st.DrawFn, versions: tuple[Version, ...] = (Version.V1, Version.V2C)) -> Message:
    version = draw(st.sampled_from(versions))
    pdu_types = [p for p in PduType if not (version is Version.V1 and p is PduType.GET_BULK)]
    pdu_type = draw(st.sampled_from(pdu_types))
    lowest = 0 if pdu_type is PduType.GET_BULK else -(2**31)  # there it is non-repeaters
    return Message(
        version=version,
        community=draw(st.binary(max_size=40)),
        pdu_type=pdu_type,
        request_id=draw(st.integers(-(2**31), 2**31 - 1)),
        error_status=draw(st.integers(0, 18) | st.integers(lowest, 2**31 - 1)),
        error_index=draw(st.integers(0, 2**31 - 1)),
        varbinds=tuple(draw(st.lists(varbinds(version), max_size=20))),
    )


# --- round trips and agreement with pyasn1 (the codec under pysnmp) -----------------------------------------

@settings(max_examples=600, deadline=None)
@given(messages())
def test_round_trip(message: Message) -> None:
    assert decode_message(encode_message(message)) == message


@settings(max_examples=300, deadline=None)
@given(oids())
def test_oid_round_trip_and_text(oid: tuple[int, ...]) -> None:
    content = oid_content(oid)
    assert decode_oid(content, 0, len(content), "x") == oid
    assert parse_oid(".".join(map(str, oid))) == oid


def _pysnmp_message(message: Message) -> Any:
    """pysnmp's rendering of the same message, built through its own API (pyasn1 types)."""
    module = api.PROTOCOL_MODULES[api.SNMP_VERSION_1 if message.version is Version.V1 else api.SNMP_VERSION_2C]
    pdu_class = {
        PduType.GET: module.GetRequestPDU, PduType.GET_NEXT: module.GetNextRequestPDU,
        PduType.RESPONSE: module.GetResponsePDU, PduType.SET: module.SetRequestPDU,
    }.get(message.pdu_type) or module.GetBulkRequestPDU  # fmt: skip
    pdu = pdu_class()
    module.apiPDU.set_defaults(pdu)
    module.apiPDU.set_request_id(pdu, message.request_id)
    pdu.setComponentByPosition(1, message.error_status)
    pdu.setComponentByPosition(2, message.error_index)
    types = {
        Tag.INTEGER: module.Integer, Tag.OCTET_STRING: module.OctetString, Tag.NULL: module.Null,
        Tag.OBJECT_IDENTIFIER: module.ObjectIdentifier, Tag.IP_ADDRESS: module.IpAddress,
        Tag.COUNTER32: module.Counter32 if message.version is Version.V2C else module.Counter,
        Tag.GAUGE32: module.Gauge32 if message.version is Version.V2C else module.Gauge,
        Tag.TIMETICKS: module.TimeTicks, Tag.OPAQUE: module.Opaque,
    }  # fmt: skip
    if message.version is Version.V2C:
        types[Tag.COUNTER64] = module.Counter64
    values = []
    for vb in message.varbinds:
        if vb.tag is Tag.NO_SUCH_OBJECT:
            value = module.NoSuchObject("")
        elif vb.tag is Tag.NO_SUCH_INSTANCE:
            value = module.NoSuchInstance("")
        elif vb.tag is Tag.END_OF_MIB_VIEW:
            value = module.EndOfMibView("")
        elif vb.tag is Tag.NULL:
            value = module.Null("")
        else:
            value = types[vb.tag](vb.value)
        values.append((module.ObjectIdentifier(vb.oid), value))
    module.apiPDU.set_varbinds(pdu, values)
    wrapper = module.Message()
    module.apiMessage.set_defaults(wrapper)
    module.apiMessage.set_community(wrapper, message.community)
    module.apiMessage.set_pdu(wrapper, pdu)
    return wrapper


@settings(max_examples=400, deadline=None)
@given(messages())
def test_same_bytes_as_pyasn1_and_same_values_as_pysnmp(message: Message) -> None:
    ours = encode_message(message)
    assert ours == pyasn1_encoder.encode(_pysnmp_message(message))
    module = api.PROTOCOL_MODULES[api.SNMP_VERSION_1 if message.version is Version.V1 else api.SNMP_VERSION_2C]
    theirs, rest = pyasn1_decoder.decode(ours, asn1Spec=module.Message())
    assert rest == b""
    pdu = module.apiMessage.get_pdu(theirs)
    assert int(module.apiPDU.get_request_id(pdu)) == message.request_id
    decoded = module.apiPDU.get_varbinds(pdu)
    assert [tuple(name) for name, _ in decoded] == [vb.oid for vb in message.varbinds]
    # What the driver makes of each value is the same through either codec.
    assert [_decode(value) for _, value in decoded] == [lean_value(vb) for vb in decode_message(ours).varbinds]


@settings(max_examples=200, deadline=None)
@given(messages(), st.sampled_from([PduType.GET, PduType.GET_NEXT, PduType.GET_BULK]))
def test_requests_match_pyasn1(message: Message, pdu_type: PduType) -> None:
    if message.version is Version.V1 and pdu_type is PduType.GET_BULK:
        with pytest.raises(ValueError, match="no GETBULK"):
            encode_request(message.version, message.community, pdu_type, 1, [(1, 3)])
        return
    oids_asked = [vb.oid for vb in message.varbinds]
    request = encode_request(message.version, message.community, pdu_type, message.request_id, oids_asked, 0, 7)
    expected = Message(message.version, message.community, pdu_type, message.request_id, 0, 7,
                       tuple(VarBind(oid, Tag.NULL, None) for oid in oids_asked))  # fmt: skip
    assert request == pyasn1_encoder.encode(_pysnmp_message(expected))
    assert decode_message(request) == expected


@pytest.mark.parametrize("status", range(-2, 25))
def test_error_status_names_are_pysnmps(status: int) -> None:
    named = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C].apiPDU.get_error_status(
        api.PROTOCOL_MODULES[api.SNMP_VERSION_2C].GetResponsePDU().setComponentByPosition(1, status)
    )
    assert error_status_name(status) == (named.prettyPrint() if named else "")
    assert ERROR_STATUS_NAMES[0] == "noError"


# --- fuzzing: only clean errors -------------------------------------------------------------------------------

def _decodes_or_refuses(data: bytes) -> None:
    try:
        decode_message(data)
    except MessageError as exc:
        problem, request_id = str(exc), exc.request_id
    else:
        return
    assert problem
    assert request_id is None or isinstance(request_id, int)


@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=200))
@example(b"")
@example(b"\x30")
@example(b"\x30\x80")
@example(b"\x30\x84\xff\xff\xff\xff")
@example(b"\x30\x03\x02\x01")
def test_random_bytes_never_crash(data: bytes) -> None:
    _decodes_or_refuses(data)


MUTATIONS = st.sampled_from(["flip", "truncate", "insert", "delete", "length", "tag"])


@settings(max_examples=3000, deadline=None)
@given(messages(), MUTATIONS, st.integers(0, 10_000), st.integers(0, 255))
def test_mutated_valid_messages_never_crash(message: Message, mutation: str, where: int, byte: int) -> None:
    data = bytearray(encode_message(message))
    at = where % len(data)
    if mutation == "flip":
        data[at] ^= byte or 0xFF
    elif mutation == "truncate":
        del data[at:]
    elif mutation == "insert":
        data.insert(at, byte)
    elif mutation == "delete":
        del data[at]
    elif mutation == "length" and at + 1 < len(data):
        data[at + 1] = byte  # whatever follows a byte is a length somewhere
    else:
        data[at] = byte
    _decodes_or_refuses(bytes(data))


# --- each rejection names what was wrong ----------------------------------------------------------------------

GOOD = Message(Version.V2C, b"public", PduType.RESPONSE, 4242, 0, 0,
               (VarBind((1, 3, 6, 1, 2, 1, 1, 3, 0), Tag.TIMETICKS, 12345),))  # fmt: skip


def _reply(*varbinds: bytes, version: int = 1, pdu: int = 0xA2, request_id: bytes = b"\x02\x02\x10\x92") -> bytes:
    body = b"".join(varbinds)
    vbl = b"\x30" + bytes((len(body),)) + body
    inner = request_id + b"\x02\x01\x00\x02\x01\x00" + vbl
    msg = b"\x02\x01" + bytes((version,)) + b"\x04\x06public" + bytes((pdu, len(inner))) + inner
    return b"\x30" + bytes((len(msg),)) + msg


def _vb(value: bytes, name: bytes = b"\x06\x08\x2b\x06\x01\x02\x01\x01\x03\x00") -> bytes:
    return b"\x30" + bytes((len(name) + len(value),)) + name + value


def test_hand_built_reply_is_the_encoders() -> None:
    assert _reply(_vb(b"\x43\x02\x30\x39")) == encode_message(GOOD)


@pytest.mark.parametrize(
    ("data", "problem", "request_id"),
    [
        (b"", "truncated: the message at byte 0 needs a tag and a length, 0 bytes left", None),
        (encode_message(GOOD)[:-3], "length overflow: the message at byte 0 declares 41 bytes, only 38 remain", None),
        (encode_message(GOOD) + b"\x00", "1 bytes after the end of the message", None),
        (b"\x31" + encode_message(GOOD)[1:], r"wrong tag: the message at byte 0 has tag 0x31", None),
        (b"\x30\x80" + encode_message(GOOD)[2:], "indefinite length", None),
        (b"\x30\x85\x00\x00\x00\x00\x10", "5 length octets", None),
        (b"\x30\x84\x00\x00\x10\x00\x02", "length overflow: the message at byte 0 declares 4096 bytes", None),
        (_reply(_vb(b"\x43\x02\x30\x39"), version=3), "version 3 is neither SNMPv1", None),
        (_reply(_vb(b"\x43\x02\x30\x39"), pdu=0xA7), "wrong tag: the PDU at byte 13 has tag 0xa7", None),
        (_reply(_vb(b"\x43\x02\x30\x39"), request_id=b"\x02\x05\x01\x00\x00\x00\x00"), "does not fit 32 bits", None),
        (_reply(_vb(b"\x41\x01\xff")), "COUNTER32 value of 1.3.6.1.2.1.1.3.0 is -1, outside 0..4294967295", 4242),
        (_reply(_vb(b"\x40\x05\x0a\x00\x00\x05\x01")), "IpAddress value of 1.3.6.1.2.1.1.3.0 has 5 octets", 4242),
        (_reply(_vb(b"\x46\x01\x01"), version=0), "COUNTER64, which SNMPv1 does not have", 4242),
        (_reply(_vb(b"\x47\x01\x01")), "has tag 0x47, no SNMP type", 4242),
        (_reply(_vb(b"\x05\x01\x00")), "NULL value of 1.3.6.1.2.1.1.3.0 has 1 content octets", 4242),
        (_reply(_vb(b"\x02\x00")), "INTEGER with no content octets", 4242),
        (_reply(_vb(b"\x02\x01\x05", name=b"\x06\x03\x2b\x80\x01")), "starts with a padding octet 0x80", 4242),
        (_reply(_vb(b"\x02\x01\x05", name=b"\x06\x02\x2b\x86")), "ends inside a sub-identifier", 4242),
        (_reply(_vb(b"\x02\x01\x05", name=b"\x06\x00")), "OBJECT IDENTIFIER with no content octets", 4242),
        (_reply(_vb(b"\x02\x01\x05", name=b"\x06\x06\x2b\x90\x80\x80\x80\x00")), "above 2\\^32-1", 4242),
        (_reply(_vb(b"\x02\x01\x05", name=b"\x04\x01\x2b")), "varbind 1: wrong tag: its name", 4242),
        (_reply(_vb(b"\x02\x01\x05") + b"\x31\x00"), "varbind 2: wrong tag: the varbind", 4242),
        (_reply(_vb(b"\x02\x01\x05\x00")), "varbind 1: 1 bytes after its value", 4242),
        (_reply(_vb(b"\x02\x09\x05")), "varbind 1: length overflow: its value", 4242),
    ],
)
def test_malformed_replies_are_refused_saying_what(data: bytes, problem: str, request_id: int | None) -> None:
    with pytest.raises(MessageError, match=problem) as caught:
        decode_message(data)
    assert caught.value.request_id == request_id


def test_oid_of_129_arcs_is_refused_and_128_accepted() -> None:
    longest = (1, 3, *([7] * 126))
    content = oid_content(longest)
    assert decode_oid(content, 0, len(content), "x") == longest
    with pytest.raises(BerError, match="129 arcs"):
        decode_oid(content + b"\x07", 0, len(content) + 1, "x")
    with pytest.raises(ValueError, match="2 to 128 arcs"):
        oid_content((*longest, 1))


@pytest.mark.parametrize(
    ("tag", "value"),
    [(Tag.INTEGER, 2**31), (Tag.COUNTER32, -1), (Tag.COUNTER64, 2**64), (Tag.IP_ADDRESS, b"\x01\x02\x03"),
     (Tag.OCTET_STRING, "text"), (Tag.OBJECT_IDENTIFIER, "1.3.6"), (Tag.NULL, 0), (Tag.GAUGE32, b"1")],
)  # fmt: skip
def test_encoder_refuses_values_that_do_not_suit_the_tag(tag: Tag, value: Any) -> None:
    with pytest.raises(ValueError, match=tag.name):
        encode_value(tag, value)


@pytest.mark.parametrize("oid", [(1,), (3, 1), (1, 40), (1, 3, -1), (1, 3, 2**32), (2, MAX_SUBID)])
def test_encoder_refuses_oids_outside_snmps_limits(oid: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="OID"):
        oid_content(oid)


@pytest.mark.parametrize("text", ["", "1.3.x", "1..3", "4.1"])
def test_parse_oid_refuses_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="OID"):
        parse_oid(text)


def test_long_lengths_and_integers() -> None:
    varbinds = (VarBind((1, 3), Tag.OCTET_STRING, b"x" * 70_000), VarBind((2, 999), Tag.COUNTER64, 2**64 - 1))
    big = Message(Version.V2C, b"c" * 300, PduType.RESPONSE, -(2**31), 2**31 - 1, 2**31 - 1, varbinds)
    assert decode_message(encode_message(big)) == big
    assert read_header(b"\x04\x82\x01\x00" + b"x" * 256, 0, 260, "x") == (4, 4, 260)
    assert decode_integer(b"\x00\x00\x01", 0, 3, "x") == 1  # padded by a lax agent: still the number
    assert decode_integer(b"\xff\x80", 0, 2, "x") == -128
