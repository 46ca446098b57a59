"""From a validated cluster spec to every address and name the lab will use.

Pure: planning twice gives the same plan, and nothing here touches the kernel,
so `lab up` knows the whole lab (and every error) before it creates anything.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Iterator
from dataclasses import dataclass

from podnet.api.cluster import dns_ip
from podnet.errors import ManifestError
from podnet.lab import names
from podnet.lab.spec import ROUTED, ROUTED_SEGMENT, ClusterSpec, Network
from podnet.model.families import IPV4, IPV6, family_of
from podnet.model.meta import ObjectMeta
from podnet.model.node import HOSTNAME_LABEL, Node
from podnet.model.pod import Container, Pod
from podnet.model.service import REQUIRE_DUAL_STACK, SINGLE_STACK, Service, ServicePort

FABRIC_BRIDGE = "br0"
NODE_UPLINK = "eth0"
# The lab's outside world: a namespace behind the fabric, with an address from
# TEST-NET-3 (and, in a lab with IPv6, from 2001:db8::/32, the documentation
# prefix), running a web server and the DNS server pods' names fall through to.
INTERNET = "internet"
INTERNET_ADDRESS = "203.0.113.10/24"
INTERNET_IP = INTERNET_ADDRESS.split("/")[0]
INTERNET_GATEWAY = "203.0.113.1/24"  # the fabric's side
INTERNET_ADDRESS6 = "2001:db8::10/64"
INTERNET_IP6 = INTERNET_ADDRESS6.split("/")[0]
INTERNET_GATEWAY6 = "2001:db8::1/64"
INTERNET_IPS = (INTERNET_IP, INTERNET_IP6)  # the outside host, in each family a lab may have
INTERNET_ADDRESSES = {IPV4: (INTERNET_ADDRESS, INTERNET_GATEWAY), IPV6: (INTERNET_ADDRESS6, INTERNET_GATEWAY6)}
INTERNET_NAMES = "www.example.org example.org internet.example.org"


def internet_hosts(families: tuple[str, ...]) -> str:
    """The internet's hosts file: www.example.org has an address in each of the lab's families."""
    return "".join(f"{INTERNET_ADDRESSES[f][0].split('/')[0]} {INTERNET_NAMES}\n" for f in families)



@dataclass(frozen=True)
class UnderlaySlot:
    """A node's place on the underlay in one family."""

    address: str  # "172.18.0.2/16" on the node's uplink
    gateway: str  # the fabric's address toward the node: its default route
    router_port: str | None = None  # routed underlay: that address with its prefix, on the fabric's port

    @property
    def ip(self) -> str:
        return self.address.split("/")[0]


@dataclass(frozen=True)
class NodePlan:
    name: str
    namespace: str
    slots: tuple[UnderlaySlot, ...]  # one per family, the primary first
    pod_cidrs: tuple[str, ...]
    fabric_ifname: str  # the uplink's other end, on the fabric bridge (or, routed, a router port)

    @property
    def address(self) -> str:
        return self.slots[0].address

    @property
    def gateway(self) -> str:
        return self.slots[0].gateway

    @property
    def router_port(self) -> str | None:
        return self.slots[0].router_port

    @property
    def ip(self) -> str:
        return self.slots[0].ip

    @property
    def ips(self) -> tuple[str, ...]:
        return tuple(slot.ip for slot in self.slots)

    @property
    def pod_cidr(self) -> str:
        return self.pod_cidrs[0] if self.pod_cidrs else ""

    def node(self) -> Node:
        """Labelled as kubelet labels its node, so a nodeSelector can name it."""
        return Node(ObjectMeta(self.name, namespace="", labels={HOSTNAME_LABEL: self.name}), self.pod_cidrs, self.ips)


@dataclass(frozen=True)
class ClusterPlan:
    lab: str
    fabric_namespace: str
    fabric_addresses: tuple[str, ...]  # the fabric bridge's, one per family
    nodes: tuple[NodePlan, ...]
    extra_pods: tuple[Pod, ...] = ()  # what every cluster gets besides the lab file's: the cluster DNS
    extra_services: tuple[Service, ...] = ()

    @property
    def fabric_address(self) -> str:
        return self.fabric_addresses[0]

    @property
    def internet_namespace(self) -> str:
        return names.member_namespace(self.lab, INTERNET)

    @property
    def namespaces(self) -> list[str]:
        return [self.fabric_namespace, self.internet_namespace, *(n.namespace for n in self.nodes)]

    def node(self, name: str) -> NodePlan:
        return next(n for n in self.nodes if n.name == name)


