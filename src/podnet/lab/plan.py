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
from podnet.lab.spec import ROUTED, ClusterSpec
from podnet.model.meta import ObjectMeta
from podnet.model.node import HOSTNAME_LABEL, Node
from podnet.model.pod import Container, Pod
from podnet.model.service import Service, ServicePort

FABRIC_BRIDGE = "br0"
NODE_UPLINK = "eth0"
# The lab's outside world: a namespace behind the fabric, with an address from
# TEST-NET-3, running a web server and the DNS server pods' names fall through to.
INTERNET = "internet"
INTERNET_ADDRESS = "203.0.113.10/24"
INTERNET_IP = INTERNET_ADDRESS.split("/")[0]
INTERNET_GATEWAY = "203.0.113.1/24"  # the fabric's side
INTERNET_HOSTS = "203.0.113.10 www.example.org example.org internet.example.org\n"


@dataclass(frozen=True)
class NodePlan:
    name: str
    namespace: str
    address: str  # "172.18.0.2/16" on the node's uplink
    pod_cidr: str
    fabric_ifname: str  # the uplink's other end, on the fabric bridge (or, routed, a router port)
    gateway: str = ""  # the fabric's address toward this node: its default route
    router_port: str | None = None  # routed underlay: that address with its prefix, on fabric_ifname

    @property
    def ip(self) -> str:
        return str(ipaddress.ip_interface(self.address).ip)

    def node(self) -> Node:
        """Labelled as kubelet labels its node, so a nodeSelector can name it."""
        return Node(ObjectMeta(self.name, namespace="", labels={HOSTNAME_LABEL: self.name}), (self.pod_cidr,), (self.ip,))


@dataclass(frozen=True)
class ClusterPlan:
    lab: str
    fabric_namespace: str
    fabric_address: str
    nodes: tuple[NodePlan, ...]
    extra_pods: tuple[Pod, ...] = ()  # what every cluster gets besides the lab file's: the cluster DNS
    extra_services: tuple[Service, ...] = ()

    @property
    def internet_namespace(self) -> str:
        return names.member_namespace(self.lab, INTERNET)

    @property
    def namespaces(self) -> list[str]:
        return [self.fabric_namespace, self.internet_namespace, *(n.namespace for n in self.nodes)]

    def node(self, name: str) -> NodePlan:
        return next(n for n in self.nodes if n.name == name)


def plan_cluster(spec: ClusterSpec) -> ClusterPlan:
    fabric_ip = next(spec.node_subnet.hosts())
    pod_cidrs = spec.pod_subnet.subnets(new_prefix=spec.node_cidr_mask)
    slots = underlay_slots(spec)
    nodes = tuple(node_plan(spec.name, name, next(slots), str(next(pod_cidrs))) for name in spec.nodes)
    extra_pods: tuple[Pod, ...] = ()
    extra_services: tuple[Service, ...] = ()
    if not any(s.metadata.key == "kube-system/kube-dns" for s in spec.services):
        dns_pod, dns_service = cluster_dns(spec, nodes[0].name)
        extra_pods, extra_services = (dns_pod,), (dns_service,)
    _check_capacity(nodes, (*spec.pods, *extra_pods))
    return ClusterPlan(spec.name, names.lab_namespace(spec.name), f"{fabric_ip}/{spec.node_subnet.prefixlen}",
                       nodes, extra_pods, extra_services)


UnderlaySlot = tuple[str, str, "str | None"]  # address/prefix, gateway, router port


def underlay_slots(spec: ClusterSpec) -> Iterator[UnderlaySlot]:
    """Where nodes sit on the underlay, in order. Bridged: the fabric's next
    addresses, the fabric itself their gateway. Routed: node i on the i-th /24
    after the fabric's own, behind the fabric's first address there."""
    hosts = spec.node_subnet.hosts()
    fabric_ip = next(hosts)
    if spec.underlay == ROUTED:
        for segment in itertools.islice(spec.node_subnet.subnets(new_prefix=24), 1, None):
            router, address = itertools.islice(segment.hosts(), 2)
            yield f"{address}/{segment.prefixlen}", str(router), f"{router}/{segment.prefixlen}"
    else:
        for address in hosts:
            yield f"{address}/{spec.node_subnet.prefixlen}", str(fabric_ip), None


def node_plan(lab: str, name: str, slot: UnderlaySlot, pod_cidr: str) -> NodePlan:
    address, gateway, router_port = slot
    return NodePlan(name, names.member_namespace(lab, name), address, pod_cidr, names.short_ifname(name), gateway,
                    router_port)


# As kubeadm's CoreDNS: health on 8080, readiness on 8181, metrics on 9153.
DNS_COMMAND = ("podnet", "dns", "--health", ":8080", "--ready", ":8181", "--metrics", ":9153")


def cluster_dns(spec: ClusterSpec, node: str) -> tuple[Pod, Service]:
    """What kubeadm adds to every cluster: a DNS pod (here `podnet dns`), and the
    kube-dns Service at the tenth address of the service subnet."""
    labels = {"k8s-app": "kube-dns"}
    pod = Pod(ObjectMeta("coredns", "kube-system", labels), (Container("dns", command=DNS_COMMAND),), node)
    ports = (ServicePort(53, 53, "UDP", "dns"), ServicePort(53, 53, "TCP", "dns-tcp"))
    return pod, Service(ObjectMeta("kube-dns", "kube-system", labels), "ClusterIP", labels, ports, (dns_ip(spec.service_subnet),))


def _check_capacity(nodes: tuple[NodePlan, ...], pods: tuple[Pod, ...]) -> None:
    """Every pod needs an address on its node (the node's subnet less network,
    gateway and broadcast): pods pinned with nodeName on theirs, the rest anywhere."""
    capacity = {n.name: ipaddress.ip_network(n.pod_cidr).num_addresses - 3 for n in nodes}
    for node in nodes:
        pinned = sum(1 for p in pods if p.node_name == node.name)
        if pinned > capacity[node.name]:
            raise ManifestError("workloads", f"node {node.name} gets {pinned} pods (with the cluster DNS) but its "
                                             f"subnet {node.pod_cidr} holds {capacity[node.name]}")
    if len(pods) > sum(capacity.values()):
        raise ManifestError("workloads", f"{len(pods)} pods (with the cluster DNS) do not fit in the nodes' subnets, "
                                         f"which hold {sum(capacity.values())}")
