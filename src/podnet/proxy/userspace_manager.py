"""Running a node's userspace proxies: one asyncio loop on a thread of the agent,
the ClusterIPs they serve held on the node's loopback."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Mapping

from podnet.agent.controller import Snapshot
from podnet.kernel.netlink import open_namespace
from podnet.model.endpointslice import EndpointSlice, by_service
from podnet.model.service import Service
from podnet.proxy.endpoints import endpoints_of, pod_weights, port_name, usable
from podnet.proxy.userspace import PortProxy, PortSpec

log = logging.getLogger("podnet.proxy.userspace")


def desired_ports(services: list[Service], slices: list[EndpointSlice],
                  weights: Mapping[tuple[str, str], int]) -> dict[str, PortSpec]:
    grouped = by_service(slices)
    wanted = {}
    for service in services:
        if not service.userspace or not service.cluster_ip or service.headless:
            continue
        own = grouped.get((service.metadata.namespace, service.metadata.name), [])
        for port in service.ports:
            spec = PortSpec(port_name(service, port), service.cluster_ip, port.port, port.protocol.lower(),
                            service.scheduler, usable(endpoints_of(port, own, weights)))
            wanted[spec.name] = spec
    return wanted


class UserspaceProxies:
    """The userspace proxy controller: ports proxied in this process, with IPVS's schedulers."""

    name = "userspace-proxy"

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.loop = asyncio.new_event_loop()
        self.proxies: dict[str, PortProxy] = {}
        self._addresses: set[str] = set()
        threading.Thread(target=self.loop.run_forever, name="userspace-proxy", daemon=True).start()

    def sync(self, snapshot: Snapshot) -> None:
        wanted = desired_ports(snapshot.services, snapshot.slices, pod_weights(snapshot.pods))
        addresses = {f"{spec.address}/32" for spec in wanted.values()}
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
