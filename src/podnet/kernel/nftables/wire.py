"""nf_tables on the wire: netlink attributes, the kernel's numbers, and how a
set's keys and values are laid out (the data types nft lists them by).

Shared by batch.py (objects and elements into messages), expressions.py (rules)
and userdata.py (what nft keeps beside a set or a rule to print it); the framing
of attributes is nlmsg.py's. The numbers are the kernel's uapi
(linux/netfilter/nf_tables.h) and nft's data type ids.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter

from podnet.errors import KernelError
from podnet.kernel.nftables.objects import Set
from podnet.kernel.nftables.rules import Expr, Field, Numgen, Verdict
from podnet.kernel.nlmsg import attr, nest, string


class Unsupported(Exception):
    """Something this encoder does not build; nft's parser takes the transaction."""


# netlink and nfnetlink
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE, NLM_F_APPEND = 0x1, 0x4, 0x200, 0x400, 0x800
NFNL_SUBSYS_NFTABLES = 10
BATCH_BEGIN, BATCH_END = 16, 17
FAMILIES = {"inet": 1, "ip": 2, "arp": 3, "netdev": 5, "bridge": 7, "ip6": 10}
HOOKS = {"prerouting": 0, "input": 1, "forward": 2, "output": 3, "postrouting": 4, "ingress": 0}

# nf_tables messages
(NEWTABLE, DELTABLE, NEWCHAIN, DELCHAIN, NEWRULE, DELRULE, NEWSET, DELSET, NEWSETELEM, DELSETELEM) = (
    0, 2, 3, 5, 6, 8, 9, 11, 12, 14)
DESTROY = {DELTABLE: 26, DELCHAIN: 27, DELSET: 29, DELSETELEM: 30}  # kernel 6.3+: delete, missing or not

# verdict codes, set flags, registers
VERDICTS = {"drop": 0, "accept": 1, "continue": -1, "jump": -3, "goto": -4, "return": -5}
SET_ANONYMOUS, SET_CONSTANT, SET_MAP = 0x1, 0x2, 0x8
SET_FLAGS = {"constant": SET_CONSTANT, "timeout": 0x10, "dynamic": 0x20}
DATA_VERDICT = 0xFFFFFF00
REG_VERDICT, REG32 = 0, 8  # the 32-bit registers are 8..23
ELEMENTS_PER_NEST = 60_000  # bytes: an attribute's length is 16 bits

KEY, VALUE = itemgetter(1), itemgetter(2)


def value_data(kind: int, data: bytes) -> bytes:
    """NFTA_DATA_VALUE inside attribute `kind`."""
    return nest(kind, attr(1, data))


def verdict_data(kind: int, verdict: Verdict) -> bytes:
    try:
        code = VERDICTS[verdict.kind]
    except KeyError:
        raise Unsupported(f"verdict {verdict.kind}") from None
    chain = string(2, verdict.chain) if verdict.chain else b""
    return nest(kind, nest(2, attr(1, struct.pack(">i", code)), chain))


# Data types: how a value of each is laid out, and the id nft lists it by.

PROTOCOL_NUMBERS = {"tcp": 6, "udp": 17, "sctp": 132, "icmp": 1, "ipv6-icmp": 58, "icmpv6": 58}
ICMPV6_TYPES = {"mld-listener-query": 130, "mld-listener-report": 131, "mld-listener-done": 132,
                "mld-listener-reduction": 132, "nd-router-solicit": 133, "nd-router-advert": 134,
                "nd-neighbor-solicit": 135, "nd-neighbor-advert": 136, "nd-redirect": 137, "mld2-listener-report": 143,
                "echo-request": 128, "echo-reply": 129, "destination-unreachable": 1, "packet-too-big": 2,
                "time-exceeded": 3, "parameter-problem": 4}


def _protocol(text: str) -> bytes:
    return bytes([PROTOCOL_NUMBERS.get(text) or int(text)])


def _icmpv6_type(text: str) -> bytes:
    return bytes([ICMPV6_TYPES[text] if text in ICMPV6_TYPES else int(text)])


def port_bytes(text: str) -> bytes:
    return struct.pack(">H", int(text))


def _ipv6(text: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6, text)


def _host32(text: str) -> bytes:
    return struct.pack("=I", int(text, 0))


HOST_ORDER, NETWORK_ORDER = 1, 2  # nft's byteorder, kept in a set's user data so that it lists keys right


@dataclass(frozen=True)
class DataType:
    name: str
    id: int
    size: int
    encode: Callable[[str], bytes]
    byteorder: int = NETWORK_ORDER


TYPES = {t.name: t for t in (
    DataType("ipv4_addr", 7, 4, socket.inet_aton),
    DataType("ipv6_addr", 8, 16, _ipv6),
    DataType("inet_proto", 12, 1, _protocol),
    DataType("inet_service", 13, 2, port_bytes),
    DataType("icmpv6_type", 29, 1, _icmpv6_type),
    DataType("mark", 19, 4, _host32, HOST_ORDER),
    DataType("integer", 4, 4, _host32, HOST_ORDER),  # what numgen gives: 32 bits, host order
)}

