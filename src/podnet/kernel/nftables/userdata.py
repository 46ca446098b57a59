"""What nft keeps beside a set, a chain or a rule (their "user data"), so that
`nft list` prints what an nft script would have made: a set's byte orders and
typeof declaration, and comments."""

from __future__ import annotations

import struct
from collections.abc import Sequence

from podnet.kernel.nftables.objects import Set
from podnet.kernel.nftables.wire import DataType, Unsupported, value_types

# How nft remembers a typeof declaration (in the set's user data), so that `nft list`
# prints `typeof ip daddr . numgen random mod 1` and can split keys whose members
# (numgen's integer) have no size of their own. Ids are nft's expression types,
# protocol descriptions and header fields.
_EXPR_CONCAT, _EXPR_PAYLOAD, _EXPR_META, _EXPR_NUMGEN = 13, 7, 9, 23
_TYPEOF_EXPRS = {
    "ip saddr": (_EXPR_PAYLOAD, ((0, 12), (1, 11))),  # PROTO_DESC_IP, IPHDR_SADDR
    "ip daddr": (_EXPR_PAYLOAD, ((0, 12), (1, 12))),
    "ip6 saddr": (_EXPR_PAYLOAD, ((0, 13), (1, 8))),  # PROTO_DESC_IP6, IP6HDR_SADDR
    "ip6 daddr": (_EXPR_PAYLOAD, ((0, 13), (1, 9))),
    "th dport": (_EXPR_PAYLOAD, ((0, 11), (1, 2))),  # PROTO_DESC_TH, THDR_DPORT
    "meta l4proto": (_EXPR_META, ((0, 16),)),
    "meta mark": (_EXPR_META, ((0, 3),)),
}


def _tlv(kind: int, value: bytes) -> bytes:
    return bytes([kind, len(value)]) + value


def _u32(value: int) -> bytes:
    return struct.pack("=I", value)


def _typeof_expr(text: str) -> tuple[int, bytes]:
    if text.startswith("numgen random mod "):
        modulus = int(text.rsplit(" ", 1)[1])
        return _EXPR_NUMGEN, _tlv(0, _u32(1)) + _tlv(1, _u32(modulus)) + _tlv(2, _u32(0))
    try:
        kind, attrs = _TYPEOF_EXPRS[text]
    except KeyError:
        raise Unsupported(f"typeof {text}") from None
    return kind, b"".join(_tlv(k, _u32(v)) for k, v in attrs)


def _typeof(declared: str) -> bytes:
    parts = [part.strip() for part in declared.split(" . ")]
    if len(parts) == 1:
        kind, data = _typeof_expr(parts[0])
        return _tlv(0, _u32(kind)) + _tlv(1, data)
    members = b""
    for i, part in enumerate(parts):
        kind, data = _typeof_expr(part)
        members += _tlv(i, _tlv(0, _u32(kind)) + _tlv(1, data))
    return _tlv(0, _u32(_EXPR_CONCAT)) + _tlv(1, members)


def _byteorder(types: Sequence[DataType]) -> bytes:
    return _u32(types[0].byteorder if len(types) == 1 else 0)


def set_udata(s: Set, keys: Sequence[DataType], anonymous: bool) -> bytes:
    """Byte orders (nft lists a key by them) and, for a named typeof set, its declaration."""
    values = value_types(s) if s.is_map else ()
    udata = _tlv(0, _byteorder(keys)) + (_tlv(1, _byteorder(values)) if values else b"")
    if s.typeof and not anonymous:
        udata += _tlv(3, _typeof(s.key))
        if values:
            udata += _tlv(4, _typeof(s.value or ""))
    return udata


def comment_udata(text: str) -> bytes:
    """libnftnl's user data: a comment is TLV type 0, its length a byte."""
    data = text.encode()[:254] + b"\0"
    return bytes([0, len(data)]) + data
