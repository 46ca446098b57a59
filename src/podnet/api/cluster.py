"""The settings of one cluster that every writer needs (the service subnet for
ClusterIPs, the DNS domain for pods' resolv.conf), kept in the store, as an API
server and a kubelet get them from their flags."""

from __future__ import annotations

import ipaddress
from dataclasses import KW_ONLY, asdict, dataclass, field

from podnet.errors import PodnetError
from podnet.model.families import IPV6, family_of, first_of, split_cidrs
from podnet.model.identity import stamped
from podnet.model.namespace import BUILT_IN, Namespace
from podnet.store import resources
from podnet.store.base import Store

KEY = "/registry/podnet.dev/cluster"
NODE_PORT_RANGE = (30000, 32767)
RESERVED_SERVICE_OFFSETS = (1, 10)  # the API service and the cluster DNS


def dns_ip(service_subnet: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str:
    """The cluster DNS's Service address, the tenth of the service subnet (as kubeadm's)."""
    return str(service_subnet.network_address + RESERVED_SERVICE_OFFSETS[1])


@dataclass(frozen=True)
class ClusterConfig:
    pod_subnet: str  # as kube-controller-manager's --cluster-cidr: one CIDR per family, comma-separated
    service_subnet: str  # as kube-apiserver's --service-cluster-ip-range, the same way
    dns_domain: str = "cluster.local"
    upstreams: list[str] = field(default_factory=list)  # where the cluster DNS forwards other names
    node_cidr_mask: int = 24  # each node's IPv4 lease of the pod subnet, as flannel's SubnetLen
    node_cidr_mask_v6: int = 64  # and its IPv6 one (--node-cidr-mask-size-ipv6)
    _: KW_ONLY  # the choices, by their registries' names (network/backends.py, proxy/modes.py, kernel/iptables.py)
    backend: str  # how pod traffic crosses nodes, as flannel keeps its Backend in etcd
    proxy_mode: str  # how Services are programmed, as kube-proxy's --proxy-mode
    iptables_backend: str  # with the iptables proxy mode: iptables' nf_tables or x_tables backend

    @property
    def pod_subnets(self) -> tuple[str, ...]:
        return split_cidrs(self.pod_subnet)

    @property
    def service_subnets(self) -> tuple[str, ...]:
        return split_cidrs(self.service_subnet)

    @property
    def ip_families(self) -> tuple[str, ...]:
        """The cluster's families, the primary first (the service subnets' order, as kube-apiserver's)."""
        return tuple(family_of(cidr) for cidr in self.service_subnets)

    def service_subnet_of(self, family: str) -> str | None:
        return first_of(self.service_subnets, family)

    def node_mask(self, family: str) -> int:
        return self.node_cidr_mask_v6 if family == IPV6 else self.node_cidr_mask

    @property
    def dns_ip(self) -> str:
        """The cluster DNS's primary address: what a pod's resolv.conf names."""
        return self.dns_ips[0]

    @property
    def dns_ips(self) -> tuple[str, ...]:
        return tuple(dns_ip(ipaddress.ip_network(subnet)) for subnet in self.service_subnets)

    def resolv_conf(self, namespace: str) -> str:
        """As kubelet writes it for a pod with the ClusterFirst DNS policy."""
        domain = self.dns_domain
        return (f"search {namespace}.svc.{domain} svc.{domain} {domain}\n"
                f"nameserver {self.dns_ip}\noptions ndots:5\n")


def save(store: Store, config: ClusterConfig) -> None:
    store.put(KEY, asdict(config))


def load(store: Store) -> ClusterConfig:
    entry = store.get(KEY)
    if entry is None:
        raise PodnetError("the store holds no cluster settings: is it a podnet cluster's store?")
    return ClusterConfig(**entry.value)


def bootstrap(store: Store) -> None:
    """The namespaces every cluster starts with; harmless to repeat."""
    for name in BUILT_IN:
        namespace = Namespace.named(name)
        store.compare_and_swap(resources.key_of(namespace), stamped(namespace.to_manifest()), 0)