# a field: how it is loaded into a register (expression name and attributes), and its type
PAYLOAD_NETWORK, PAYLOAD_TRANSPORT = 1, 2
FIELDS: dict[str, tuple[str, tuple[tuple[int, int], ...], str]] = {
    "ip saddr": ("payload", ((2, PAYLOAD_NETWORK), (3, 12), (4, 4)), "ipv4_addr"),
    "ip daddr": ("payload", ((2, PAYLOAD_NETWORK), (3, 16), (4, 4)), "ipv4_addr"),
    "ip6 saddr": ("payload", ((2, PAYLOAD_NETWORK), (3, 8), (4, 16)), "ipv6_addr"),
    "ip6 daddr": ("payload", ((2, PAYLOAD_NETWORK), (3, 24), (4, 16)), "ipv6_addr"),
    "th dport": ("payload", ((2, PAYLOAD_TRANSPORT), (3, 2), (4, 2)), "inet_service"),
    "th sport": ("payload", ((2, PAYLOAD_TRANSPORT), (3, 0), (4, 2)), "inet_service"),
    "icmpv6 type": ("payload", ((2, PAYLOAD_TRANSPORT), (3, 0), (4, 1)), "icmpv6_type"),
    "meta l4proto": ("meta", ((2, 16),), "inet_proto"),
    "meta mark": ("meta", ((2, 3),), "mark"),
    "ct status": ("ct", ((2, 2),), "ct_status"),
    "ct state": ("ct", ((2, 0),), "ct_state"),
    "fib daddr type": ("fib", ((2, 3), (3, 2)), "fib_addrtype"),  # result ADDRTYPE, flag DADDR
}
FLAG_VALUES = {"ct_status": {"confirmed": 0x8, "dnat": 0x20, "snat": 0x10},
                "ct_state": {"invalid": 1, "established": 2, "related": 4, "new": 8, "untracked": 64}}
ADDRESS_TYPES = {"unicast": 1, "local": 2, "broadcast": 3, "anycast": 4, "multicast": 5}


def field_type(expr: Expr) -> DataType:
    if isinstance(expr, Numgen):
        return TYPES["integer"]
    if isinstance(expr, Field) and expr.name in FIELDS and FIELDS[expr.name][2] in TYPES:
        return TYPES[FIELDS[expr.name][2]]
    raise Unsupported(f"a set keyed by {expr.text()}")


@lru_cache(maxsize=None)
def key_types(declared: str, typeof: bool) -> tuple[DataType, ...]:
    """A set's key (or value) types, from `type a . b` or `typeof <expr> . <expr>`."""
    parts = [part.strip() for part in declared.split(" . ")]
    if not typeof:
        try:
            return tuple(TYPES[part] for part in parts)
        except KeyError as missing:
            raise Unsupported(f"data type {missing}") from None
    return tuple(field_type(Numgen(int(part.rsplit(" ", 1)[1])) if part.startswith("numgen random mod ")
                             else Field(part)) for part in parts)


def type_id(types: Sequence[DataType]) -> int:
    ident = 0
    for data_type in types:
        ident = ident << 6 | data_type.id  # nft's concatenated type: six bits per member
    return ident


def width(types: Sequence[DataType]) -> int:
    """Bytes a key takes in the registers: a member of a concatenation is padded to 32 bits."""
    if len(types) == 1:
        return types[0].size
    return sum((t.size + 3) & ~3 for t in types)


class Packer(dict):  # type: ignore[type-arg]
    """A key's (or value's) members -> their bytes, each member padded to 32 bits in
    a concatenation. Each distinct tuple is packed once per process, so a sync's
    hundred thousand elements are mostly dictionary hits."""

    def __init__(self, types: tuple[DataType, ...]) -> None:
        super().__init__()
        self.types = types
        self.single = len(types) == 1

    def __missing__(self, members: tuple[str, ...]) -> bytes:
        if len(members) != len(self.types):
            raise KernelError(f"nft: {' . '.join(members)} has {len(members)} members where the set's key has "
                              f"{len(self.types)}")
        packed = b""
        for data_type, member in zip(self.types, members):
            try:
                encoded = data_type.encode(member)
            except (OSError, ValueError, struct.error):
                raise KernelError(f"nft: {member!r} is not a valid {data_type.name}") from None
            packed += encoded if self.single else encoded + b"\0" * (-len(encoded) % 4)
        packed += b"\0" * (-len(packed) % 4)  # the attribute's own padding
        if len(self) > 1 << 20:
            self.clear()
        self[members] = packed
        return packed


@lru_cache(maxsize=None)
def packer(declared: str, typeof: bool) -> Packer:
    return Packer(key_types(declared, typeof))


def value_types(s: Set) -> tuple[DataType, ...]:
    if s.value == "verdict":
        return ()
    return key_types(s.value or "", s.typeof)
