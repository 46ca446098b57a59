"""The EndpointSlice controller's decision, pure: given Services, Pods and Nodes,
the slices that should exist.

As Kubernetes' controller: a pod with an address that a Service's selector
matches becomes an endpoint; endpoints whose named target ports resolve to the
same numbers share a slice, at most MAX_ENDPOINTS to one; `ready` is false for a
terminating pod unless the Service publishes not-ready addresses; a pod that has
finished (Succeeded, Failed) is no endpoint at all.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections import defaultdict
from collections.abc import Iterable

from podnet.model.endpointslice import (CONTROLLER, MANAGED_BY, MAX_ENDPOINTS, SERVICE_NAME, ZONE, EndpointSlice,
                                        SliceEndpoint, SlicePort)
from podnet.model.families import families_of, first_of
from podnet.model.meta import ObjectMeta
from podnet.model.node import Node
from podnet.model.pod import Pod
from podnet.model.selector import matches_labels
from podnet.model.service import Service, resolve_target_port


class PodIndex:
    """Pods by namespace and label, so selecting is a set intersection rather than a
    scan of every pod for every service (10 000 services x 100 000 pods)."""

    def __init__(self, pods: Iterable[Pod]) -> None:
        self._by_label: dict[tuple[str, str, str], list[Pod]] = defaultdict(list)
        for pod in pods:
            for key, value in pod.metadata.labels.items():
                self._by_label[(pod.metadata.namespace, key, value)].append(pod)

    def select(self, service: Service) -> list[Pod]:
        if not service.selector:
            return []
        candidates = [self._by_label.get((service.metadata.namespace, k, v), []) for k, v in service.selector.items()]
        smallest = min(candidates, key=len)
        if len(candidates) == 1:
            return list(smallest)  # the index already matched the only label
        return [p for p in smallest if matches_labels(service.selector, p.metadata.labels)]


def desired(services: Iterable[Service], pods: Iterable[Pod], nodes: Iterable[Node] = ()) -> list[EndpointSlice]:
    """Every slice, for every Service with a selector (ExternalName ones have none)."""
    index = PodIndex(p for p in pods if p.pod_ip and p.phase not in ("Succeeded", "Failed"))
    zones = {n.metadata.name: n.metadata.labels.get(ZONE) for n in nodes}
    slices = []
    for service in services:
        if service.type != "ExternalName" and service.selector:
            slices += service_slices(service, index.select(service), zones)
    return slices


def service_slices(service: Service, selected: list[Pod], zones: dict[str, str | None]) -> list[EndpointSlice]:
    """Slices per family of the Service (as kube's controller: one address type
    each), holding each pod's address of that family, grouped by the ports."""
    groups: dict[tuple[str, tuple[SlicePort, ...]], list[SliceEndpoint]] = defaultdict(list)
    for pod in selected:
        ports = tuple(SlicePort(p.name, target, p.protocol) for p in service.ports
                      if (target := resolve_target_port(p, pod)) is not None)
        if service.ports and not ports:
            continue  # none of the service's ports is open on this pod
        for family in address_types(service, pod):
            address = first_of(pod.pod_ips, family)
            if address is not None:
                groups[(family, ports)].append(_endpoint(service, pod, address, zones))
    slices = []
    for (address_type, ports), endpoints in sorted(groups.items(), key=lambda g: repr(g[0])):
        endpoints.sort(key=lambda e: ipaddress.ip_address(e.address))
        for chunk, start in enumerate(range(0, len(endpoints), MAX_ENDPOINTS)):
            slices.append(EndpointSlice(_meta(service, address_type, ports, chunk), address_type,
                                        tuple(endpoints[start:start + MAX_ENDPOINTS]), ports))
    return slices


def address_types(service: Service, pod: Pod) -> tuple[str, ...]:
    """The Service's families, as the API server defaulted them; for one written
    before it did, its ClusterIP's family or else the pod's primary one."""
    return service.ip_families or families_of(service.addresses) or families_of(pod.pod_ips[:1])


def _endpoint(service: Service, pod: Pod, address: str, zones: dict[str, str | None]) -> SliceEndpoint:
    serving = pod.ready
    ready = service.publish_not_ready or (serving and not pod.terminating)
    named = pod.hostname if pod.hostname and pod.subdomain == service.metadata.name else None
    return SliceEndpoint(address, ready, serving, pod.terminating, pod.node_name,
                         zones.get(pod.node_name or ""), named, pod.metadata.name)


def _meta(service: Service, address_type: str, ports: tuple[SlicePort, ...], chunk: int) -> ObjectMeta:
    """A stable name per (address type, ports, chunk), so a pass rewrites a slice
    in place rather than replacing it."""
    digest = hashlib.sha256(repr((address_type, ports, chunk)).encode()).hexdigest()[:5]
    name = service.metadata.name
    return ObjectMeta(f"{name}-{digest}", service.metadata.namespace, {SERVICE_NAME: name, MANAGED_BY: CONTROLLER},
                      owner=("Service", name))


def managed(slices: Iterable[EndpointSlice]) -> list[EndpointSlice]:
    """The slices this controller owns; a user's own slices are theirs to keep."""
    return [s for s in slices if s.metadata.labels.get(MANAGED_BY) == CONTROLLER]
