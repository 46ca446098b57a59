"""The ways a connection can match a policy rule, as nftables matches: peers
(a selector's pods as a set that every rule with the same selectors shares, an
ipBlock as a prefix minus its holes, a ClusterNetworkPolicy's networks, nodes
or pods) and ports (single ports, a named one as each destination pod calls it,
in one set; ranges and whole protocols on their own).

Dual stack: an address match is of one family (`ip saddr`, `ip6 saddr`; a set
of ipv4_addr or of ipv6_addr: nftables mixes neither), so a selector's pods
give a set per family their addresses cover, and an ipBlock a match in its
CIDR's family. Port sets keyed by protocol and port alone serve both families.
Each alternative says its family (None: either), and a rule joins a peer with
a port only where their families agree and the node has pods of that family
(a node of IPv4 pods alone gets a table with nothing of IPv6 in it).

The table's layout (policy/ruleset.py) asks here for each rule's alternatives.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from podnet.kernel.nftables import Element, Set
from podnet.kernel.nftables.rules import (
    ACCEPT, L4PROTO, RETURN, TH_DPORT, Concat, Field, Match, SetRef, Statement, concat, daddr, differs, match, saddr,
)
from podnet.model.clusternetworkpolicy import ClusterPeer
from podnet.model.families import FAMILIES, IPV4, family_of, version
from podnet.model.networkpolicy import EGRESS, INGRESS, NetworkPolicy, Peer, PolicyPort, PolicyRule
from podnet.model.pod import Pod
from podnet.policy.evaluator import PolicyView

ADDRESS_TYPE = {family: f"ipv{version(family)}_addr" for family in FAMILIES}
_PORT_KEY = concat(L4PROTO, TH_DPORT)
_ByFamily = tuple[tuple[str, frozenset[tuple[str, ...]]], ...]  # (family, its addresses as set members)


def family_named(name: str, family: str) -> str:
    """A set, map or chain of one family: IPv4's keeps the name it had before
    dual stack (`ingress_pods`), IPv6's takes a 6 (`ingress_pods6`)."""
    return name if family == IPV4 else f"{name}6"


def _named_key(family: str) -> tuple[Concat, str]:
    """A destination pod's address, protocol and port: a named port as that pod calls it."""
    return (concat(daddr(version(family)), L4PROTO, TH_DPORT),
            f"{ADDRESS_TYPE[family]} . inet_proto . inet_service")


class Alternative(NamedTuple):
    """One way to match: its statements, and the family they hold to (None: any).
    A tuple, not a frozen dataclass: a thousand policies make tens of thousands."""

    matches: tuple[Match, ...] = ()
    family: str | None = None


@dataclass(frozen=True)
class Side:
    """What differs between the two directions."""

    direction: str
    prefix: str  # of the chains and sets
    allowed: Statement  # what a matching rule does

    def remote(self, family: str) -> Field:
        """The other end's address: where egress goes, where ingress comes from."""
        return daddr(version(family)) if self.direction == EGRESS else saddr(version(family))

    def local(self, family: str) -> Field:
        """The isolated pod's address."""
        return saddr(version(family)) if self.direction == EGRESS else daddr(version(family))

    def rules_of(self, policy: NetworkPolicy) -> tuple[PolicyRule, ...]:
        return policy.egress if self.direction == EGRESS else policy.ingress


EGRESS_SIDE = Side(EGRESS, "egress", RETURN)
INGRESS_SIDE = Side(INGRESS, "ingress", ACCEPT)


