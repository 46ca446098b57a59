"""ClusterIPs and node ports for Services, through the store's allocators, held
for as long as the Service exists and released when it goes."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from podnet.api.cluster import NODE_PORT_RANGE, RESERVED_SERVICE_OFFSETS, ClusterConfig
from podnet.model.service import Service
from podnet.store import allocator
from podnet.store.allocator import Allocator
from podnet.store.base import Store


def _pools(store: Store, config: ClusterConfig) -> tuple[Allocator, Allocator]:
    subnet = ipaddress.ip_network(config.service_subnet)
    return (allocator.cluster_ips(store, subnet, RESERVED_SERVICE_OFFSETS),
            allocator.node_ports(store, *NODE_PORT_RANGE))


def claim(store: Store, config: ClusterConfig, services: Iterable[Service]) -> None:
    """The addresses and ports these services name, taken before any is handed
    out, so an allocation cannot take one a later document asks for; all or none."""
    with _taking(store, config) as (ips, ports, taken):
        _claim(ips, ports, list(services), taken)


def allocate(store: Store, config: ClusterConfig, services: Iterable[Service],
             previous: Service | None = None) -> list[Service]:
    """Addresses and ports a manifest names are claimed first (an error naming the
    holder if taken); the rest are allocated. A Service being updated keeps the
    clusterIP and node ports it had. All or none: a refusal holds nothing."""
    services = list(services)
    kept = {(p.port, p.protocol): p.node_port for p in previous.ports} if previous else {}
    allocated = []
    with _taking(store, config) as (ips, ports, taken):
        _claim(ips, ports, services, taken)
        for service in services:
            owner = service.metadata.key
            if service.cluster_ip is None and service.type != "ExternalName":
                service = service.with_cluster_ip(_taken(ips, owner, taken))
            if service.exposes_node_ports:
                service = service.with_node_ports([p.node_port or kept.get((p.port, p.protocol))
                                                   or int(_taken(ports, owner, taken)) for p in service.ports])
            allocated.append(service)
    return allocated


@contextmanager
def _taking(store: Store, config: ClusterConfig) -> Iterator[tuple[Allocator, Allocator, list[tuple[Allocator, str]]]]:
    """The two pools, and a list of what a call takes from them, given back if the call fails."""
    ips, ports = _pools(store, config)
    taken: list[tuple[Allocator, str]] = []
    try:
        yield ips, ports, taken
    except BaseException:
        for pool, value in taken:
            pool.release(value)
        raise


def _claim(ips: Allocator, ports: Allocator, services: list[Service], taken: list[tuple[Allocator, str]]) -> None:
    """Every value is checked before any is taken, so a refusal usually writes
    nothing at all; one lost to a racing writer is given back by _taking."""
    wanted = [(ips, service.cluster_ip, service.metadata.key) for service in services
              if service.cluster_ip and not service.headless]
    wanted += [(ports, str(port.node_port), service.metadata.key) for service in services
               for port in service.ports if port.node_port]
    for pool, value, owner in wanted:
        pool.check(value, owner)
    for pool, value, owner in wanted:
        if pool.claim(value, owner):
            taken.append((pool, value))


def _taken(pool: Allocator, owner: str, taken: list[tuple[Allocator, str]]) -> str:
    value = pool.allocate(owner)
    taken.append((pool, value))
    return value


def release(store: Store, config: ClusterConfig, service: Service, keep: Service | None = None) -> None:
    """What service holds and keep does not (all of it, when the service is deleted)."""
    ips, ports = _pools(store, config)
    if service.cluster_ip and not service.headless and (keep is None or keep.cluster_ip != service.cluster_ip):
        ips.release(service.cluster_ip)
    kept = {p.node_port for p in keep.ports} if keep else set()
    for port in service.ports:
        if port.node_port and port.node_port not in kept:
            ports.release(str(port.node_port))
