"""A rule's statements as nf_tables expressions: matches, verdicts and the
statements podnet writes (DNAT from a map, masquerade, reject, mark, set
updates), built from registers.py's loads, comparisons and lookups. What is not
here raises Unsupported."""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Iterator
from typing import TYPE_CHECKING

from podnet.kernel.nftables.objects import Element, Set
from podnet.kernel.nftables.registers import Expressions, host_order
from podnet.kernel.nftables.rules import (
    AnonSet, Concat, Dnat, Field, Limit, Log, Lookup, Masked, Masquerade, Match, Reject, SetMark, SetRef, SetTrace,
    UpdateSet, Verdict, VerdictMap, split_target,
)
from podnet.kernel.nftables.wire import (
    ADDRESS_TYPES, FAMILIES, FLAG_VALUES, REG32, REG_VERDICT, TYPES, DataType, Unsupported, port_bytes, value_data,
    verdict_data,
)
from podnet.kernel.nlmsg import attr, be32, be64, string

if TYPE_CHECKING:
    from podnet.kernel.nftables.batch import Encoder

_PORT_UNREACHABLE = {"ip": 3, "ip6": 4}  # ICMP's code, ICMPv6's code: what nft's plain `reject` sends
_ADDRESS_FAMILIES = {"ip": socket.AF_INET, "ip6": socket.AF_INET6}


