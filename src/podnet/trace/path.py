"""A packet's path through the cluster, computed from the store with no traffic,
as ovn-trace walks OVN's logical pipeline: one numbered step per decision, each
naming the object that made it.

Nothing here re-implements the data path. Each node on the way gets the tables
its agent loads (the service table, the policy table, the egress masquerade),
rendered by the same functions, and the nftables tracer walks the packet through
them; the routes are the node network's own render. The policy evaluator only
words what the policy table decided, naming the policies and rules.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace

from podnet.store.snapshot import Snapshot
from podnet.api.cluster import ClusterConfig
from podnet.kernel.nftables import hooks
from podnet.kernel.nftables.rules import target
from podnet.kernel.nftables.tracer import Outcome, Packet, Tracer
from podnet.model.families import IPV6, family_of, first_of
from podnet.model.pod import Pod
from podnet.network.backends import VXLAN_DEVICE, VXLAN_PORT, VXLAN_VNI, vtep_address
from podnet.network.node import POD_BRIDGE, gateway_for
from podnet.policy.evaluator import evaluate, explain
from podnet.trace.nodes import UPLINK, NodeTables

MAX_NODES = 4  # a path crosses at most this many nodes (more would be a routing loop)


@dataclass(frozen=True)
class End:
    """One end of a trace: an address, and who holds it."""

    address: str
    label: str  # "pod apps/web-1", "node worker", "203.0.113.10 (outside the cluster)"
    pod: Pod | None = None
    node: str | None = None  # the node itself (node/NAME), not a pod's node


@dataclass(frozen=True)
class Step:
    node: str  # where the step happens ("" before the packet reaches a node)
    action: str  # send, service, policy, masquerade, route, tunnel, deliver, drop, reject, leave
    text: str
    decided_by: str  # the object that decided: a route, a map element, a policy's rule
    path: int = 0  # 0 until a service picks an endpoint; then each endpoint's path is numbered from 1

    @property
    def final(self) -> bool:
        return self.action in ENDINGS


ENDINGS = ("deliver", "drop", "reject", "leave")


@dataclass(frozen=True)
class NodePass:
    """The packet through one node's tables, as the tracer walked it: what a live
    trace of the same node should report."""

    path: int
    node: str
    destination: str  # after the node's tables (a service's DNAT)
    port: int
    verdict: str  # accept, drop, reject, ...
    hits: tuple[str, ...]  # `table/chain: rule` of every rule that matched, in order

    @property
    def chains(self) -> list[str]:
        return [hit.split(":", 1)[0] for hit in self.hits]


@dataclass(frozen=True)
class Trace:
    source: End
    destination: End
    port: int | None
    protocol: str  # tcp, udp, icmp
    steps: tuple[Step, ...]
    passes: tuple[NodePass, ...] = ()

    def paths(self) -> list[int]:
        """The numbers of the paths: [0] when no service forked the walk."""
        return sorted({step.path for step in self.steps if step.final})

    def passes_of(self, path: int) -> list[NodePass]:
        return [p for p in self.passes if p.path in (0, path)]

    def endings(self) -> list[Step]:
        """The last step of every path."""
        return [step for step in self.steps if step.final]

    @property
    def delivered(self) -> bool:
        return all(step.action in ("deliver", "leave") for step in self.endings())

    def to_json(self) -> dict[str, object]:
        return {"from": self.source.label, "to": self.destination.label, "address": self.destination.address,
                "port": self.port, "protocol": self.protocol, "delivered": self.delivered,
                "steps": [asdict(step) for step in self.steps], "passes": [asdict(p) for p in self.passes]}


@dataclass
class _Walk:
    """One packet on its way: where it is, as what, and the steps so far."""

    node: str
    packet: Packet
    origin: str  # `arriving` on an interface, or `local` (sent by the node itself)
    path: int
    source: End  # who sent it (its address may have been masqueraded since)
    nodes_seen: int = 1
    steps: list[Step] = field(default_factory=list)


class PathTracer:
    """The cluster as its agents render it, from one snapshot of the store."""

    def __init__(self, snapshot: Snapshot, config: ClusterConfig) -> None:
        self.config = config
        self.tables = NodeTables(snapshot, config)
        self.nodes = self.tables.nodes
        self.view = self.tables.view
        self.pods_by_ip = {ip: p for p in self.view.pods for ip in p.pod_ips}
        self._passes: list[NodePass] = []

    # --- the ends --------------------------------------------------------------------------------

    def end_of(self, address: str) -> End:
        pod = self.pods_by_ip.get(address)
        if pod is not None:
            return End(address, f"pod {pod.metadata.key}", pod)
        node = self.node_holding(address)
        if node is not None:
            return End(address, f"node {node}", node=node)
        if self.in_cluster(address):
            return End(address, f"{address} (no pod holds it)")
        return End(address, f"{address} (outside the cluster)")

    def node_holding(self, address: str) -> str | None:
        return self.tables.node_holding(address)

    def local_addresses(self, node: str) -> set[str]:
        return self.tables.local_addresses(node)

    def in_cluster(self, address: str) -> bool:
        ip = ipaddress.ip_address(address)
        return any(ip in ipaddress.ip_network(subnet) for subnet in self.config.pod_subnets)

    # --- the walk ---------------------------------------------------------------------------------

    def in_family(self, end: End, family: str) -> End | None:
        """The end as it sends packets of a family: a pod or a node from its address
        of that family (as the kernel picks the source address by the destination);
        None when it has none."""
        if family_of(end.address) == family:
            return end
        if end.pod is not None:
            address = first_of(end.pod.pod_ips, family)
        elif end.node is not None and end.node in self.nodes:
            address = self.nodes[end.node].internal_ip_of(family)
        else:
            address = None
        return replace(end, address=address) if address else None

    def trace(self, source: End, target: End, port: int | None, protocol: str = "tcp") -> Trace:
        destination = target.address
        protocol = protocol.lower()
        family = family_of(destination)
        sent = f"sends {protocol.upper()} to {_address_port(destination, port)}"
        sender = self.in_family(source, family)
        if sender is None:
            return Trace(source, target, port, protocol, (
                Step("", "send", f"{source.label} {sent}", "the packet's family"),
                Step("", "drop", f"{source.label} has no {family} address to send it from",
                     f"{family} to {destination}")))
        source = sender
        packet = Packet(source.address, destination, _l4(protocol, family), port or 0)
        if source.pod is not None:
            node = source.pod.node_name or ""
            cidr = self.nodes[node].pod_cidr_of(family) if node in self.nodes else None
            gateway = gateway_for(cidr).ip if cidr else "?"
            first = Step("", "send", f"{source.label} ({source.address}) on node {node} {sent}",
                         f"route default via {gateway} dev eth0 (the pod's): to {POD_BRIDGE} of node {node}")
            walk = _Walk(node, Packet(**{**asdict(packet), "iifname": POD_BRIDGE}), "arriving", 0, source)
        elif source.node is not None:
            node = source.node
            first = Step(node, "send", f"{source.label} ({source.address}) {sent}", "the node's own process")
            walk = _Walk(node, packet, "local", 0, source)
        else:
            node = self.node_holding(destination) or ""
            if not node:
                return Trace(source, target, port, protocol, (
                    Step("", "send", f"{source.label} {sent}", "the outside world"),
                    Step("", "drop", "from outside, the cluster is reached at its nodes' addresses only "
                                     "(a NodePort, say)", f"no route to {destination} from outside the cluster")))
            first = Step("", "send", f"{source.label} {sent}: it reaches node {node} on {UPLINK}",
                         f"{destination} is node {node}'s address")
            walk = _Walk(node, Packet(**{**asdict(packet), "iifname": UPLINK}), "arriving", 0, source)
        walk.steps.append(first)
        self._passes = []
        steps = list(self._walk(walk))
        return Trace(source, target, port, protocol, tuple(steps), tuple(self._passes))

    def _walk(self, walk: _Walk) -> Iterator[Step]:
        """The steps of one packet from `walk.node` on: the node's tables, then its route."""
        yield from walk.steps
        if walk.node not in self.nodes:
            yield Step(walk.node, "drop", f"node {walk.node or '?'} is not in the store (or has no podCIDR)",
                       "the store's nodes", walk.path)
            return
        outcomes = Tracer(self.tables.fake(walk.node), frozenset(self.local_addresses(walk.node))).trace(
            walk.packet, walk.origin)
        picked = sorted({(o.destination, o.port) for o in outcomes})
        forked = walk.path == 0 and len(picked) > 1
        for outcome in sorted(outcomes, key=lambda o: (o.destination, o.port, o.verdict)):
            path = walk.path or (picked.index((outcome.destination, outcome.port)) + 1 if forked else 0)
            yield from self._after_tables(walk, outcome, path, len(picked))

    def _after_tables(self, walk: _Walk, outcome: Outcome, path: int, choices: int) -> Iterator[Step]:
        node, packet = walk.node, walk.packet
        self._passes.append(NodePass(path, node, outcome.destination, outcome.port, outcome.verdict, outcome.hits))
        service = self._service_step(node, packet, outcome, path, choices)
        if service is not None:
            yield service
        policy = self._policy_step(walk, outcome, path)
        if policy is not None:
            yield policy
        if outcome.verdict != "accept":
            yield self._refusal(walk, outcome, path)
            return
        yield from self._route(walk, outcome, path)

    def _masquerade(self, walk: _Walk, outcome: Outcome, path: int, out_address: str) -> tuple[str, list[Step]]:
        """The source as it leaves (postrouting: after the route, before a tunnel):
        masquerade takes the address of the interface the route chose."""
        if not outcome.masqueraded:
            return walk.packet.source, []
        masquerader = next((hit for hit in reversed(outcome.hits) if "masquerade" in hit), "")
        return out_address, [Step(walk.node, "masquerade", f"source {walk.packet.source} masqueraded to "
                                                           f"{out_address}, node {walk.node}'s", masquerader, path)]

    def _route(self, walk: _Walk, outcome: Outcome, path: int) -> Iterator[Step]:
        node, destination, port = walk.node, outcome.destination, outcome.port
        me = self.nodes[node]
        family = family_of(destination)
        pod_cidr = me.pod_cidr_of(family)
        to = _address_port(destination, port)
        if destination in self.local_addresses(node) or ipaddress.ip_address(destination).is_loopback:
            yield Step(node, "deliver", f"delivered to node {node} itself ({to})", "a local address of the node",
                       path)
            return
        if pod_cidr and ipaddress.ip_address(destination) in ipaddress.ip_network(pod_cidr):
            yield from self._masquerade(walk, outcome, path, str(gateway_for(pod_cidr).ip))[1]
            pod = self.pods_by_ip.get(destination)
            if pod is None:
                asking = "neighbour solicitation" if family == IPV6 else "ARP"
                yield Step(node, "drop", f"no pod on node {node} holds {destination}: nobody answers {asking} on "
                                         f"{POD_BRIDGE}", f"{pod_cidr} dev {POD_BRIDGE}", path)
                return
            yield Step(node, "deliver", f"across bridge {POD_BRIDGE} to pod {pod.metadata.key}: delivered to {to}",
                       f"{pod_cidr} dev {POD_BRIDGE} (the node's pod subnet)", path)
            return
        if walk.nodes_seen >= MAX_NODES:
            yield Step(node, "drop", "the path crosses too many nodes: a routing loop", "the routes", path)
            return
        route = self.tables.route_to(node, destination)
        next_node = self.tables.node_of(destination)
        if route is None or next_node is None:
            yield Step(node, "route", f"default route: out of {UPLINK}, leaving the cluster",
                       "route default (the node's uplink)", path)
            yield from self._masquerade(walk, outcome, path, me.internal_ip_of(family) or "?")[1]
            yield Step(node, "leave", f"leaves the cluster for {self.end_of(destination).label}", "", path)
            return
        way = "the node network" if route.dev == UPLINK else self.config.backend
        yield Step(node, "route", f"to node {next_node} ({way})", f"route {route}", path)
        out_address = (vtep_address(pod_cidr) if pod_cidr else "?") if route.dev == VXLAN_DEVICE else \
            me.internal_ip_of(family) or "?"
        source_address, masquerade = self._masquerade(walk, outcome, path, out_address)
        yield from masquerade
        arriving_on = UPLINK
        if route.dev == VXLAN_DEVICE:
            # either pod family rides one tunnel, over the node's primary family (its underlay)
            underlay = self.nodes[next_node].internal_ip_of(family_of(me.internal_ip or "")) or "?"
            yield Step(node, "tunnel", f"encapsulated in VXLAN (VNI {VXLAN_VNI}, UDP {VXLAN_PORT}) to "
                                       f"{underlay}, node {next_node}",
                       f"neighbour {route.via} and fdb entry on {route.dev} -> {underlay}", path)
            arriving_on = route.dev
        packet = Packet(source_address, destination, walk.packet.protocol, port, iifname=arriving_on)
        yield from self._walk(_Walk(next_node, packet, "arriving", path, walk.source, walk.nodes_seen + 1))

    # --- the steps' words ---------------------------------------------------------------------------

    def _service_step(self, node: str, packet: Packet, outcome: Outcome, path: int, choices: int) -> Step | None:
        """The DNAT of a service (or a node port), named after its Service; None if none happened."""
        translated = (outcome.destination, outcome.port) != (packet.destination, packet.port)
        view = self.tables.service_of(node, packet)
        if view is None or not translated:
            return None
        endpoint = next((e for e in view.endpoints if (e.ip, e.port) == (outcome.destination, outcome.port)), None)
        who = f" ({endpoint.pod}{f' on {endpoint.node}' if endpoint.node else ''})" if endpoint else ""
        among = f", one of {choices} endpoints" if choices > 1 else ""
        rule = next((hit for hit in outcome.hits if "dnat" in hit), outcome.hits[-1] if outcome.hits else "")
        element = self.tables.backend_element(node, packet, outcome)
        return Step(node, "service", f"service {view.name} ({_address_port(packet.destination, packet.port)}/"
                                     f"{packet.protocol.upper()}): DNAT to {outcome.target}{who}{among}",
                    f"{rule}; element {element}" if element else rule, path)

    def _policy_step(self, walk: _Walk, outcome: Outcome, path: int) -> Step | None:
        """What the node's policy table decided, in the evaluator's words; None when
        no policy isolates either end here."""
        policy_hits = [hit for hit in outcome.hits if hit.startswith(f"{hooks.POLICY}/")]
        deciding = [hit for hit in policy_hits if hit.split(":", 1)[0].split("/", 1)[1] not in
                    ("forward", "input", "egress", "ingress")]
        if not deciding:
            return None
        source = self.view.party(walk.packet.source)  # as this node sees it: masqueraded, maybe
        destination = self.view.party(outcome.destination)
        verdict = evaluate(self.view, source, destination, outcome.port or None, walk.packet.protocol.upper())
        here = [explain(decision, who) for decision, who in ((verdict.egress, source), (verdict.ingress, destination))
                if decision is not None and decision.isolated and who.pod is not None and who.pod.node_name == walk.node]
        allowed = outcome.verdict == "accept"
        text = "; ".join(here) or verdict.why
        return Step(walk.node, "policy", f"NetworkPolicy: {'allowed' if allowed else 'denied'}: {text}",
                    deciding[-1], path)

    def _refusal(self, walk: _Walk, outcome: Outcome, path: int) -> Step:
        last = outcome.hits[-1] if outcome.hits else f"the policy of a base chain of node {walk.node}"
        if outcome.verdict.startswith("reject"):
            view = self.tables.service_of(walk.node, walk.packet)
            why = f"service {view.name} has no endpoints" if view is not None and not view.endpoints else \
                "no service listens on this address and port"
            return Step(walk.node, "reject", f"rejected ({outcome.verdict}): {why}", last, path)
        why = "by NetworkPolicy" if last.startswith(f"{hooks.POLICY}/") else "by the node's rules"
        return Step(walk.node, "drop", f"dropped {why}", last, path)


def _address_port(address: str, port: int | None) -> str:
    return target(address, port) if port else address


def _l4(protocol: str, family: str) -> str:
    """The protocol as `meta l4proto` names it: ICMP over IPv6 is ICMPv6."""
    return "icmpv6" if protocol == "icmp" and family == IPV6 else protocol
