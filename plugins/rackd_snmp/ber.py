"""BER (X.690) for the ASN.1 subset SNMP uses: tag-length-value framing, INTEGER, OBJECT IDENTIFIER."""

from __future__ import annotations

import functools

Oid = tuple[int, ...]

MAX_SUBID = 2**32 - 1  # RFC 2578 §7.1.3: each sub-identifier fits 32 bits …
MAX_OID_LENGTH = 128  # … and an OID has at most 128 of them
_MAX_LENGTH_OCTETS = 4  # a 4 GiB value cannot arrive in a UDP datagram; more length octets is garbage


class BerError(ValueError):
    """Bytes that are not the BER expected; the message says what was wrong and at which byte."""


def encode_length(length: int) -> bytes:
    """Definite length octets: short form below 128, else long form (the only forms SNMP allows)."""
    if length < 0x80:
        return bytes((length,))
    octets = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(octets),)) + octets


def encode_tlv(tag: int, content: bytes) -> bytes:
    """One element: tag octet, length octets, content."""
    if len(content) < 0x80:  # the usual case, without building the length separately
        return bytes((tag, len(content))) + content
    return bytes((tag,)) + encode_length(len(content)) + content


def integer_content(value: int) -> bytes:
    """The minimal two's-complement content octets of an INTEGER (also of SNMP's unsigned types)."""
    return value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True)


def oid_content(oid: Oid) -> bytes:
    """The content octets of an OBJECT IDENTIFIER (first two arcs combined, base-128 sub-identifiers)."""
    if len(oid) < 2 or len(oid) > MAX_OID_LENGTH:
        raise ValueError(f"an OID has 2 to {MAX_OID_LENGTH} arcs, not {len(oid)}: {oid!r}")
    first, second = oid[0], oid[1]
    if first not in (0, 1, 2) or second < 0 or (first < 2 and second >= 40):
        raise ValueError(f"an OID starts 0.0 to 0.39, 1.0 to 1.39 or 2.x: {oid!r}")
    out = bytearray()
    for arc in (first * 40 + second, *oid[2:]):
        if arc < 0 or arc > MAX_SUBID:
            raise ValueError(f"OID arc {arc} outside 0..{MAX_SUBID}: {oid!r}")
        if arc < 0x80:
            out.append(arc)
            continue
        septets = []
        rest = arc
        while rest:
            septets.append(rest & 0x7F)
            rest >>= 7
        out += bytes(septet | 0x80 for septet in reversed(septets[1:]))
        out.append(septets[0])
    return bytes(out)


@functools.lru_cache(maxsize=4096)  # the profiles' column OIDs, parsed on every walk
def parse_oid(text: str) -> Oid:
    """A dotted OID ("1.3.6.1.2.1.1.2.0", a leading dot allowed) as a tuple, checked for encodability."""
    try:
        oid = tuple(int(part) for part in text.strip().strip(".").split("."))
    except ValueError:
        raise ValueError(f"not a dotted OID: {text!r}") from None
    oid_content(oid)  # the same limits as on the wire
    return oid


def read_header(data: bytes, pos: int, end: int, what: str, expect: int = -1) -> tuple[int, int, int]:
    """(tag, content start, content end) of the element at `pos`, whose bytes must end by `end`.

    With `expect`, another tag is refused before the length is looked at: a wrong tag is the clearer diagnosis.
    """
    if end - pos < 2:
        if expect >= 0 and end > pos and data[pos] != expect:
            raise BerError(f"wrong tag: {what} at byte {pos} has tag 0x{data[pos]:02x}, expected 0x{expect:02x}")
        raise BerError(f"truncated: {what} at byte {pos} needs a tag and a length, {max(0, end - pos)} bytes left")
    tag = data[pos]
    if expect >= 0 and tag != expect:
        raise BerError(f"wrong tag: {what} at byte {pos} has tag 0x{tag:02x}, expected 0x{expect:02x}")
    length = data[pos + 1]
    start = pos + 2
    if length >= 0x80:
        count = length & 0x7F
        if count == 0:
            raise BerError(f"{what} at byte {pos} has an indefinite length, which SNMP does not allow")
        if count > _MAX_LENGTH_OCTETS:
            raise BerError(f"{what} at byte {pos} has {count} length octets (at most {_MAX_LENGTH_OCTETS})")
        if end - start < count:
            raise BerError(f"truncated: the length of {what} at byte {pos} needs {count} octets")
        length = int.from_bytes(data[start : start + count], "big")
        start += count
    if length > end - start:
        raise BerError(
            f"length overflow: {what} at byte {pos} declares {length} bytes, only {end - start} remain"
        )
    return tag, start, start + length


def decode_integer(data: bytes, start: int, end: int, what: str) -> int:
    """A two's-complement INTEGER from its content octets (non-minimal encodings are accepted, as agents pad)."""
    if end == start + 1:  # the common case of small values, without slicing
        value = data[start]
        return value - 0x100 if value & 0x80 else value
    if end <= start:
        raise BerError(f"{what} at byte {start} is an INTEGER with no content octets")
    return int.from_bytes(data[start:end], "big", signed=True)


def decode_oid(data: bytes, start: int, end: int, what: str) -> Oid:
    """An OBJECT IDENTIFIER from its content octets, within SNMP's limits (128 arcs of 32 bits)."""
    if end <= start:
        raise BerError(f"{what} at byte {start} is an OBJECT IDENTIFIER with no content octets")
    arcs: list[int] = []
    arc = 0
    fresh = True
    for pos in range(start, end):
        octet = data[pos]
        if fresh and octet == 0x80:
            raise BerError(f"{what}: OBJECT IDENTIFIER sub-identifier at byte {pos} starts with a padding octet 0x80")
        arc = (arc << 7) | (octet & 0x7F)
        if octet & 0x80:
            fresh = False
            continue
        arcs.append(arc)
        arc = 0
        fresh = True
    if not fresh:
        raise BerError(f"{what}: OBJECT IDENTIFIER at byte {start} ends inside a sub-identifier")
    if len(arcs) >= MAX_OID_LENGTH:  # the first sub-identifier holds two arcs
        raise BerError(f"{what}: OBJECT IDENTIFIER at byte {start} has {len(arcs) + 1} arcs (at most {MAX_OID_LENGTH})")
    if max(arcs) > MAX_SUBID:
        raise BerError(f"{what}: OBJECT IDENTIFIER at byte {start} has a sub-identifier above 2^32-1")
    first = arcs[0]
    if first < 80:
        arcs[0:1] = divmod(first, 40)
    else:
        arcs[0:1] = (2, first - 80)
    return tuple(arcs)
