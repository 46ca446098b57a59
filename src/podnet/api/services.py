"""ClusterIPs and node ports for Services, through the store's allocators, held
for as long as the Service exists and released when it goes."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace

from podnet.api.cluster import NODE_PORT_RANGE, RESERVED_SERVICE_OFFSETS, ClusterConfig
from podnet.api.service_families import default_families
from podnet.model.families import family_of
from podnet.model.service import Service
from podnet.store import allocator
from podnet.store.allocator import Allocator
from podnet.store.base import Store


class Pools:
    """A ClusterIP pool per family of the cluster, and the node ports."""

    def __init__(self, store: Store, config: ClusterConfig) -> None:
        self.families = config.ip_families
        self.ips = {family_of(subnet): allocator.cluster_ips(store, ipaddress.ip_network(subnet),
                                                             RESERVED_SERVICE_OFFSETS)
                    for subnet in config.service_subnets}
        self.ports = allocator.node_ports(store, *NODE_PORT_RANGE)

    def of(self, ip: str) -> Allocator:
        return self.ips[family_of(ip)]


def claim(store: Store, config: ClusterConfig, services: Iterable[Service]) -> None:
    """The addresses and ports these services name, taken before any is handed
    out, so an allocation cannot take one a later document asks for; all or none."""
    with _taking(store, config) as (pools, taken):
        _claim(pools, [default_families(s, pools.families) for s in services], taken)


def allocate(store: Store, config: ClusterConfig, services: Iterable[Service],
             previous: Service | None = None) -> list[Service]:
    """Addresses and ports a manifest names are claimed first (an error naming the
    holder if taken); the rest are allocated. A Service being updated keeps the
    ClusterIPs and node ports it had. Its IP families are defaulted first, as
    kube-apiserver defaults them (service_families.py), and it gets a ClusterIP
    for each family it does not name one of. All or none: a refusal holds nothing."""
    kept = {(p.port, p.protocol): p.node_port for p in previous.ports} if previous else {}
    allocated = []
    with _taking(store, config) as (pools, taken):
        services = [default_families(s, pools.families, previous) for s in services]
        _claim(pools, services, taken)
        for service in services:
            owner = service.metadata.key
            if service.type != "ExternalName" and not service.headless:
                ips = list(service.cluster_ips)
                for family in service.ip_families[len(ips):]:
                    ips.append(_taken(pools.ips[family], owner, taken))
                service = replace(service, cluster_ips=tuple(ips))
            if service.exposes_node_ports:
                service = service.with_node_ports([p.node_port or kept.get((p.port, p.protocol))
                                                   or int(_taken(pools.ports, owner, taken)) for p in service.ports])
            allocated.append(service)
    return allocated


@contextmanager
def _taking(store: Store, config: ClusterConfig) -> Iterator[tuple[Pools, list[tuple[Allocator, str]]]]:
    """The pools, and a list of what a call takes from them, given back if the call fails."""
    pools = Pools(store, config)
    taken: list[tuple[Allocator, str]] = []
    try:
        yield pools, taken
    except BaseException:
        for pool, value in taken:
            pool.release(value)
        raise


def _claim(pools: Pools, services: list[Service], taken: list[tuple[Allocator, str]]) -> None:
    """Every value is checked before any is taken, so a refusal usually writes
    nothing at all; one lost to a racing writer is given back by _taking."""
    wanted = [(pools.of(ip), ip, service.metadata.key) for service in services for ip in service.addresses]
    wanted += [(pools.ports, str(port.node_port), service.metadata.key) for service in services
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
    pools = Pools(store, config)
    for ip in service.addresses:
        if (keep is None or ip not in keep.addresses) and family_of(ip) in pools.ips:
            pools.of(ip).release(ip)
    kept = {p.node_port for p in keep.ports} if keep else set()
    for port in service.ports:
        if port.node_port and port.node_port not in kept:
            pools.ports.release(str(port.node_port))
