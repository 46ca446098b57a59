"""Walk a packet through the Fake's rules, as kube-proxy's tests walk theirs.

A packet goes through the hooks of its path (arriving: prerouting, then input
or forward, then postrouting; sent by the node: output, postrouting), and at
each hook through every base chain on it, lowest priority first. Jumps, gotos,
verdict maps and DNAT are followed; a random pick (`numgen`) forks the walk, so
the answer lists every place the packet can end, each with the rules it hit.
NAT chains see only a connection's first packet, as conntrack arranges.
What each expression says of the packet is matching.py's to answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from podnet.kernel.nftables.fake import Fake
from podnet.kernel.nftables.matching import Matcher, Packet, State
from podnet.kernel.nftables.objects import Table
from podnet.kernel.nftables.rules import (Dnat, Limit, Log, Masquerade, Match, Reject, Rule, SetMark, SetTrace,
                                          Statement, UpdateSet, Verdict, VerdictMap, split_target, target)

__all__ = ["Outcome", "Packet", "Tracer", "targets", "verdicts"]


@dataclass(frozen=True)
class Outcome:
    """Where one possible walk ended."""

    verdict: str  # accept, drop, reject, reject with tcp reset
    destination: str
    port: int
    masqueraded: bool
    hits: tuple[str, ...]  # "table/chain: rule" for each rule that matched

    @classmethod
    def of(cls, state: State, verdict: str) -> Outcome:
        return cls(verdict, state.destination, state.port, state.masqueraded, state.hits)

    @property
    def target(self) -> str:
        """`address:port`, an IPv6 address in brackets."""
        return target(self.destination, self.port)


# What a rule's walk can end in: None (on to the next rule), RETURN, or a final verdict.
_NEXT, _RETURN = None, "return"
_Branch = tuple[State, "str | None"]

_PATHS = {"arriving": ("prerouting", "routing", "postrouting"), "local": ("output", "postrouting", "deliver")}


@dataclass
class Tracer:
    """`local` is the node's own addresses (where `fib daddr type local` is true)."""

    nft: Fake
    local: frozenset[str] = field(default_factory=frozenset)
    matcher: Matcher = field(init=False)

    def __post_init__(self) -> None:
        self.matcher = Matcher(self.nft, self.local)

    def trace(self, packet: Packet, origin: str = "arriving") -> list[Outcome]:
        """Every way the packet can go; origin is `arriving` (on an interface)
        or `local` (sent by the node's own processes)."""
        states = [State(packet, packet.destination, packet.port, packet.mark)]
        finished: list[Outcome] = []
        for step in _PATHS[origin]:
            if step in ("routing", "deliver"):  # to the node itself (input), or through it (forward)
                routed = []
                for state in states:
                    if self.matcher.is_local(state.destination):
                        routed.extend(self._hook("input", [state], finished))
                    elif step == "routing":
                        routed.extend(self._hook("forward", [state], finished))
                    else:
                        routed.append(state)
                states = routed
            else:
                states = self._hook(step, states, finished)
        finished.extend(Outcome.of(state, "accept") for state in states)
        return finished

    def _base_chains(self, hook: str, family: str) -> list[tuple[int, str, Table, str]]:
        """The hook's base chains in the tables that see the packet: its own family's and inet's."""
        found = []
        for table, state in self.nft.tables.items():
            if table.family not in (family, "inet"):
                continue
            for chain in state.chains.values():
                if chain.hook and chain.hook.hook == hook:
                    found.append((chain.hook.priority, table.name, table, chain.name))
        return sorted(found, key=lambda item: item[:2])

    def _hook(self, hook: str, states: list[State], finished: list[Outcome]) -> list[State]:
        if not states:
            return states
        family = "ip6" if ":" in states[0].packet.destination else "ip"
        for _, _, table, name in self._base_chains(hook, family):
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
                        finished.append(Outcome.of(after, verdict))
            states = passing
        return states

    def _chain(self, table: Table, name: str, state: State, depth: int) -> list[_Branch]:
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

    def _rule(self, table: Table, rule: Rule, state: State, depth: int) -> list[_Branch]:
        first_action = next((i for i, s in enumerate(rule.statements) if not isinstance(s, Match)),
                            len(rule.statements))
        branches: list[tuple[State, int]] = [(state, 0)]
        done: list[_Branch] = []
        while branches:
            current, index = branches.pop()
            if index == len(rule.statements):
                done.append((current, _NEXT))
                continue
            statement = rule.statements[index]
            if isinstance(statement, Match):
                if self.matcher.matches(table, statement, current):
                    branches.append((current, index + 1))
                else:
                    done.append((current, _NEXT))
                continue
            if index == first_action:
                if self.matcher.misses(table, statement, current):  # the kernel reports no match, and neither do we
                    done.append((current, _NEXT))
                    continue
                current = current.hit(f"{table.name}/{rule.chain}", rule)
            for after, verdict in self._act(table, statement, current, depth):
                if verdict == "continue":
                    branches.append((after, index + 1))
                else:
                    done.append((after, verdict))
        return done

    def _act(self, table: Table, statement: Statement, state: State, depth: int) -> list[_Branch]:
        """What a statement does: ("continue" to the next statement) or how the rule ends."""
        if isinstance(statement, Verdict):
            return self._verdict(table, statement, state, depth)
        if isinstance(statement, VerdictMap):
            out: list[_Branch] = []
            for verdict in self.matcher.map_verdicts(table, statement, state):
                out.extend(self._verdict(table, verdict, state, depth) if verdict else [(state, _NEXT)])
            return out or [(state, _NEXT)]  # a field of the other family: no key, no lookup
        if isinstance(statement, Dnat):
            targets = self.matcher.dnat_targets(table, statement, state)
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

    def _verdict(self, table: Table, verdict: Verdict, state: State, depth: int) -> list[_Branch]:
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
    def _dnat(state: State, to: str) -> State:
        address, port = split_target(to)
        return replace(state, destination=address, port=int(port) if port else state.port, dnat=True)


def targets(outcomes: Iterable[Outcome]) -> set[str]:
    """The `address:port` every accepted walk ends at."""
    return {o.target for o in outcomes if o.verdict == "accept"}


def verdicts(outcomes: Sequence[Outcome]) -> set[str]:
    return {o.verdict for o in outcomes}
