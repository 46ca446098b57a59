"""The cluster as each node has it, from one snapshot of the store: the tables its
agent loads (rendered by the agent's own functions into a Fake), its service
views, its own addresses and its routes. What the path tracer walks."""

from __future__ import annotations

import ipaddress

from podnet.api.cluster import ClusterConfig
from podnet.kernel.nftables import Table, hooks
from podnet.kernel.nftables.fake import Fake
from podnet.kernel.nftables.tracer import Outcome, Packet
from podnet.kernel.route import Route
from podnet.network import backends
from podnet.model.families import IPV6, family_of
from podnet.network.node import egress_transaction, gateway_for, render_node_network
from podnet.policy.evaluator import PolicyView
from podnet.policy.ruleset import render as render_policies
from podnet.proxy.endpoints import ServicePortView, pod_weights, service_ports
from podnet.proxy.ruleset import build as build_services
from podnet.store.snapshot import Snapshot

UPLINK = "eth0"  # a node's interface on the node network


class NodeTables:
    def __init__(self, snapshot: Snapshot, config: ClusterConfig) -> None:
        self.snapshot = snapshot
        self.config = config
        self.nodes = {n.metadata.name: n for n in snapshot.nodes if n.pod_cidr}
        self.view = PolicyView(snapshot.pods, snapshot.namespaces, snapshot.policies, snapshot.nodes,
                               snapshot.cluster_policies)
        self._fakes: dict[str, Fake] = {}
        self._services: dict[str, list[ServicePortView]] = {}

    def node_holding(self, address: str) -> str | None:
        """The node whose own address this is (its node-network or pod-bridge address)."""
        for name in self.nodes:
            if address in self.local_addresses(name):
                return name
        return None


    def fake(self, node: str) -> Fake:
        """The node's tables, as its agent renders them."""
        if node not in self._fakes:
            fake = Fake()
            for family in self.config.ip_families:  # the proxy's table of each family, as the agent writes them
                fake.run(build_services(self.views(node), self.config.pod_subnet, family).transaction())
            policies = render_policies(self.view, node)
            if policies is not None:
                fake.run(policies)
            me = self.nodes[node]
            network = render_node_network(me, self.snapshot.nodes, self.config.pod_subnet, self.config.backend)
            for family, egress in network.egress:
                fake.run(egress_transaction(egress, family))
            self._fakes[node] = fake
        return self._fakes[node]

    def views(self, node: str) -> list[ServicePortView]:
        if node not in self._services:
            self._services[node] = service_ports(self.snapshot.services, self.snapshot.slices, node,
                                                 pod_weights(self.snapshot.pods))
        return self._services[node]

    def service_of(self, node: str, packet: Packet) -> ServicePortView | None:
        local = packet.destination in self.local_addresses(node)
        for view in self.views(node):
            if view.protocol != packet.protocol:
                continue
            if (view.cluster_ip == packet.destination or packet.destination in view.external_ips) and \
                    view.port == packet.port:
                return view
            if local and view.node_port == packet.port:
                return view
        return None

    def local_addresses(self, node: str) -> set[str]:
        """The node's own addresses, in every family: on the node network, on its pod
        bridge, and its VTEP's."""
        me = self.nodes.get(node)
        if me is None:
            return set()
        found = {str(gateway_for(cidr).ip) for cidr in me.pod_cidrs} | set(me.internal_ips)
        found |= backends.named(self.config.backend).own_addresses(me)
        return found

    def route_to(self, node: str, destination: str) -> Route | None:
        """The node's own route to another node's pods or to another node (the node
        network is one segment: its addresses are reached directly on the uplink)."""
        address = ipaddress.ip_address(destination)
        network = render_node_network(self.nodes[node], self.snapshot.nodes, self.config.pod_subnet,
                                      self.config.backend)
        for route in sorted(network.routes, key=lambda r: -ipaddress.ip_network(r.dst).prefixlen):
            if address in ipaddress.ip_network(route.dst):
                return route
        holder = self.node_holding(destination)
        if holder is not None and destination in self.nodes[holder].internal_ips:
            return Route(f"{destination}/{address.max_prefixlen}", None, UPLINK)
        return None

    def node_of(self, destination: str) -> str | None:
        """The node that holds the address, or whose pod subnet (of either family) holds it."""
        address = ipaddress.ip_address(destination)
        for name, node in self.nodes.items():
            if destination in node.internal_ips or any(address in ipaddress.ip_network(c) for c in node.pod_cidrs):
                return name
        return None

    def backend_element(self, node: str, packet: Packet, outcome: Outcome) -> str:
        """The map element that sends the packet to this endpoint: `backends[10.96.0.2 . tcp . 80 . 1]`,
        in the proxy's table of the packet's family."""
        tables = self.fake(node).tables
        proxy = Table("ip6" if family_of(packet.destination) == IPV6 else "ip", hooks.PROXY)
        if proxy not in tables:
            return ""
        prefixes = {"backends": (packet.destination, packet.protocol, str(packet.port)),
                    "node_port_backends": (packet.protocol, str(packet.port))}
        for name, prefix in prefixes.items():
            for key, element in tables[proxy].elements.get(name, {}).items():
                if key[:len(prefix)] == prefix and element.value == (outcome.destination, str(outcome.port)):
                    return f"{name}[{' . '.join(key)}] = {' . '.join(element.value)}"
        return ""
