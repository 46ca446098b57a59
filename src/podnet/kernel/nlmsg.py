"""Netlink messages as bytes: headers, attributes, and the answers in a datagram.

Shared by the three sockets podnet speaks on: route netlink (rtnl.py, whose
messages pyroute2 encodes), nf_tables batches (nftables/) and conntrack
(conntrack.py), which pack their own for speed.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

NETLINK_NETFILTER = 12
HEADER = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
NFNL_HEADER = struct.Struct("=IHHIIBBH")  # the same, then nfgenmsg (family, version, resource id)
NLA = struct.Struct("=HH")  # an attribute's length and type
NLA_F_NESTED = 0x8000
NLMSG_ERROR, NLMSG_DONE = 2, 3
_NLMSGERR_ATTR_MSG = 1
_NLM_F_CAPPED, _NLM_F_ACK_TLVS = 0x100, 0x200


def attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return NLA.pack(length, kind) + payload + b"\0" * (-length % 4)


def nest(kind: int, *attrs: bytes) -> bytes:
    return attr(kind | NLA_F_NESTED, b"".join(attrs))


def string(kind: int, text: str) -> bytes:
    return attr(kind, text.encode() + b"\0")


def be32(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack(">I", value & 0xFFFFFFFF))


def be64(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack(">Q", value))


def attributes(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(type, payload) of each attribute, flags masked off the type."""
    offset = 0
    while offset + 4 <= len(data):
        length, kind = NLA.unpack_from(data, offset)
        if length < 4:
            return
        yield kind & 0x3FFF, data[offset + 4: offset + length]
        offset += (length + 3) & ~3


def messages(data: bytes) -> Iterator[tuple[int, int, int, bytes]]:
    """(type, flags, sequence, the whole message) of each message in a datagram."""
    offset = 0
    while offset + HEADER.size <= len(data):
        length, kind, flags, sequence, _ = HEADER.unpack_from(data, offset)
        if length < HEADER.size:
            return
        yield kind, flags, sequence, data[offset: offset + length]
        offset += (length + 3) & ~3


def error_code(message: bytes) -> int:
    """An NLMSG_ERROR's (or NLMSG_DONE's) errno, positive; 0 for an ack."""
    return -struct.unpack_from("=i", message, HEADER.size)[0] if len(message) >= HEADER.size + 4 else 0


def extended_ack_message(message: bytes, flags: int) -> str:
    """The kernel's own words for a refusal, from the TLVs after the echoed request."""
    if not flags & _NLM_F_ACK_TLVS:
        return ""
    offset = HEADER.size + 4
    if flags & _NLM_F_CAPPED:
        offset += HEADER.size
    else:
        (echoed_length,) = struct.unpack_from("=I", message, offset)
        offset += echoed_length
    for kind, payload in attributes(message[offset:]):
        if kind == _NLMSGERR_ATTR_MSG:
            return payload.split(b"\0", 1)[0].decode(errors="replace")
    return ""
