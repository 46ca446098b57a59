"""Whether a connection is allowed, by NetworkPolicy's exact semantics, from the
store's objects alone: `podnet policy check` answers with it, and the
conformance tests compare the kernel's reachability with it.

A connection needs the source pod's egress and the destination pod's ingress to
allow it. A pod is isolated for a direction only while some policy of its
namespace selects it with that direction in its policyTypes; then what is
allowed is the union of the rules of every such policy. Replies, a pod's own
traffic to itself and its node's traffic to it are always allowed.

Pod IPs inside an ipBlock: an ipBlock matches by address, pods included, as
the upstream e2e suite expects (and as Calico and Cilium do). A pod matched by
an ipBlock is matched whatever its labels.

Dual stack: a connection is of one family, and each end is known by its
address of that family. Selectors match a pod whichever of its addresses it
uses, so every selector case answers alike in IPv4 and IPv6; an ipBlock holds
addresses of its CIDR's family only, so a v4 block says nothing of a pod's v6
traffic (which, where the pod is isolated, stays denied unless another rule allows it).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from podnet.model.clusternetworkpolicy import (
    ACCEPT, ADMIN, BASELINE, PASS, ClusterNetworkPolicy, ClusterPeer, ClusterRule,
)
from podnet.model.families import first_of
from podnet.model.namespace import Namespace
from podnet.model.networkpolicy import EGRESS, INGRESS, NetworkPolicy, Peer, PolicyPort, PolicyRule
from podnet.model.node import Node
from podnet.model.pod import Pod
from podnet.model.selector import LabelSelector
from podnet.network.node import gateway_for

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Party:
    """One end of a connection: a pod, a node (its own host network), or only an address."""

    address: Address
    pod: Pod | None = None
    node: str | None = None

    def __str__(self) -> str:
        if self.pod is not None:
            return self.pod.metadata.key
        return f"node/{self.node}" if self.node else str(self.address)


@dataclass(frozen=True)
class Decision:
    """One direction's answer: whether the pod is isolated for it, whether the
    connection is allowed, and the rules that allowed it (`ns/policy
    ingress[0]`) or, when denied, the policies that isolate the pod."""

    direction: str
    isolated: bool
    allowed: bool
    because: tuple[str, ...] = ()


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    why: str  # one line for people
    egress: Decision | None = None  # None: the source is not a pod
    ingress: Decision | None = None  # None: the destination is not a pod


class PolicyView:
    """Pods, namespaces, nodes and policies as the evaluator needs them."""

    def __init__(self, pods: Iterable[Pod], namespaces: Iterable[Namespace], policies: Iterable[NetworkPolicy],
                 nodes: Iterable[Node] = (), cluster_policies: Iterable[ClusterNetworkPolicy] = ()) -> None:
        self.pods = [p for p in pods if p.pod_ip]
        self.cluster_policies = sorted(cluster_policies, key=lambda c: c.order)
        self.nodes = list(nodes)
        self.namespace_labels: dict[str, Mapping[str, str]] = {n.metadata.name: n.labelled().metadata.labels
                                                               for n in namespaces}
        self.policies = sorted(policies, key=lambda p: p.metadata.key)
        self._pods_by_ip = {_canonical(ip): p for p in self.pods for ip in p.pod_ips}
        self._pods_in: dict[str, list[Pod]] = {}
        for pod in self.pods:
            self._pods_in.setdefault(pod.metadata.namespace, []).append(pod)
        self._policies_in: dict[tuple[str, str, bool], list[NetworkPolicy]] = {}  # (namespace, direction, audit)
        for policy in self.policies:
            for direction in policy.policy_types:
                self._policies_in.setdefault((policy.metadata.namespace, direction, policy.audit), []).append(policy)
        self._selected: dict[tuple[object, ...], list[Pod]] = {}
        self.node_addresses: dict[str, str] = {}  # address -> node: its own, and its pod bridge's (probes come from it)
        for node in nodes:
            for address in node.internal_ips:
                self.node_addresses[_canonical(address)] = node.metadata.name
            for cidr in node.pod_cidrs:
                self.node_addresses[str(gateway_for(cidr).ip)] = node.metadata.name

    def party(self, address: str) -> Party:
        """Whoever holds an address: a pod, a node, or someone outside the cluster."""
        ip = ipaddress.ip_address(address)
        return Party(ip, self._pods_by_ip.get(str(ip)), self.node_addresses.get(str(ip)))

    def of_pod(self, pod: Pod, family: str | None = None) -> Party:
        """The pod as one end of a connection of `family` (by default its primary one)."""
        address = first_of(pod.pod_ips, family) if family else pod.pod_ip
        assert address, f"{pod.metadata.key} has no {family or 'IP'} address"
        return Party(ipaddress.ip_address(address), pod)

    def selecting(self, pod: Pod, direction: str, audit: bool = False) -> list[NetworkPolicy]:
        """The policies that isolate `pod` for `direction`; with `audit`, the ones
        in audit mode instead, which isolate nothing and log what they would drop."""
        return [p for p in self._policies_in.get((pod.metadata.namespace, direction, audit), ())
                if p.pod_selector.matches(pod.metadata.labels)]

    def cluster_rules(self, pod: Pod, direction: str, tier: str) -> list[tuple[ClusterNetworkPolicy, int, ClusterRule]]:
        """The tier's rules for `pod` in the order they are read: by policy priority, then as written."""
        labels = self.namespace_labels.get(pod.metadata.namespace, {})
        return [(c, i, r) for c in self.cluster_policies if c.tier == tier
                and c.subject_namespaces.matches(labels) and c.subject_pods.matches(pod.metadata.labels)
                for i, r in enumerate(c.ingress if direction == INGRESS else c.egress)]

    def cluster_peer_pods(self, peer: ClusterPeer) -> list[Pod]:
        """The pods a `namespaces` or `pods` peer selects."""
        assert peer.namespaces is not None
        return self._pods(peer.namespaces, peer.pods)

    def _pods(self, within: LabelSelector | str, selector: LabelSelector | None) -> list[Pod]:
        """The pods of one namespace (by name) or of the namespaces a selector
        matches, that `selector` matches (None: all of them); found through the
        namespaces rather than by asking every pod, and remembered."""
        key = (selector, within)
        found = self._selected.get(key)
        if found is None:
            spaces = [within] if isinstance(within, str) else \
                [name for name, labels in self.namespace_labels.items() if within.matches(labels)]
            found = self._selected[key] = [pod for space in spaces for pod in self._pods_in.get(space, ())
                                           if selector is None or selector.matches(pod.metadata.labels)]
        return found

    def node_addresses_of(self, selector: LabelSelector) -> list[str]:
        """The InternalIPs, of every family, of the nodes `selector` matches."""
        return [address for n in self.nodes if selector.matches(n.metadata.labels) for address in n.internal_ips]

    def cluster_peer_matches(self, peer: ClusterPeer, other: Party) -> bool:
        if peer.networks:
            return any(other.address in network for network in peer.networks)
        if peer.nodes is not None:
            return str(other.address) in map(_canonical, self.node_addresses_of(peer.nodes))
        return other.pod is not None and other.pod in self.cluster_peer_pods(peer)

    def selected_by(self, peer: Peer, policy: NetworkPolicy) -> list[Pod]:
        """The pods a selector peer matches: with no namespace selector, in the
        policy's own namespace (the same selectors mean the same wherever the policy is)."""
        within = peer.namespace_selector if peer.namespace_selector is not None else policy.metadata.namespace
        return self._pods(within, peer.pod_selector)

    def peer_matches(self, peer: Peer, policy: NetworkPolicy, other: Party) -> bool:
        """An ipBlock matches by address; selectors match pods only (not nodes, not
        addresses outside the cluster)."""
        if peer.ip_block is not None:
            return peer.ip_block.holds(other.address)
        return other.pod is not None and other.pod in self.selected_by(peer, policy)


