"""ClusterIPs and node ports for Services, through the store's allocators, held
for as long as the Service exists and released when it goes."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from podnet.api.cluster import NODE_PORT_RANGE, RESERVED_SERVICE_OFFSETS, ClusterConfig
from podnet.model.service import Service
from podnet.store import allocator
from podnet.store.base import Store


def _pools(store: Store, config: ClusterConfig) -> tuple[allocator.Allocator, allocator.Allocator]:
    subnet = ipaddress.ip_network(config.service_subnet)
    return (allocator.cluster_ips(store, subnet, RESERVED_SERVICE_OFFSETS),
            allocator.node_ports(store, *NODE_PORT_RANGE))


def claim(store: Store, config: ClusterConfig, services: Iterable[Service]) -> None:
    """The addresses and ports these services name, taken before any is handed
    out, so an allocation cannot take one a later document asks for."""
    ips, ports = _pools(store, config)
    for service in services:
        owner = service.metadata.key
        if service.cluster_ip and not service.headless:
            ips.claim(service.cluster_ip, owner)
        for port in service.ports:
            if port.node_port:
                ports.claim(str(port.node_port), owner)


def allocate(store: Store, config: ClusterConfig, services: Iterable[Service],
             previous: Service | None = None) -> list[Service]:
    """Addresses and ports a manifest names are claimed first (an error naming the
    holder if taken); the rest are allocated. A Service being updated keeps the
    clusterIP and node ports it had."""
    services = list(services)
    claim(store, config, services)
    ips, ports = _pools(store, config)
    kept = {(p.port, p.protocol): p.node_port for p in previous.ports} if previous else {}
    allocated = []
    for service in services:
        owner = service.metadata.key
        if service.cluster_ip is None and service.type != "ExternalName":
            service = service.with_cluster_ip(ips.allocate(owner))
        if service.exposes_node_ports:
            service = service.with_node_ports([p.node_port or kept.get((p.port, p.protocol)) or int(ports.allocate(owner))
                                               for p in service.ports])
        allocated.append(service)
    return allocated


def release(store: Store, config: ClusterConfig, service: Service, keep: Service | None = None) -> None:
    """What service holds and keep does not (all of it, when the service is deleted)."""
    ips, ports = _pools(store, config)
    if service.cluster_ip and not service.headless and (keep is None or keep.cluster_ip != service.cluster_ip):
        ips.release(service.cluster_ip)
    kept = {p.node_port for p in keep.ports} if keep else set()
    for port in service.ports:
        if port.node_port and port.node_port not in kept:
            ports.release(str(port.node_port))
