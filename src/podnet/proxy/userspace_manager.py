"""Running a node's userspace proxies: one asyncio loop on a thread of the agent,
the ClusterIPs they serve held on the node's loopback."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Mapping

from podnet.store.snapshot import Snapshot
from podnet.kernel.netlink import open_namespace
from podnet.model.endpointslice import EndpointSlice, by_service
from podnet.model.families import IPV4, IPV6, family_of, of_family
from podnet.model.service import Service
from podnet.proxy.endpoints import endpoints_of, of_address_type, pod_weights, port_name, usable
from podnet.proxy.userspace import PortProxy, PortSpec

log = logging.getLogger("podnet.proxy.userspace")
ANY_ADDRESSES = {IPV4: "0.0.0.0", IPV6: "::"}  # a node port: every address of the node, of one family
_HOST_PREFIX = {IPV4: 32, IPV6: 128}


def desired_ports(services: list[Service], slices: list[EndpointSlice], weights: Mapping[tuple[str, str], int],
                  node_name: str = "", every_service: bool = False) -> dict[str, PortSpec]:
    """The ports this process proxies: the annotated Services', or with the cluster's
    proxyMode userspace every Service's. As kube-proxy's userspace mode, each port is
    held on its ClusterIP, its external and load balancer IPs, and its node port on
    every address of the node; the Local traffic policies narrow the endpoints to
    this node's (the client's address is not kept: the proxy connects from the node).
    Each of the Service's families has its own: the primary one's are named as
    they always were, the other's carry its ClusterIP (`@fd00:10:96::a`) or
    `:node-port6`, and serve the endpoints of that family."""
    grouped = by_service(slices)
    wanted = {}
    for service in services:
        if not (service.userspace or every_service) or not service.cluster_ip or service.headless \
                or service.type == "ExternalName":
            continue
        own = grouped.get((service.metadata.namespace, service.metadata.name), [])
        for index, cluster_ip in enumerate(service.addresses):
            family = family_of(cluster_ip)
            slices_of_family = of_address_type(own, family)
            for port in service.ports:
                name, protocol = port_name(service, port), port.protocol.lower()
                everyone = usable(endpoints_of(port, slices_of_family, weights))

                def spec(suffix: str, address: str, number: int, local: bool, sources: tuple[str, ...] = ()) -> None:
                    endpoints = tuple(e for e in everyone if e.node == node_name) if local else everyone
                    wanted[name + suffix] = PortSpec(name + suffix, address, number, protocol, service.scheduler,
                                                     endpoints, service.session_affinity_seconds, sources)

                spec(f"@{cluster_ip}" if index else "", cluster_ip, port.port, service.internal_traffic_local)
                for address in of_family(service.external_ips, family):
                    spec(f"@{address}", address, port.port, service.external_traffic_local)
                if service.type == "LoadBalancer":
                    for address in of_family(service.load_balancer_ips, family):
                        spec(f"@{address}", address, port.port, service.external_traffic_local,
                             tuple(of_family(service.source_ranges, family)))
                if service.exposes_node_ports and port.node_port:
                    spec(":node-port" + ("6" if family == IPV6 else ""), ANY_ADDRESSES[family], port.node_port,
                         service.external_traffic_local)
    return wanted


class UserspaceProxies:
    """The userspace proxy controller: ports proxied in this process, with IPVS's schedulers."""

    name = "userspace-proxy"

    def __init__(self, namespace: str, node_name: str = "", every_service: bool = False) -> None:
        self.namespace = namespace
        self.node_name = node_name
        self.every_service = every_service
        self.loop = asyncio.new_event_loop()
        self.proxies: dict[str, PortProxy] = {}
        self._addresses: set[str] = set()
        threading.Thread(target=self.loop.run_forever, name="userspace-proxy", daemon=True).start()

    def sync(self, snapshot: Snapshot) -> None:
        wanted = desired_ports(snapshot.services, snapshot.slices, pod_weights(snapshot.pods),
                               self.node_name, self.every_service)
        addresses = {f"{spec.address}/{_HOST_PREFIX[family_of(spec.address)]}" for spec in wanted.values()
                     if spec.address not in ANY_ADDRESSES.values()}
        if addresses != self._addresses:
            with open_namespace(self.namespace) as ns:
                for address in addresses - self._addresses:
                    ns.ensure_address("lo", address)
                for address in self._addresses - addresses:
                    ns.remove_address("lo", address)
            self._addresses = addresses
        asyncio.run_coroutine_threadsafe(self._apply(wanted), self.loop).result()

    async def _apply(self, wanted: dict[str, PortSpec]) -> None:
        for name in set(self.proxies) - set(wanted):
            self.proxies.pop(name).close()
        for name, spec in wanted.items():
            proxy = self.proxies.get(name)
            if proxy and (proxy.spec.address, proxy.spec.port, proxy.spec.protocol) == (spec.address, spec.port, spec.protocol):
                proxy.update(spec)
                continue
            if proxy:
                proxy.close()
            proxy = PortProxy(spec)
            await proxy.start()
            self.proxies[name] = proxy
            log.info("userspace proxy for %s on %s:%d/%s (%s)", name, spec.address, spec.port, spec.protocol, spec.scheduler)