class RuleCompiler(Expressions):
    """A rule's statements to expressions, in order; each statement is encoded
    once per transaction and its expressions repeated where it recurs."""

    def __init__(self, encoder: Encoder) -> None:
        super().__init__(encoder)
        self.family_checked = encoder.table.family == "ip"

    def depend_on_ipv4(self, statement: object) -> None:
        """In an inet table, `ip saddr` first needs `meta nfproto ipv4`, as nft adds
        for itself: offset 12 of an IPv6 header is something else."""
        if self.family_checked or not any(name.startswith("ip ") for name in _fields(statement)):
            return
        if self.encoder.table.family != "inet":
            raise Unsupported(f"IPv4 fields in a {self.encoder.table.family} table")
        self.expr("meta", be32(1, REG32), be32(2, 15))  # nfproto
        self.cmp(REG32, bytes([2]), negate=False)
        self.family_checked = True

    def statement(self, s: object) -> None:
        """Encoded once per transaction: a policy table repeats the same set
        lookups and verdicts over thousands of rules. A statement that declares an
        inline set is encoded each time (each has a set of its own)."""
        key = (s, self.family_checked)
        known = self.encoder.statements.get(key)
        if known is not None:
            self.exprs.extend(known[0])
            self.family_checked = known[1]
            return
        start, sets_declared = len(self.exprs), self.encoder.sets_declared
        self._encode(s)
        if self.encoder.sets_declared == sets_declared:
            self.encoder.statements[key] = (tuple(self.exprs[start:]), self.family_checked)

    def _encode(self, s: object) -> None:
        self.depend_on_ipv4(s)
        if isinstance(s, Match):
            self.match(s)
        elif isinstance(s, Verdict):
            self.expr("immediate", be32(1, REG_VERDICT), verdict_data(2, s))
        elif isinstance(s, VerdictMap):
            self.load(s.key)
            if isinstance(s.map, SetRef):
                self.lookup(s.map.name, REG32, out=REG_VERDICT)
            else:
                inline = Set("", s.key.text(), "verdict", typeof=True)
                name, set_id = self.encoder.anonymous_set(inline, [Element("", (k,), v) for k, v in s.map])
                self.lookup(name, REG32, out=REG_VERDICT, set_id=set_id)
        elif isinstance(s, Dnat):
            self.dnat(s)
        elif isinstance(s, Masquerade):
            self.expr("masq", *([be32(1, 0x10)] if s.fully_random else []))  # NF_NAT_RANGE_PROTO_RANDOM_FULLY
        elif isinstance(s, Reject):
            family = self.encoder.table.family
            if family not in _PORT_UNREACHABLE:
                raise Unsupported(f"reject in the {family} family")
            self.expr("reject", be32(1, 1) if s.tcp_reset else be32(1, 0) + attr(2, bytes([_PORT_UNREACHABLE[family]])))
        elif isinstance(s, SetMark):
            self.load(Field("meta mark"))
            if s.op not in ("|", "^"):
                raise Unsupported(f"meta mark set with {s.op}")
            kept = ~s.value & 0xFFFFFFFF if s.op == "|" else 0xFFFFFFFF  # | clears the bits, then sets them
            self.bitwise(REG32, host_order(kept), host_order(s.value))
            self.expr("meta", be32(2, 3), be32(3, REG32))  # key mark, from the register
        elif isinstance(s, SetTrace):
            self.expr("immediate", be32(1, REG32), value_data(2, b"\x01"))
            self.expr("meta", be32(2, 12), be32(3, REG32))  # key nftrace, from the register
        elif isinstance(s, Limit):  # packets per second
            self.expr("limit", be64(1, s.per_second), be64(2, 1), be32(3, s.burst), be32(4, 0), be32(5, 0))
        elif isinstance(s, Log):
            self.expr("log", attr(1, struct.pack(">H", s.group)), string(2, s.prefix))
        elif isinstance(s, UpdateSet):
            self.load(s.key)
            self.expr("dynset", string(1, s.set), be32(3, 1), be32(4, REG32))  # op update
        else:
            raise Unsupported(type(s).__name__)

    def match(self, m: Match) -> None:
        types = self.load(m.left)
        if isinstance(m.right, SetRef):
            self.lookup(m.right.name, REG32, negate=m.negate)
            return
        if len(types) != 1:
            raise Unsupported(f"comparing {m.left.text()} with {m.right!r}")
        (t,) = types
        if isinstance(m.right, AnonSet):
            if not isinstance(t, DataType) or any("/" in item or "-" in item for item in m.right.items):
                raise Unsupported("an inline set of ranges")
            inline = Set("", m.left.text(), typeof=True)
            name, set_id = self.encoder.anonymous_set(inline, [Element("", (item,)) for item in m.right.items])
            self.lookup(name, REG32, negate=m.negate, set_id=set_id)
            return
        if isinstance(t, str):  # flags and named constants
            if t in FLAG_VALUES and isinstance(m.right, str):
                flag = 0
                for name in m.right.split(","):  # `established,related`: any of them
                    flag |= FLAG_VALUES[t][name]
                if m.negate:  # nft 1.0.6 compares the whole value here, not the flag: so do we
                    self.cmp(REG32, struct.pack("=I", flag), negate=True)
                    return
                self.bitwise(REG32, host_order(flag), host_order(0))
                self.cmp(REG32, b"\0" * 4, negate=True)
                return
            if t == "fib_addrtype" and isinstance(m.right, str):
                self.cmp(REG32, struct.pack("=I", ADDRESS_TYPES[m.right]), m.negate)
                return
            if isinstance(m.right, int):  # `ct status & 0x8 == 0`: the bits were masked as they were loaded
                self.cmp(REG32, host_order(m.right), m.negate)
                return
            raise Unsupported(f"{m.left.text()} {m.right}")
        right = m.right
        if isinstance(right, int):
            self.cmp(REG32, host_order(right, t.size), m.negate)
            return
        if isinstance(right, str) and right.count("-") == 1 and t.id == TYPES["inet_service"].id:
            low, high = right.split("-")  # NFT_RANGE_EQ: network order compares as the numbers do
            if m.negate:
                raise Unsupported(f"{m.left.text()} != {right}")
            self.expr("range", be32(1, REG32), be32(2, 0), value_data(3, t.encode(low)), value_data(4, t.encode(high)))
            return
        if isinstance(right, str) and "/" in right:
            if t.id not in (TYPES["ipv4_addr"].id, TYPES["ipv6_addr"].id):
                raise Unsupported(f"a prefix of {m.left.text()}")
            network = ipaddress.ip_network(right, strict=False)
            mask = network.netmask.packed
            self.bitwise(REG32, mask, bytes(len(mask)))
            self.cmp(REG32, network.network_address.packed, m.negate)
            return
        if isinstance(right, str):
            self.cmp(REG32, t.encode(right), m.negate)
            return
        raise Unsupported(f"matching {right!r}")

    def dnat(self, d: Dnat) -> None:
        if d.family not in _ADDRESS_FAMILIES:
            raise Unsupported(f"dnat {d.family}")
        af = _ADDRESS_FAMILIES[d.family]
        port_register = REG32 + (4 if af == socket.AF_INET else 16) // 4  # the port follows the address
        port = ""
        if isinstance(d.to, Lookup):
            self.load(d.to.key)
            self.lookup(d.to.map, REG32, out=REG32)
        else:
            address, port = split_target(d.to)
            self.expr("immediate", be32(1, REG32), value_data(2, socket.inet_pton(af, address)))
            if port:
                self.expr("immediate", be32(1, port_register), value_data(2, port_bytes(port)))
        attrs = [be32(1, 1), be32(2, FAMILIES[d.family]), be32(3, REG32)]  # type dnat, family, address register
        if isinstance(d.to, Lookup) or port:
            attrs.append(be32(5, port_register))
        self.expr("nat", *attrs)


def _fields(node: object) -> Iterator[str]:
    """The packet fields a statement reads."""
    if isinstance(node, Field):
        yield node.name
    elif isinstance(node, Concat):
        for part in node.parts:
            yield from _fields(part)
    elif isinstance(node, Masked):
        yield node.field.name
    elif isinstance(node, Match):
        yield from _fields(node.left)
    elif isinstance(node, (VerdictMap, UpdateSet)):
        yield from _fields(node.key)
    elif isinstance(node, Dnat) and isinstance(node.to, Lookup):
        yield from _fields(node.to.key)