class Matches:
    """Match alternatives for one node's table, and the sets they use, each made
    once however many rules use it (its elements go with it)."""

    def __init__(self, view: PolicyView, families: Sequence[str], sets: list[Set], elements: list[Element]) -> None:
        self.view = view
        self.families = families  # of the node's pods: a match of another family could never apply
        self.sets = sets
        self.elements = elements
        self._sets_by_content: dict[tuple[str, frozenset[tuple[str, ...]]], str] = {}
        self._selections: dict[tuple[object, ...], _ByFamily] = {}

    def named_set(self, kind: str, key: str, members: frozenset[tuple[str, ...]]) -> str:
        """A set of these members, made once however many rules use it."""
        known = self._sets_by_content.get((key, members))
        if known is not None:
            return known
        name = f"{kind}_{len(self._sets_by_content)}"
        self._sets_by_content[(key, members)] = name
        self.sets.append(Set(name, key))
        self.elements.extend(Element(name, member) for member in sorted(members))
        return name

    def _addresses(self, side: Side, by_family: _ByFamily) -> Iterator[Alternative]:
        """Peers' addresses as one set per family they cover (a family none of them has matches nothing)."""
        for family, members in by_family:
            if family not in self.families:
                continue
            name = self.named_set("peers", ADDRESS_TYPE[family], members)
            yield Alternative((match(side.remote(family), SetRef(name)),), family)

    def of_cluster_peers(self, side: Side, peers: Sequence[ClusterPeer]) -> Iterator[Alternative]:
        for peer in peers:
            if peer.networks:
                for network in peer.networks:
                    family = family_of(str(network))
                    yield Alternative((match(side.remote(family), str(network)),), family)
            elif peer.nodes is not None:
                yield from self._addresses(side, _by_family(self.view.node_addresses_of(peer.nodes)))
            else:
                pods = self.view.cluster_peer_pods(peer)
                yield from self._addresses(side, _by_family(ip for pod in pods for ip in pod.pod_ips))

    def of_rule(self, side: Side, policy: NetworkPolicy, policy_rule: PolicyRule,
                pods: Sequence[Pod]) -> Iterator[tuple[Statement, ...]]:
        """Each way a connection can match the rule: (peer alternative) x (port alternative)."""
        ports = list(self.of_ports(side, policy_rule.ports, pods)) if policy_rule.ports else [Alternative()]
        return self.joined(self._of_peers(side, policy, policy_rule), ports)

    def joined(self, peers: Iterable[Alternative], ports: Sequence[Alternative]) -> Iterator[tuple[Match, ...]]:
        """Each peer with each port, where their families agree (no packet is of
        two) and are among the node's."""
        for peer in peers:
            for port in ports:
                family = peer.family or port.family
                if (peer.family and port.family and peer.family != port.family) or \
                        (family and family not in self.families):
                    continue
                yield (*peer.matches, *port.matches)

    def _of_peers(self, side: Side, policy: NetworkPolicy, policy_rule: PolicyRule) -> Iterator[Alternative]:
        """One alternative per peer and family: a selector's pods as a set, which
        every rule with the same selectors shares (a namespace selector recurs
        across policies, and one set for it is far fewer elements than one per
        rule); an ipBlock as its prefix minus its holes, in its CIDR's family. A
        selector matching no pod matches nothing."""
        if not policy_rule.peers:
            yield Alternative()
            return
        for peer in policy_rule.peers:
            block = peer.ip_block
            if block is None:
                yield from self._addresses(side, self._selected(peer, policy))
            else:
                remote = side.remote(block.family)
                holes = (differs(remote, str(hole)) for hole in block.excepted)
                yield Alternative((match(remote, str(block.cidr)), *holes), block.family)

    def _selected(self, peer: Peer, policy: NetworkPolicy) -> _ByFamily:
        """A selector peer's pod addresses by family, gathered once per selectors and namespace."""
        key = (peer.pod_selector, peer.namespace_selector,
               policy.metadata.namespace if peer.namespace_selector is None else "")
        known = self._selections.get(key)
        if known is None:
            pods = self.view.selected_by(peer, policy)
            known = self._selections[key] = _by_family(ip for p in pods for ip in p.pod_ips)
        return known

    def of_ports(self, side: Side, ports: Sequence[PolicyPort], pods: Sequence[Pod]) -> Iterator[Alternative]:
        """The rule's ports as few matches as they go: single ports (named ones as
        each destination pod calls them) in one set, ranges and whole protocols on
        their own. Ingress keys the set by the group's own pods, so numbers and
        names share it (a set per family); egress keeps numbers apart from names
        (the destinations are every pod), and its numbers serve both families."""
        exact: set[tuple[str, ...]] = set()  # ingress: (pod IP, protocol, port); egress: (protocol, port)
        named: set[tuple[str, ...]] = set()  # egress only: (pod IP, protocol, port)
        for port in ports:
            protocol = port.protocol.lower()
            if port.port is None:
                yield Alternative((match(L4PROTO, protocol),))
            elif isinstance(port.port, int) and port.end_port is not None:
                yield Alternative((match(L4PROTO, protocol), match(TH_DPORT, f"{port.port}-{port.end_port}")))
            elif side.direction == INGRESS:
                for pod in pods:
                    numbers = [port.port] if isinstance(port.port, int) else _named(pod, port.port, port.protocol)
                    exact.update((ip, protocol, str(number)) for ip in pod.pod_ips for number in numbers)
            elif isinstance(port.port, int):
                exact.add((protocol, str(port.port)))
            else:
                named.update((ip, protocol, str(number)) for pod in self.view.pods
                             for number in _named(pod, port.port, port.protocol) for ip in pod.pod_ips)
        if side.direction == INGRESS:
            yield from self._by_destination(exact)
        elif exact:
            yield Alternative((match(_PORT_KEY, SetRef(self.named_set("ports", "inet_proto . inet_service",
                                                                      frozenset(exact)))),))
        yield from self._by_destination(named)

    def _by_destination(self, members: set[tuple[str, ...]]) -> Iterator[Alternative]:
        """(pod IP, protocol, port) members as a set per family."""
        for family, mine in _grouped(members):
            if family in self.families:
                key, key_type = _named_key(family)
                yield Alternative((match(key, SetRef(self.named_set("ports", key_type, mine))),), family)


def _by_family(addresses: Iterable[str]) -> _ByFamily:
    """Addresses as set members, one group per family present, IPv4's first."""
    return _grouped((address,) for address in addresses)


def _grouped(members: Iterable[tuple[str, ...]]) -> _ByFamily:
    """Set members led by an address, one group per family present, IPv4's
    first; in one pass, as a thousand policies ask it for every rule."""
    groups: dict[str, set[tuple[str, ...]]] = {family: set() for family in FAMILIES}
    for member in members:
        groups[family_of(member[0])].add(member)
    return tuple((family, frozenset(found)) for family, found in groups.items() if found)


def _named(pod: Pod, name: str, protocol: str) -> set[int]:
    return {p.container_port for c in pod.containers for p in c.ports if p.name == name and p.protocol == protocol}