def _canonical(address: str) -> str:
    """One spelling per address (`fd00:0::5` is `fd00::5`), so lookups by text
    agree; an IPv4 address has only one (and a thousand pods' are not parsed)."""
    return str(ipaddress.ip_address(address)) if ":" in address else address


def port_matches(rule_port: PolicyPort, port: int | None, protocol: str, destination: Pod | None) -> bool:
    """A named port is looked up on the destination pod, for its protocol; a name
    that pod does not have matches nothing."""
    if rule_port.protocol != protocol or port is None:
        return False
    wanted = rule_port.port
    if wanted is None:
        return True
    if isinstance(wanted, str):
        if destination is None:
            return False
        return port in {p.container_port for c in destination.containers for p in c.ports
                        if p.name == wanted and p.protocol == protocol}
    if rule_port.end_port is not None:
        return wanted <= port <= rule_port.end_port
    return wanted == port


def rule_matches(view: PolicyView, rule: PolicyRule, policy: NetworkPolicy, other: Party, port: int | None,
                 protocol: str, destination: Pod | None) -> bool:
    if rule.peers and not any(view.peer_matches(peer, policy, other) for peer in rule.peers):
        return False
    return not rule.ports or any(port_matches(p, port, protocol, destination) for p in rule.ports)


def _tier(view: PolicyView, pod: Pod, direction: str, tier: str, other: Party, port: int | None, protocol: str,
          destination: Pod | None) -> Decision | None:
    """The first rule of the tier that matches: Accept or Deny decide; Pass and no
    match leave it to the next tier (None)."""
    key = "ingress" if direction == INGRESS else "egress"
    for policy, i, rule in view.cluster_rules(pod, direction, tier):
        if any(view.cluster_peer_matches(peer, other) for peer in rule.peers) and \
                (not rule.ports or any(port_matches(p, port, protocol, destination) for p in rule.ports)):
            if rule.action == PASS:
                return None
            label = f"cnp/{policy.metadata.name} {key}[{i}] ({rule.action})"
            return Decision(direction, isolated=True, allowed=rule.action == ACCEPT, because=(label,))
    return None


