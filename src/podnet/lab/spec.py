"""Lab files: `kind: Cluster` (nodes and workloads, here) or `kind: Topology`
(hosts, switches, routers and links: topology_spec.py), validated whole before
anything is created.

Every error names the file, the field and the problem.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from podnet.errors import ManifestError
from podnet.kernel import iptables
from podnet.lab import names
from podnet.lab.topology_spec import Network, TopologySpec, parse_topology
from podnet.model.deployment import Deployment
from podnet.model.families import IPV4, IPV6, families_of, family_of, parse_families
from podnet.model.namespace import Namespace
from podnet.model.fields import Fields, check_dns_label, is_dns_label
from podnet.model.manifest import Resource, check_type, parse_resource
from podnet.model.pod import Pod
from podnet.model.service import Service
from podnet.model.stored import ConfigMap, Secret, ServiceAccount
from podnet.network import backends
from podnet.proxy import modes as proxy_modes

API_VERSION = "podnet.dev/v1alpha1"
_LAB_NAME_MAX = 24


IPAM_TYPES = ("host-local", "dhcp")  # the seed's two IPAM types
DEFAULT_SUBNETS: dict[str, dict[object, str]] = {  # per family (and, for the nodes, per underlay)
    "podSubnet": {IPV4: "10.244.0.0/16", IPV6: "fd00:10:244::/56"},
    "serviceSubnet": {IPV4: "10.96.0.0/12", IPV6: "fd00:10:96::/112"},
    "nodeSubnet": {IPV4: "172.18.0.0/16", IPV6: "fd00:172:18::/64", (IPV6, "routed"): "fd00:172:18::/56"},
}
NODE_MASK_KEYS = {IPV4: "nodeCIDRMaskSize", IPV6: "nodeCIDRMaskSizeIPv6"}
NODE_MASK_DEFAULTS = {IPV4: 24, IPV6: 64}  # kube-controller-manager's
ROUTED_SEGMENT = {4: 24, 6: 64}  # a routed underlay's segment per node
UNDERLAYS = {  # how the lab's nodes reach each other
    "bridged": "the nodes on one segment, the fabric's bridge",
    "routed": "each node on a subnet of its own, behind the fabric as a router",
}
BRIDGED, ROUTED = UNDERLAYS


@dataclass(frozen=True)
class ClusterSpec:
    name: str
    nodes: tuple[str, ...]
    pod_subnets: tuple[Network, ...]  # one per family, in ip_families' order
    service_subnets: tuple[Network, ...]
    node_subnets: tuple[Network, ...]
    node_cidr_mask: int  # each node's IPv4 share of the pod subnet
    pods: tuple[Pod, ...] = ()
    services: tuple[Service, ...] = ()
    dns_domain: str = "cluster.local"
    backend: str = backends.DEFAULT  # one of network/backends.py's, as flannel's
    underlay: str = BRIDGED  # one of UNDERLAYS
    store: str = "sqlite"  # or "etcd": a three-member etcd cluster in namespaces of the lab's own
    workloads: tuple[Resource, ...] = ()  # as written (Deployments whole): what `lab up` applies
    proxy_mode: str = proxy_modes.DEFAULT  # one of proxy/modes.py's, as kube-proxy's --proxy-mode
    ipam: str = "host-local"  # or "dhcp": pods lease addresses from a DHCP server on their node's bridge
    iptables_backend: str = iptables.DEFAULT_BACKEND  # with the iptables mode: iptables' nf_tables or x_tables
    ip_families: tuple[str, ...] = (IPV4,)  # networking.ipFamilies, the primary first
    node_cidr_mask_v6: int = 64

    kind = "Cluster"

    @property
    def pod_subnet(self) -> Network:
        return self.pod_subnets[0]

    @property
    def service_subnet(self) -> Network:
        return self.service_subnets[0]

    @property
    def node_subnet(self) -> Network:
        return self.node_subnets[0]

    def node_mask(self, family: str) -> int:
        return self.node_cidr_mask_v6 if family == IPV6 else self.node_cidr_mask

    @property
    def dual_stack(self) -> bool:
        return len(self.ip_families) == 2


LabSpec = Union[ClusterSpec, TopologySpec]


def load_lab_file(path: str | Path) -> LabSpec:
    """Read and validate a lab file; raises ManifestError naming the file and field."""
    from podnet.model.manifest import load_yaml_documents, read_text

    source = str(path)
    text = read_text(source, "lab file")
    documents = load_yaml_documents(text, source)
    if not documents:
        raise ManifestError("", "the lab file is empty", source)
    try:
        return parse_lab(documents, default_name=Path(path).stem)
    except ManifestError as err:
        raise err.in_source(source) from None


def parse_lab(documents: list[object], default_name: str = "lab") -> LabSpec:
    """The first document is the Cluster or Topology; later ones are extra workloads."""
    head = Fields(documents[0], "")
    kind = head.text("kind", required=True)
    api_version = head.text("apiVersion", API_VERSION)
    if api_version != API_VERSION:
        raise ManifestError("apiVersion", f"{api_version!r} is not {API_VERSION}")
    meta = head.mapping("metadata")
    scope = names.scope_prefix()
    name = (meta.text("name") if meta else None) or scope + re.sub(r"[^a-z0-9-]", "-", default_name.lower()).strip("-")
    if len(name) > _LAB_NAME_MAX or not is_dns_label(name.removeprefix(scope)):  # a scope's prefix holds one '_'
        raise ManifestError("metadata.name", f"{name!r} is not a valid name (lower-case letters, digits and '-', "
                                             f"at most {_LAB_NAME_MAX} for a lab)")
    if kind == "Cluster":
        extra = [(f"document {i + 2}", doc) for i, doc in enumerate(documents[1:])]
        return _parse_cluster(head, name, extra)
    if kind == "Topology":
        if len(documents) > 1:
            raise ManifestError("document 2", "a Topology lab file holds one document")
        return parse_topology(head, name)
    raise ManifestError("kind", f"{kind!r} is not a lab kind (Cluster or Topology)")


def _parse_cluster(head: Fields, name: str, extra: list[tuple[str, object]]) -> ClusterSpec:
    head.reject_unknown("apiVersion", "kind", "metadata", "networking", "nodes", "workloads", "store")
    store = head.text("store", "sqlite")
    if store not in ("sqlite", "etcd"):
        raise ManifestError("store", f"{store!r} is not sqlite or etcd")
    networking = head.mapping("networking") or Fields({}, "networking")
    networking.reject_unknown("ipFamilies", "podSubnet", "serviceSubnet", "nodeSubnet", "nodeCIDRMaskSize",
                              "nodeCIDRMaskSizeIPv6", "dnsDomain", "backend", "underlay", "proxyMode", "ipam",
                              "iptablesBackend")
    underlay = _choice(networking, "underlay", UNDERLAYS, BRIDGED)
    families = _ip_families(networking)
    subnets = {key: _subnets(networking, key, families, underlay) for key in DEFAULT_SUBNETS}
    keys = list(subnets)
    for i, first in enumerate(keys):
        for second in keys[i + 1:]:
            for a in subnets[first]:
                for b in subnets[second]:
                    if a.version == b.version and a.overlaps(b):
                        raise ManifestError(f"networking.{second}", f"{b} overlaps networking.{first} {a}")
    pod_subnets = subnets["podSubnet"]
    masks = {}
    for family, subnet in zip(families, pod_subnets):
        key = NODE_MASK_KEYS[family]
        masks[family] = networking.integer(key, NODE_MASK_DEFAULTS[family], minimum=subnet.prefixlen,
                                           maximum=subnet.max_prefixlen - 2)

    nodes: list[str] = []
    for node in head.records("nodes", required=True):
        node.reject_unknown("name", "role")
        node_name = check_dns_label(node.text("name", required=True), node.at("name"))
        if node_name == "internet":
            raise ManifestError(node.at("name"), "'internet' is the name of the lab's outside world; choose another")
        if node_name in nodes:
            raise ManifestError(node.at("name"), f"duplicate node name {node_name!r}")
        nodes.append(node_name)
    if not nodes:
        raise ManifestError("nodes", "a cluster needs at least one node")
    for family, pod_subnet in zip(families, pod_subnets):
        mask = masks[family]
        if pod_subnet.prefixlen > mask:
            raise ManifestError("networking.podSubnet", f"{pod_subnet} is smaller than one node's /{mask}; "
                                                        f"give a /{mask} or larger")
        capacity = 2 ** (mask - pod_subnet.prefixlen)
        if len(nodes) > capacity:
            held = f"{capacity} /{mask} node subnet{'s' if capacity != 1 else ''}"
            raise ManifestError("nodes", f"{len(nodes)} nodes do not fit: podSubnet {pod_subnet} holds only {held}")
    for node_subnet in subnets["nodeSubnet"]:
        if len(nodes) > node_subnet.num_addresses - 3:
            raise ManifestError("nodes", f"{len(nodes)} nodes do not fit in nodeSubnet {node_subnet}")

    documents = [(path, doc) for path, doc in head.items("workloads")] + extra
    workloads, pods, services = _parse_workloads(documents, nodes)
    _check_cluster_ips(services, subnets["serviceSubnet"])
    domain = networking.text("dnsDomain", "cluster.local") or "cluster.local"
    backend = _choice(networking, "backend", backends.BACKENDS, backends.DEFAULT)
    if underlay == ROUTED and backends.BACKENDS[backend].one_segment:
        crossing = " or ".join(b.name for b in backends.BACKENDS.values() if not b.one_segment)
        raise ManifestError("networking.backend", f"{backend} routes pod subnets via node IPs, so it needs the nodes "
                                                  f"on one L2 segment; a routed underlay needs backend: {crossing}")
    for node_subnet in subnets["nodeSubnet"]:
        segment = ROUTED_SEGMENT[node_subnet.version]
        if underlay == ROUTED and node_subnet.prefixlen > segment - max(1, len(nodes) - 1).bit_length():
            raise ManifestError("networking.nodeSubnet", f"a routed underlay gives each node a /{segment}: "
                                                         f"{node_subnet} is too small for {len(nodes)} nodes")
    proxy_mode = _choice(networking, "proxyMode", proxy_modes.MODES, proxy_modes.DEFAULT)
    ipam = networking.text("ipam", "host-local")
    if ipam not in IPAM_TYPES:
        raise ManifestError("networking.ipam", f"{ipam!r} is not {' or '.join(IPAM_TYPES)}")
    if ipam == "dhcp" and families != (IPV4,):
        raise ManifestError("networking.ipam", "dhcp leases IPv4 addresses only (as the reference dhcp plugin); "
                                               "use host-local for ipFamilies with IPv6")
    iptables_backend = _choice(networking, "iptablesBackend", iptables.BACKENDS, iptables.DEFAULT_BACKEND)
    if networking.has("iptablesBackend") and proxy_mode != proxy_modes.IPTABLES.name:
        raise ManifestError("networking.iptablesBackend", f"applies to proxyMode: {proxy_modes.IPTABLES.name} only")
    return ClusterSpec(name, tuple(nodes), pod_subnets, subnets["serviceSubnet"], subnets["nodeSubnet"],
                       masks.get(IPV4, NODE_MASK_DEFAULTS[IPV4]),
                       tuple(pods), tuple(services), domain.rstrip("."), backend, underlay, store, tuple(workloads),
                       proxy_mode, ipam, iptables_backend, families, masks.get(IPV6, NODE_MASK_DEFAULTS[IPV6]))


def _ip_families(networking: Fields) -> tuple[str, ...]:
    """networking.ipFamilies, or the families of the podSubnet written, or IPv4."""
    if not networking.has("ipFamilies"):
        written = networking.data.get("podSubnet")
        if isinstance(written, (str, list)) and written:
            return families_of(_cidr_texts(networking, "podSubnet"))
        return (IPV4,)
    families = parse_families(networking, "ipFamilies")
    if not families:
        raise ManifestError("networking.ipFamilies", "names no family: give [IPv4], [IPv6] or both")
    return tuple(families)


def _cidr_texts(networking: Fields, key: str) -> list[str]:
    """A subnet field as written: one CIDR, CIDRs separated by commas (as kubeadm's), or a list."""
    value = networking.data.get(key)
    if isinstance(value, list):
        return [str(v).strip() for v in value]
    if isinstance(value, str):
        return [part.strip() for part in value.split(",")]
    networking.text(key)  # names the wrong type
    return []


def _subnets(networking: Fields, key: str, families: tuple[str, ...], underlay: str) -> tuple[Network, ...]:
    """One subnet per family, in the families' order: as written, or the defaults."""
    if not networking.has(key):
        defaults = DEFAULT_SUBNETS[key]
        return tuple(ipaddress.ip_network(defaults.get((family, underlay), defaults.get(family))) for family in families)
    found: dict[str, Network] = {}
    for text in _cidr_texts(networking, key):
        try:
            subnet = ipaddress.ip_network(text)
        except ValueError as err:
            raise ManifestError(f"networking.{key}", f"{text!r} is not a network in CIDR form ({err})") from None
        family = family_of(str(subnet))
        if family in found:
            raise ManifestError(f"networking.{key}", f"gives two {family} subnets; give one per family")
        if family not in families:
            raise ManifestError(f"networking.{key}", f"{subnet} is {family}, which is not in ipFamilies "
                                                     f"[{', '.join(families)}]")
        found[family] = subnet
    missing = [family for family in families if family not in found]
    if missing:
        raise ManifestError(f"networking.{key}", f"gives no {missing[0]} subnet; ipFamilies [{', '.join(families)}] "
                                                 "needs one per family")
    return tuple(found[family] for family in families)


def _choice(networking: Fields, key: str, registry: Iterable[str], default: str) -> str:
    """One of a registry's names (backends, proxy modes, ...), or its default."""
    chosen = networking.text(key, default) or default
    names_ = list(registry)
    if chosen not in names_:
        raise ManifestError(f"networking.{key}", f"{chosen!r} is not {', '.join(names_[:-1])} or {names_[-1]}")
    return chosen


def _parse_workloads(documents: list[tuple[str, object]],
                     nodes: list[str]) -> tuple[list[Resource], list[Pod], list[Service]]:
    """The workloads as written, the pods they make (a Deployment's first
    rollout names them web-0, web-1, ...) and the services."""
    pods: dict[tuple[str, str], tuple[str, Pod]] = {}
    services: dict[tuple[str, str], Service] = {}
    workloads: list[Resource] = []
    namespaces: set[str] = set()
    for path, document in documents:
        check_type(document, path)
        resource = parse_resource(document, path)
        workloads.append(resource)
        if isinstance(resource, Namespace):
            if resource.metadata.name in namespaces:
                raise ManifestError(f"{path}.metadata.name", f"duplicate namespace {resource.metadata.name!r}")
            namespaces.add(resource.metadata.name)
            continue
        if isinstance(resource, Service):
            key = (resource.metadata.namespace, resource.metadata.name)
            if key in services:
                raise ManifestError(f"{path}.metadata.name", f"duplicate service name {key[1]!r} in namespace {key[0]}")
            services[key] = resource
            continue
        if isinstance(resource, (ConfigMap, Secret, ServiceAccount)):
            continue  # applied as given, like any manifest
        if isinstance(resource, Deployment):
            expanded = resource.pods()
        elif isinstance(resource, Pod):
            expanded = [resource]
        else:
            raise ManifestError(f"{path}.kind", f"a lab runs Namespaces, Pods, Deployments, Services, ConfigMaps, "
                                                f"Secrets and ServiceAccounts, not {resource.kind}")
        for pod in expanded:
            key = (pod.metadata.namespace, pod.metadata.name)
            if key in pods:
                raise ManifestError(f"{path}.metadata.name",
                                    f"duplicate pod name {key[1]!r} in namespace {key[0]} (also {pods[key][0]})")
            if pod.node_name is not None and pod.node_name not in nodes:
                raise ManifestError(f"{path}.spec.nodeName",
                                    f"unknown node {pod.node_name!r} (nodes: {', '.join(nodes)})")
            pods[key] = (path, pod)
    return workloads, [pod for _, pod in pods.values()], list(services.values())


def _check_cluster_ips(services: list[Service], subnets: tuple[Network, ...]) -> None:
    """Addresses and node ports a manifest asks for must be free; the store's
    allocators would refuse them too, but only once the lab is half built."""
    taken: dict[str, str] = {}
    ports: dict[int, str] = {}
    for service in services:
        for port in service.ports:
            if port.node_port and port.node_port in ports:
                raise ManifestError(f"Service {service.metadata.key} spec.ports.nodePort",
                                    f"{port.node_port} is already the node port of {ports[port.node_port]}")
            if port.node_port:
                ports[port.node_port] = service.metadata.key
        for ip in service.addresses:
            where = f"Service {service.metadata.key} spec.clusterIP"
            subnet = next((s for s in subnets if s.version == ipaddress.ip_address(ip).version), None)
            if subnet is None:
                raise ManifestError(where, f"{ip} is {family_of(ip)}, which is not one of the lab's ipFamilies")
            if ipaddress.ip_address(ip) not in subnet:
                raise ManifestError(where, f"{ip} is outside serviceSubnet {subnet}")
            if ip in taken:
                raise ManifestError(where, f"{ip} is already the clusterIP of {taken[ip]}")
            taken[ip] = service.metadata.key
