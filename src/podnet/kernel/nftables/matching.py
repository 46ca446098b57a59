"""What a rule's expressions say of one packet in the Fake, for the tracer
(tracer.py): each field's value (a random pick takes every value it can),
whether a match holds, and what the Fake's sets and maps hold for a key.
The tracer decides where the packet goes; this only answers its questions.
"""

from __future__ import annotations

import ipaddress
import itertools
from dataclasses import dataclass, replace

from podnet.kernel.nftables.fake import Fake
from podnet.kernel.nftables.objects import Table
from podnet.kernel.nftables.rules import (AnonSet, Concat, Dnat, Expr, Field, Lookup, Masked, Match, Numgen, Rule,
                                          SetRef, Statement, Verdict, VerdictMap, target)

@dataclass(frozen=True)
class Packet:
    source: str
    destination: str
    protocol: str = "tcp"
    port: int = 0  # destination port
    ct_state: str = "new"  # new, or established (NAT chains are skipped)
    iifname: str = ""
    oifname: str = ""
    mark: int = 0


@dataclass(frozen=True)
class State:
    """A packet as one walk has changed it so far: its destination after DNAT,
    its mark, whether it was masqueraded, and the rules it hit."""

    packet: Packet
    destination: str
    port: int
    mark: int
    dnat: bool = False
    masqueraded: bool = False
    hits: tuple[str, ...] = ()

    def hit(self, where: str, rule: Rule) -> State:
        return replace(self, hits=(*self.hits, f"{where}: {rule.text()}"))


@dataclass(frozen=True)
class Matcher:
    """`local` is the node's own addresses (where `fib daddr type local` is true)."""

    nft: Fake
    local: frozenset[str]

    def is_local(self, address: str) -> bool:
        return address in self.local or ipaddress.ip_address(address).is_loopback  # 127.0.0.0/8, ::1

    def matches(self, table: Table, match: Match, state: State) -> bool:
        keys = self.keys(match.left, state)
        if not keys:
            return False  # a field of the other family: the rule does not apply
        (key,) = keys
        right = match.right
        if isinstance(right, SetRef):
            found = key in self.nft.tables[table].elements[right.name]
        elif isinstance(right, AnonSet):
            found = any(_equal(key, item) for item in right.items)
        else:
            found = _equal(key, str(right))
        return found != match.negate

    def misses(self, table: Table, statement: Statement, state: State) -> bool:
        """A lookup that finds no element ends its rule as a failed match does."""
        if isinstance(statement, VerdictMap):
            return not any(self.map_verdicts(table, statement, state))
        if isinstance(statement, Dnat) and isinstance(statement.to, Lookup):
            return not self.dnat_targets(table, statement, state)
        return False

    def map_verdicts(self, table: Table, statement: VerdictMap, state: State) -> list[Verdict | None]:
        """The verdict for each key the packet can have (None where the map has no element)."""
        return [self._lookup_verdict(table, statement.map, key) for key in self.keys(statement.key, state)]

    def dnat_targets(self, table: Table, dnat: Dnat, state: State) -> list[str]:
        """Every `address[:port]` the packet can be sent to; none when the map lacks its key."""
        if isinstance(dnat.to, str):
            return [dnat.to]
        lookup = dnat.to
        return [target for key in self.keys(lookup.key, state) if (target := self._lookup_value(table, lookup, key))]

    def _lookup_verdict(self, table: Table, where: SetRef | tuple[tuple[str, Verdict], ...],
                        key: tuple[str, ...]) -> Verdict | None:
        if isinstance(where, SetRef):
            element = self.nft.tables[table].elements[where.name].get(key)
            return element.value if element is not None and isinstance(element.value, Verdict) else None
        return dict(where).get(" . ".join(key))

    def _lookup_value(self, table: Table, lookup: Lookup, key: tuple[str, ...]) -> str | None:
        element = self.nft.tables[table].elements[lookup.map].get(key)
        if element is None or not isinstance(element.value, tuple):
            return None
        address, *port = element.value
        return target(address, port[0]) if port else address

    def keys(self, expr: Expr, state: State) -> list[tuple[str, ...]]:
        """Every value the expression can take (a random pick takes each)."""
        if isinstance(expr, Concat):
            return [sum(parts, ()) for parts in itertools.product(*(self.keys(p, state) for p in expr.parts))]
        if isinstance(expr, Numgen):
            return [(str(i),) for i in range(expr.modulus)]
        if isinstance(expr, Masked):
            return [(str(int(self._field(expr.field, state) or 0) & expr.mask),)]
        value = self._field(expr, state)
        return [(value,)] if value is not None else []

    def _field(self, field_: Field, state: State) -> str | None:
        packet = state.packet
        version = ipaddress.ip_address(state.destination).version
        values = {
            "ip saddr": packet.source if version == 4 else None,
            "ip daddr": state.destination if version == 4 else None,
            "ip6 saddr": packet.source if version == 6 else None,
            "ip6 daddr": state.destination if version == 6 else None,
            "meta l4proto": packet.protocol,
            "meta nfproto": f"ipv{version}",
            "th dport": str(state.port),
            "th sport": None,  # a packet here has no source port: rules on it do not apply
            "fib daddr type": "local" if self.is_local(state.destination) else "unicast",
            "ct status": "dnat" if state.dnat else "",
            "ct state": packet.ct_state,
            "meta mark": str(state.mark),
            "iifname": packet.iifname,
            "oifname": packet.oifname,
        }
        if field_.name not in values:
            raise TypeError(f"the tracer does not know the field {field_.name!r}")
        return values[field_.name]


def _equal(key: tuple[str, ...], value: str) -> bool:
    """A value (a quoted name too), an address in a prefix, a number in a range
    (`79-80`), or a flag among flags (`established,related`)."""
    (have,) = key if len(key) == 1 else (" . ".join(key),)
    value = value.strip('"')
    low, dash, high = value.partition("-")
    if dash and low.isdigit() and high.isdigit() and have.isdigit():
        return int(low) <= int(have) <= int(high)
    if "," in value:
        return any(_equal(key, flag) for flag in value.split(","))
    if "/" in value and have:
        try:
            return ipaddress.ip_address(have) in ipaddress.ip_network(value, strict=False)
        except ValueError:
            return False
    if value.startswith("0x") and have.isdigit():
        return int(have) == int(value, 16)
    return have == value or (bool(have) and value in have.split(","))