def decide(view: PolicyView, pod: Pod, direction: str, other: Party, port: int | None, protocol: str,
           destination: Pod | None) -> Decision:
    """`pod`'s side of a connection: its egress towards `other`, or its ingress from it,
    through the Admin tier, NetworkPolicy, then the Baseline tier."""
    admin = _tier(view, pod, direction, ADMIN, other, port, protocol, destination)
    if admin is not None:
        return admin
    selecting = view.selecting(pod, direction)
    if not selecting:
        baseline = _tier(view, pod, direction, BASELINE, other, port, protocol, destination)
        return baseline or Decision(direction, isolated=False, allowed=True)
    key = "ingress" if direction == INGRESS else "egress"
    allowing = tuple(f"{policy.metadata.key} {key}[{i}]" for policy in selecting
                     for i, rule in enumerate(getattr(policy, key))
                     if rule_matches(view, rule, policy, other, port, protocol, destination))
    if allowing:
        return Decision(direction, isolated=True, allowed=True, because=allowing)
    return Decision(direction, isolated=True, allowed=False, because=tuple(p.metadata.key for p in selecting))


def evaluate(view: PolicyView, source: Party, destination: Party, port: int | None, protocol: str = "TCP") -> Verdict:
    """Whether a new connection from `source` to `destination` (after any service
    DNAT: the endpoint pod) on `port`/`protocol` is allowed."""
    if source.pod is not None and source.pod == destination.pod:
        return Verdict(True, "a pod may always reach itself")
    if destination.pod is not None and source.node is not None and source.node == destination.pod.node_name:
        return Verdict(True, f"from {destination.pod.metadata.key}'s own node, always allowed")
    egress = ingress = None
    if source.pod is not None:
        egress = decide(view, source.pod, EGRESS, destination, port, protocol, destination.pod)
    if destination.pod is not None:
        ingress = decide(view, destination.pod, INGRESS, source, port, protocol, destination.pod)
    allowed = (egress is None or egress.allowed) and (ingress is None or ingress.allowed)
    return Verdict(allowed, _why(source, destination, egress, ingress), egress, ingress)


def _why(source: Party, destination: Party, egress: Decision | None, ingress: Decision | None) -> str:
    parts = [explain(decision, who) for decision, who in ((egress, source), (ingress, destination))
             if decision is not None]
    return "; ".join(parts) or "neither end is a pod: no policy applies"


def explain(decision: Decision, who: Party) -> str:
    """One direction's answer for people: `ingress of x/a allowed by x/web ingress[0]`."""
    direction = decision.direction.lower()
    if not decision.isolated:
        return f"{who} is not isolated for {direction}"
    if decision.allowed:
        return f"{direction} of {who} allowed by {', '.join(decision.because)}"
    if decision.because[0].startswith("cnp/"):
        return f"{direction} of {who} denied by {decision.because[0]}"
    return f"{direction} of {who} denied: isolated by {', '.join(decision.because)}, no rule matches"
