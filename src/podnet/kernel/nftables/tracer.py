"""Walk a packet through the Fake's rules, as kube-proxy's tests walk theirs.

A packet goes through the hooks of its path (arriving: prerouting, then input
or forward, then postrouting; sent by the node: output, postrouting), and at
each hook through every base chain on it, lowest priority first. Jumps, gotos,
verdict maps and DNAT are followed; a random pick (`numgen`) forks the walk, so
the answer lists every place the packet can end, each with the rules it hit.
NAT chains see only a connection's first packet, as conntrack arranges.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from podnet.kernel.nftables.fake import Fake
from podnet.kernel.nftables.objects import Table
from podnet.kernel.nftables.rules import (AnonSet, Concat, Dnat, Expr, Field, Limit, Log, Lookup, Masked, Masquerade,
                                          Match, Numgen, Reject, Rule, SetMark, SetRef, SetTrace, Statement, UpdateSet,
                                          Verdict, VerdictMap)

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


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
class Outcome:
    """Where one possible walk ended."""

    verdict: str  # accept, drop, reject, reject with tcp reset
    destination: str
    port: int
    masqueraded: bool
    hits: tuple[str, ...]  # "table/chain: rule" for each rule that matched

    @property
    def target(self) -> str:
        return f"{self.destination}:{self.port}"


@dataclass(frozen=True)
class _State:
    packet: Packet
    destination: str
    port: int
    mark: int
    dnat: bool = False
    masqueraded: bool = False
    hits: tuple[str, ...] = ()

    def hit(self, where: str, rule: Rule) -> _State:
        return replace(self, hits=(*self.hits, f"{where}: {rule.text()}"))

    def outcome(self, verdict: str) -> Outcome:
        return Outcome(verdict, self.destination, self.port, self.masqueraded, self.hits)


# What a rule's walk can end in: None (on to the next rule), RETURN, or a final verdict.
_NEXT, _RETURN = None, "return"
_Branch = tuple[_State, "str | None"]

_PATHS = {"arriving": ("prerouting", "routing", "postrouting"), "local": ("output", "postrouting", "deliver")}


@dataclass
class Tracer:
    """`local` is the node's own addresses (where `fib daddr type local` is true)."""

    nft: Fake
    local: frozenset[str] = field(default_factory=frozenset)

    def trace(self, packet: Packet, origin: str = "arriving") -> list[Outcome]:
        """Every way the packet can go; origin is `arriving` (on an interface)
        or `local` (sent by the node's own processes)."""
        states = [_State(packet, packet.destination, packet.port, packet.mark)]
        finished: list[Outcome] = []
        for step in _PATHS[origin]:
            if step in ("routing", "deliver"):  # to the node itself (input), or through it (forward)
                routed = []
                for state in states:
                    if self._is_local(state.destination):
                        routed.extend(self._hook("input", [state], finished))
                    elif step == "routing":
                        routed.extend(self._hook("forward", [state], finished))
                    else:
                        routed.append(state)
                states = routed
            else:
                states = self._hook(step, states, finished)
        finished.extend(state.outcome("accept") for state in states)
        return finished

    def _is_local(self, address: str) -> bool:
        return address in self.local or ipaddress.ip_address(address) in LOOPBACK

    def _base_chains(self, hook: str) -> list[tuple[int, str, Table, str]]:
        found = []
        for table, state in self.nft.tables.items():
            if table.family not in ("ip", "inet"):
                continue
            for chain in state.chains.values():
                if chain.hook and chain.hook.hook == hook:
                    found.append((chain.hook.priority, table.name, table, chain.name))
        return sorted(found, key=lambda item: item[:2])

    def _hook(self, hook: str, states: list[_State], finished: list[Outcome]) -> list[_State]:
        for _, _, table, name in self._base_chains(hook):
            chain = self.nft.chain(table, name)
            assert chain.hook is not None
            passing = []
            for state in states:
                if chain.hook.type == "nat" and state.packet.ct_state != "new":
                    passing.append(state)
                    continue
                for after, verdict in self._chain(table, name, state, depth=0):
                    verdict = verdict or chain.hook.policy
                    if verdict == "accept":
                        passing.append(after)
                    else:
                        finished.append(after.outcome(verdict))
            states = passing
        return states

    def _chain(self, table: Table, name: str, state: _State, depth: int) -> list[_Branch]:
        if depth > 32:
            raise RecursionError(f"chain {name}: jumps nest deeper than nft allows")
        rules = self.nft.rules(table, name)
        ended: list[_Branch] = []
        walking = [(state, 0)]
        while walking:
            current, index = walking.pop()
            if index == len(rules):
                ended.append((current, None))
                continue
            for after, verdict in self._rule(table, rules[index], current, depth):
                if verdict is _NEXT:
                    walking.append((after, index + 1))
                elif verdict == _RETURN:
                    ended.append((after, None))
                else:
                    ended.append((after, verdict))
        return ended

    def _rule(self, table: Table, rule: Rule, state: _State, depth: int) -> list[_Branch]:
        first_action = next((i for i, s in enumerate(rule.statements) if not isinstance(s, Match)),
                            len(rule.statements))
        branches: list[tuple[_State, int]] = [(state, 0)]
        done: list[_Branch] = []
        while branches:
            current, index = branches.pop()
            if index == len(rule.statements):
                done.append((current, _NEXT))
                continue
            statement = rule.statements[index]
            if isinstance(statement, Match):
                if self._matches(table, statement, current):
                    branches.append((current, index + 1))
                else:
                    done.append((current, _NEXT))
                continue
            if index == first_action:
                if self._misses(table, statement, current):  # the kernel reports no match, and neither do we
                    done.append((current, _NEXT))
                    continue
                current = current.hit(f"{table.name}/{rule.chain}", rule)
            for after, verdict in self._act(table, statement, current, depth):
                if verdict == "continue":
                    branches.append((after, index + 1))
                else:
                    done.append((after, verdict))
        return done

    def _act(self, table: Table, statement: Statement, state: _State, depth: int) -> list[_Branch]:
        """What a statement does: ("continue" to the next statement) or how the rule ends."""
        if isinstance(statement, Verdict):
            return self._verdict(table, statement, state, depth)
        if isinstance(statement, VerdictMap):
            out: list[_Branch] = []
            for key in self._keys(statement.key, state):
                verdict = self._lookup_verdict(table, statement.map, key)
                out.extend(self._verdict(table, verdict, state, depth) if verdict else [(state, _NEXT)])
            return out or [(state, _NEXT)]  # a field of the other family: no key, no lookup
        if isinstance(statement, Dnat):
            targets = [statement.to] if isinstance(statement.to, str) else \
                [t for key in self._keys(statement.to.key, state) if (t := self._lookup_value(table, statement.to, key))]
            if not targets:
                return [(state, _NEXT)]  # a map without the key: the rule does not apply
            return [(self._dnat(state, target), "accept") for target in targets]
        if isinstance(statement, Masquerade):
            return [(replace(state, masqueraded=True), "accept")]
        if isinstance(statement, Reject):
            return [(state, statement.text())]
        if isinstance(statement, SetMark):
            mark = state.mark | statement.value if statement.op == "|" else state.mark ^ statement.value
            return [(replace(state, mark=mark), "continue")]
        if isinstance(statement, (UpdateSet, Log, Limit, SetTrace)):  # a limit is taken as never reached
            return [(state, "continue")]
        raise TypeError(f"the tracer does not know {statement!r}")

    def _misses(self, table: Table, statement: Statement, state: _State) -> bool:
        """A lookup that finds no element ends its rule as a failed match does."""
        if isinstance(statement, VerdictMap):
            return not any(self._lookup_verdict(table, statement.map, key) for key in self._keys(statement.key, state))
        if isinstance(statement, Dnat) and isinstance(statement.to, Lookup):
            return not any(self._lookup_value(table, statement.to, key) for key in self._keys(statement.to.key, state))
        return False

    def _verdict(self, table: Table, verdict: Verdict, state: _State, depth: int) -> list[_Branch]:
        if verdict.kind in ("jump", "goto"):
            assert verdict.chain is not None
            out: list[_Branch] = []
            for after, ended in self._chain(table, verdict.chain, state, depth + 1):
                if ended is not None:
                    out.append((after, ended))
                else:
                    out.append((after, _NEXT if verdict.kind == "jump" else _RETURN))
            return out
        if verdict.kind == "return":
            return [(state, _RETURN)]
        if verdict.kind == "continue":
            return [(state, _NEXT)]
        return [(state, verdict.kind)]

    @staticmethod
    def _dnat(state: _State, target: str) -> _State:
        address, _, port = target.rpartition(":") if target.count(":") == 1 else (target, "", "")
        return replace(state, destination=address, port=int(port) if port else state.port, dnat=True)

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
        return f"{address}:{port[0]}" if port else address

    def _keys(self, expr: Expr, state: _State) -> list[tuple[str, ...]]:
        """Every value the expression can take (a random pick takes each)."""
        if isinstance(expr, Concat):
            return [sum(parts, ()) for parts in itertools.product(*(self._keys(p, state) for p in expr.parts))]
        if isinstance(expr, Numgen):
            return [(str(i),) for i in range(expr.modulus)]
        if isinstance(expr, Masked):
            return [(str(int(self._field(expr.field, state) or 0) & expr.mask),)]
        value = self._field(expr, state)
        return [(value,)] if value is not None else []

    def _field(self, field_: Field, state: _State) -> str | None:
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
            "fib daddr type": "local" if self._is_local(state.destination) else "unicast",
            "ct status": "dnat" if state.dnat else "",
            "ct state": packet.ct_state,
            "meta mark": str(state.mark),
            "iifname": packet.iifname,
            "oifname": packet.oifname,
        }
        if field_.name not in values:
            raise TypeError(f"the tracer does not know the field {field_.name!r}")
        return values[field_.name]

    def _matches(self, table: Table, match: Match, state: _State) -> bool:
        keys = self._keys(match.left, state)
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


def targets(outcomes: Iterable[Outcome]) -> set[str]:
    """The `address:port` every accepted walk ends at."""
    return {o.target for o in outcomes if o.verdict == "accept"}


def verdicts(outcomes: Sequence[Outcome]) -> set[str]:
    return {o.verdict for o in outcomes}
