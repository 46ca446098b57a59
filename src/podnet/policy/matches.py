"""The ways a connection can match a policy rule, as nftables matches: peers
(a selector's pods as a set that every rule with the same selectors shares, an
ipBlock as a prefix minus its holes, a ClusterNetworkPolicy's networks, nodes
or pods) and ports (single ports, a named one as each destination pod calls it,
in one set; ranges and whole protocols on their own).

The table's layout (policy/ruleset.py) asks here for each rule's alternatives.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from podnet.kernel.nftables import Element, Set
from podnet.kernel.nftables.rules import (
    ACCEPT, IP_DADDR, IP_SADDR, L4PROTO, RETURN, TH_DPORT, Field, Match, SetRef, Statement, concat, differs, match,
)
from podnet.model.clusternetworkpolicy import ClusterPeer
from podnet.model.networkpolicy import EGRESS, INGRESS, NetworkPolicy, Peer, PolicyPort, PolicyRule
from podnet.model.pod import Pod
from podnet.policy.evaluator import PolicyView

_NAMED_KEY = concat(IP_DADDR, L4PROTO, TH_DPORT)
_NAMED_TYPE = "ipv4_addr . inet_proto . inet_service"
_PORT_KEY = concat(L4PROTO, TH_DPORT)


@dataclass(frozen=True)
class Side:
    """What differs between the two directions."""

    direction: str
    prefix: str  # of the chains and sets
    remote: Field  # the other end's address: where egress goes, where ingress comes from
    local: Field  # the isolated pod's address
    allowed: Statement  # what a matching rule does

    def rules_of(self, policy: NetworkPolicy) -> tuple[PolicyRule, ...]:
        return policy.egress if self.direction == EGRESS else policy.ingress


EGRESS_SIDE = Side(EGRESS, "egress", IP_DADDR, IP_SADDR, RETURN)
INGRESS_SIDE = Side(INGRESS, "ingress", IP_SADDR, IP_DADDR, ACCEPT)


class Matches:
    """Match alternatives for one node's table, and the sets they use, each made
    once however many rules use it (its elements go with it)."""

    def __init__(self, view: PolicyView, sets: list[Set], elements: list[Element]) -> None:
        self.view = view
        self.sets = sets
        self.elements = elements
        self._sets_by_content: dict[tuple[str, frozenset[tuple[str, ...]]], str] = {}
        self._selections: dict[tuple[object, ...], frozenset[tuple[str, ...]]] = {}

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

    def of_cluster_peers(self, side: Side, peers: Sequence[ClusterPeer]) -> Iterator[tuple[Match, ...]]:
        for peer in peers:
            if peer.networks:
                yield from ((match(side.remote, str(network)),) for network in peer.networks if network.version == 4)
                continue
            if peer.nodes is not None:
                members = frozenset((address,) for address in self.view.node_addresses_of(peer.nodes))
            else:
                members = frozenset((pod.pod_ip or "",) for pod in self.view.cluster_peer_pods(peer))
            if members:
                yield (match(side.remote, SetRef(self.named_set("peers", "ipv4_addr", members))),)

    def of_rule(self, side: Side, policy: NetworkPolicy, policy_rule: PolicyRule,
                      pods: Sequence[Pod]) -> Iterator[tuple[Statement, ...]]:
        """Each way a connection can match the rule: (peer alternative) x (port alternative)."""
        ports = list(self.of_ports(side, policy_rule.ports, pods)) if policy_rule.ports else [()]
        for peer in self._of_peers(side, policy, policy_rule):
            for port in ports:
                yield (*peer, *port)

    def _of_peers(self, side: Side, policy: NetworkPolicy, policy_rule: PolicyRule) -> Iterator[tuple[Match, ...]]:
        """One alternative per peer: a selector's pods as a set, which every rule with
        the same selectors shares (a namespace selector recurs across policies,
        and one set for it is far fewer elements than one per rule); an ipBlock as
        its prefix minus its holes. A selector matching no pod matches nothing."""
        if not policy_rule.peers:
            yield ()
            return
        for peer in policy_rule.peers:
            block = peer.ip_block
            if block is None:
                selected = self._selected(peer, policy)
                if selected:
                    yield (match(side.remote, SetRef(self.named_set("peers", "ipv4_addr", selected))),)
            elif block.cidr.version == 4:
                holes = (differs(side.remote, str(hole)) for hole in block.excepted)
                yield (match(side.remote, str(block.cidr)), *holes)

    def _selected(self, peer: Peer, policy: NetworkPolicy) -> frozenset[tuple[str, ...]]:
        """A selector peer's pod addresses, gathered once per selectors and namespace."""
        key = (peer.pod_selector, peer.namespace_selector,
               policy.metadata.namespace if peer.namespace_selector is None else "")
        known = self._selections.get(key)
        if known is None:
            known = self._selections[key] = frozenset((p.pod_ip or "",) for p in self.view.selected_by(peer, policy))
        return known

    def of_ports(self, side: Side, ports: Sequence[PolicyPort],
                      pods: Sequence[Pod]) -> Iterator[tuple[Match, ...]]:
        """The rule's ports as few matches as they go: single ports (named ones as
        each destination pod calls them) in one set, ranges and whole protocols on
        their own. Ingress keys the set by the group's own pods, so numbers and
        names share it; egress keeps numbers apart from names (the destinations
        are every pod)."""
        exact: set[tuple[str, ...]] = set()  # (pod IP,) protocol, port
        named: set[tuple[str, ...]] = set()  # egress only: (pod IP, protocol, port)
        for port in ports:
            protocol = port.protocol.lower()
            if port.port is None:
                yield (match(L4PROTO, protocol),)
            elif isinstance(port.port, int) and port.end_port is not None:
                yield match(L4PROTO, protocol), match(TH_DPORT, f"{port.port}-{port.end_port}")
            elif side.direction == INGRESS:
                for pod in pods:
                    numbers = [port.port] if isinstance(port.port, int) else _named(pod, port.port, port.protocol)
                    exact.update((pod.pod_ip or "", protocol, str(number)) for number in numbers)
            elif isinstance(port.port, int):
                exact.add((protocol, str(port.port)))
            else:
                named.update((pod.pod_ip or "", protocol, str(number))
                             for pod in self.view.pods for number in _named(pod, port.port, port.protocol))
        if side.direction == INGRESS and exact:
            yield (match(_NAMED_KEY, SetRef(self.named_set("ports", _NAMED_TYPE, frozenset(exact)))),)
        elif exact:
            yield (match(_PORT_KEY, SetRef(self.named_set("ports", "inet_proto . inet_service", frozenset(exact)))),)
        if named:
            yield (match(_NAMED_KEY, SetRef(self.named_set("ports", _NAMED_TYPE, frozenset(named)))),)


def _named(pod: Pod, name: str, protocol: str) -> set[int]:
    return {p.container_port for c in pod.containers for p in c.ports if p.name == name and p.protocol == protocol}
