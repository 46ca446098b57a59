"""Protocol Buffers' wire format, read: the fields of one message as (number,
wire type, value). A varint is an int, a fixed-width value its raw bytes and a
length-delimited one its bytes; what they mean is for the schema to say.

Hand-written rather than taken from the `protobuf` package, which decodes only
through compiled or built descriptors: here the schema is data (schema.json),
and reading it needs a few lines, not a dependency."""

from __future__ import annotations

from collections.abc import Iterator

VARINT, FIXED64, BYTES, FIXED32 = 0, 1, 2, 5


class WireError(ValueError):
    pass


def varint(data: bytes, at: int) -> tuple[int, int]:
    """The varint at `at`, and where the next thing starts."""
    value = shift = 0
    while True:
        if at >= len(data):
            raise WireError("a varint runs past the end")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7
        if shift > 63:
            raise WireError("a varint is longer than ten bytes")


def fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    at = 0
    while at < len(data):
        key, at = varint(data, at)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise WireError("field number 0")
        if wire_type == VARINT:
            value, at = varint(data, at)
            yield number, wire_type, value
        elif wire_type in (FIXED64, FIXED32):
            width = 8 if wire_type == FIXED64 else 4
            if at + width > len(data):
                raise WireError("a fixed-width value runs past the end")
            yield number, wire_type, data[at:at + width]
            at += width
        elif wire_type == BYTES:
            length, at = varint(data, at)
            if at + length > len(data):
                raise WireError("a length-delimited field runs past the end")
            yield number, wire_type, data[at:at + length]
            at += length
        else:
            raise WireError(f"wire type {wire_type} (groups are not used by Kubernetes)")


def packed_varints(data: bytes) -> list[int]:
    values, at = [], 0
    while at < len(data):
        value, at = varint(data, at)
        values.append(value)
    return values


def encode_varint(value: int) -> bytes:
    out = bytearray()
    value &= (1 << 64) - 1  # a negative int64 as ten bytes, as protobuf writes it
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def encode_field(number: int, value: int | bytes) -> bytes:
    """A varint field for an int, a length-delimited one for bytes."""
    if isinstance(value, int):
        return encode_varint(number << 3 | VARINT) + encode_varint(value)
    return encode_varint(number << 3 | BYTES) + encode_varint(len(value)) + value


def encode_double(number: int, value: float) -> bytes:
    import struct

    return encode_varint(number << 3 | FIXED64) + struct.pack("<d", value)
