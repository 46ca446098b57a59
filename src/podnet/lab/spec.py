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
UNDERLAYS = {  # how the lab's nodes reach each other
    "bridged": "the nodes on one segment, the fabric's bridge",
    "routed": "each node on a subnet of its own, behind the fabric as a router",
}
BRIDGED, ROUTED = UNDERLAYS


@dataclass(frozen=True)
class ClusterSpec:
    name: str
    nodes: tuple[str, ...]
    pod_subnet: Network
    service_subnet: Network
    node_subnet: Network
    node_cidr_mask: int
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

    kind = "Cluster"


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
    networking.reject_unknown("podSubnet", "serviceSubnet", "nodeSubnet", "nodeCIDRMaskSize", "dnsDomain", "backend",
                              "underlay", "proxyMode", "ipam", "iptablesBackend")
    subnets = {
        "podSubnet": networking.network("podSubnet", "10.244.0.0/16"),
        "serviceSubnet": networking.network("serviceSubnet", "10.96.0.0/12"),
        "nodeSubnet": networking.network("nodeSubnet", "172.18.0.0/16"),
    }
    keys = list(subnets)
    for i, first in enumerate(keys):
        for second in keys[i + 1:]:
            if subnets[first].version == subnets[second].version and subnets[first].overlaps(subnets[second]):
                raise ManifestError(
                    f"networking.{second}", f"{subnets[second]} overlaps networking.{first} {subnets[first]}")
    pod_subnet = subnets["podSubnet"]
    mask = networking.integer("nodeCIDRMaskSize", 24, minimum=pod_subnet.prefixlen, maximum=pod_subnet.max_prefixlen - 2)

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
    if pod_subnet.prefixlen > mask:
        raise ManifestError("networking.podSubnet", f"{pod_subnet} is smaller than one node's /{mask}; "
                                                    f"give a /{mask} or larger")
    capacity = 2 ** (mask - pod_subnet.prefixlen)
    if len(nodes) > capacity:
        held = f"{capacity} /{mask} node subnet{'s' if capacity != 1 else ''}"
        raise ManifestError("nodes", f"{len(nodes)} nodes do not fit: podSubnet {pod_subnet} holds only {held}")
    if len(nodes) > subnets["nodeSubnet"].num_addresses - 3:
        raise ManifestError("nodes", f"{len(nodes)} nodes do not fit in nodeSubnet {subnets['nodeSubnet']}")

    documents = [(path, doc) for path, doc in head.items("workloads")] + extra
    workloads, pods, services = _parse_workloads(documents, nodes)
    _check_cluster_ips(services, subnets["serviceSubnet"])
    domain = networking.text("dnsDomain", "cluster.local") or "cluster.local"
    backend = _choice(networking, "backend", backends.BACKENDS, backends.DEFAULT)
    underlay = _choice(networking, "underlay", UNDERLAYS, BRIDGED)
    if underlay == ROUTED and backends.BACKENDS[backend].one_segment:
        crossing = " or ".join(b.name for b in backends.BACKENDS.values() if not b.one_segment)
        raise ManifestError("networking.backend", f"{backend} routes pod subnets via node IPs, so it needs the nodes "
                                                  f"on one L2 segment; a routed underlay needs backend: {crossing}")
    if underlay == ROUTED and subnets["nodeSubnet"].prefixlen > 24 - max(1, len(nodes) - 1).bit_length():
        raise ManifestError("networking.nodeSubnet", f"a routed underlay gives each node a /24: "
                                                     f"{subnets['nodeSubnet']} is too small for {len(nodes)} nodes")
    proxy_mode = _choice(networking, "proxyMode", proxy_modes.MODES, proxy_modes.DEFAULT)
    ipam = networking.text("ipam", "host-local")
    if ipam not in IPAM_TYPES:
        raise ManifestError("networking.ipam", f"{ipam!r} is not {' or '.join(IPAM_TYPES)}")
    if ipam == "dhcp" and pod_subnet.version != 4:
        raise ManifestError("networking.ipam", "dhcp leases IPv4 addresses; the pod subnet is IPv6")
    iptables_backend = _choice(networking, "iptablesBackend", iptables.BACKENDS, iptables.DEFAULT_BACKEND)
    if networking.has("iptablesBackend") and proxy_mode != proxy_modes.IPTABLES.name:
        raise ManifestError("networking.iptablesBackend", f"applies to proxyMode: {proxy_modes.IPTABLES.name} only")
    return ClusterSpec(name, tuple(nodes), pod_subnet, subnets["serviceSubnet"], subnets["nodeSubnet"], mask,
                       tuple(pods), tuple(services), domain.rstrip("."), backend, underlay, store, tuple(workloads),
                       proxy_mode, ipam, iptables_backend)


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


def _check_cluster_ips(services: list[Service], subnet: Network) -> None:
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
        ip = service.cluster_ip
        if ip is None or service.headless:
            continue
        where = f"Service {service.metadata.key} spec.clusterIP"
        if ipaddress.ip_address(ip) not in subnet:
            raise ManifestError(where, f"{ip} is outside serviceSubnet {subnet}")
        if ip in taken:
            raise ManifestError(where, f"{ip} is already the clusterIP of {taken[ip]}")
        taken[ip] = service.metadata.key