def plan_cluster(spec: ClusterSpec) -> ClusterPlan:
    pod_cidrs = zip(*(subnet.subnets(new_prefix=spec.node_mask(family_of(str(subnet))))
                      for subnet in spec.pod_subnets))
    slots = underlay_slots(spec)
    nodes = tuple(node_plan(spec.name, name, next(slots), tuple(str(c) for c in next(pod_cidrs))) for name in spec.nodes)
    extra_pods: tuple[Pod, ...] = ()
    extra_services: tuple[Service, ...] = ()
    if not any(s.metadata.key == "kube-system/kube-dns" for s in spec.services):
        dns_pod, dns_service = cluster_dns(spec, nodes[0].name)
        extra_pods, extra_services = (dns_pod,), (dns_service,)
    _check_capacity(nodes, (*spec.pods, *extra_pods))
    fabric = tuple(f"{next(subnet.hosts())}/{subnet.prefixlen}" for subnet in spec.node_subnets)
    return ClusterPlan(spec.name, names.lab_namespace(spec.name), fabric, nodes, extra_pods, extra_services)


def underlay_slots(spec: ClusterSpec) -> Iterator[tuple[UnderlaySlot, ...]]:
    """Where nodes sit on the underlay, in order, a slot per family."""
    return zip(*(_family_slots(subnet, spec.underlay) for subnet in spec.node_subnets))


def _family_slots(subnet: Network, underlay: str) -> Iterator[UnderlaySlot]:
    """Bridged: the fabric's next addresses, the fabric itself their gateway.
    Routed: node i on the i-th segment (a /24, or a /64) after the fabric's own,
    behind the fabric's first address there."""
    hosts = subnet.hosts()
    fabric_ip = next(hosts)
    if underlay == ROUTED:
        for segment in itertools.islice(subnet.subnets(new_prefix=ROUTED_SEGMENT[subnet.version]), 1, None):
            router, address = itertools.islice(segment.hosts(), 2)
            yield UnderlaySlot(f"{address}/{segment.prefixlen}", str(router), f"{router}/{segment.prefixlen}")
    else:
        for address in hosts:
            yield UnderlaySlot(f"{address}/{subnet.prefixlen}", str(fabric_ip))


def node_plan(lab: str, name: str, slots: tuple[UnderlaySlot, ...], pod_cidrs: tuple[str, ...]) -> NodePlan:
    return NodePlan(name, names.member_namespace(lab, name), slots, pod_cidrs, names.short_ifname(name))


# As kubeadm's CoreDNS: health on 8080, readiness on 8181, metrics on 9153.
DNS_COMMAND = ("podnet", "dns", "--health", ":8080", "--ready", ":8181", "--metrics", ":9153")


def cluster_dns(spec: ClusterSpec, node: str) -> tuple[Pod, Service]:
    """What kubeadm adds to every cluster: a DNS pod (here `podnet dns`), and the
    kube-dns Service at the tenth address of the service subnet."""
    labels = {"k8s-app": "kube-dns"}
    pod = Pod(ObjectMeta("coredns", "kube-system", labels), (Container("dns", command=DNS_COMMAND),), node)
    ports = (ServicePort(53, 53, "UDP", "dns"), ServicePort(53, 53, "TCP", "dns-tcp"))
    addresses = tuple(dns_ip(subnet) for subnet in spec.service_subnets)  # a ClusterIP per family, as kubeadm's
    return pod, Service(ObjectMeta("kube-dns", "kube-system", labels), "ClusterIP", labels, ports, addresses,
                        ip_families=spec.ip_families,
                        ip_family_policy=REQUIRE_DUAL_STACK if spec.dual_stack else SINGLE_STACK)


def _check_capacity(nodes: tuple[NodePlan, ...], pods: tuple[Pod, ...]) -> None:
    """Every pod needs an address on its node (the node's subnet less network,
    gateway and broadcast): pods pinned with nodeName on theirs, the rest anywhere."""
    capacity = {n.name: min(ipaddress.ip_network(c).num_addresses - 3 for c in n.pod_cidrs) for n in nodes}
    for node in nodes:
        pinned = sum(1 for p in pods if p.node_name == node.name)
        if pinned > capacity[node.name]:
            raise ManifestError("workloads", f"node {node.name} gets {pinned} pods (with the cluster DNS) but its "
                                             f"subnet {node.pod_cidr} holds {capacity[node.name]}")
    if len(pods) > sum(capacity.values()):
        raise ManifestError("workloads", f"{len(pods)} pods (with the cluster DNS) do not fit in the nodes' subnets, "
                                         f"which hold {sum(capacity.values())}")
