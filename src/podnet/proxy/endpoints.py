"""What the proxy needs to know of each service port, read from Services and
their EndpointSlices: the endpoints a port may send to, chosen as kube-proxy
chooses them (ready ones; terminating ones only when none is ready), and which of
them are on this node (for the Local traffic policies).

A port has a view per IP family of its Service, as kube-proxy has a proxier per
family: the ClusterIP of family F is served by the Service's EndpointSlices of
addressType F, and its external and load balancer IPs and source ranges are
those of F. A single-stack Service has views of its one family only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from podnet.model.endpointslice import EndpointSlice, by_service
from podnet.model.families import IPV4, family_of, of_family
from podnet.model.pod import Pod
from podnet.model.service import Service, ServicePort, pod_weight


@dataclass(frozen=True)
class Endpoint:
    """One backend of a service port: a pod's IP and resolved port. ready: takes
    new connections; terminating: only when no ready one is left."""

    ip: str
    port: int
    pod: str
    node: str | None
    ready: bool
    terminating: bool = False
    weight: int = 1


@dataclass(frozen=True)
class ServicePortView:
    name: str  # "apps/web-service:http"
    cluster_ip: str
    protocol: str  # nft's spelling: tcp, udp, sctp
    port: int
    node_port: int | None
    endpoints: tuple[Endpoint, ...]  # the ones traffic may go to
    local_endpoints: tuple[Endpoint, ...]  # of those, the ones on this node
    affinity_seconds: int | None
    external_local: bool
    internal_local: bool
    external_ips: tuple[str, ...] = ()  # externalIPs and load balancer IPs
    source_ranges: tuple[str, ...] = ()  # who may use the load balancer IPs
    load_balancer_ips: tuple[str, ...] = ()
    family: str = IPV4  # of every address above

    @property
    def cluster_endpoints(self) -> tuple[Endpoint, ...]:
        """Where traffic from inside the cluster goes (internalTrafficPolicy)."""
        return self.local_endpoints if self.internal_local else self.endpoints

    @property
    def external_endpoints(self) -> tuple[Endpoint, ...]:
        """Where traffic to the node port goes (externalTrafficPolicy)."""
        return self.local_endpoints if self.external_local else self.endpoints


def usable(endpoints: list[Endpoint]) -> tuple[Endpoint, ...]:
    """Ready endpoints; terminating (but still serving) ones only when none is ready."""
    ready = tuple(e for e in endpoints if e.ready and not e.terminating)
    return ready or tuple(e for e in endpoints if e.ready and e.terminating)


def port_name(service: Service, port: ServicePort) -> str:
    return f"{service.metadata.key}:{port.name or port.port}"


def endpoints_of(port: ServicePort, slices: list[EndpointSlice], weights: Mapping[tuple[str, str], int]) -> list[Endpoint]:
    """A service port's endpoints from its slices: the slice port of the same name
    and protocol gives the number. An endpoint ready through publishNotReadyAddresses
    counts as ready even if it is not serving, as kube-proxy counts it."""
    found = []
    for piece in slices:
        number = next((p.port for p in piece.ports if p.name == port.name and p.protocol == port.protocol), None)
        if number is None:
            continue
        for e in piece.endpoints:
            found.append(Endpoint(e.address, number, e.pod or "", e.node_name, e.ready or e.serving,
                                  e.terminating and not e.ready,
                                  weights.get((piece.metadata.namespace, e.pod or ""), 1)))
    found.sort(key=lambda e: (e.ip, e.port))
    return found


def pod_weights(pods: list[Pod]) -> dict[tuple[str, str], int]:
    """The pods whose podnet.dev/weight is not the default 1, by (namespace, name)."""
    return {(p.metadata.namespace, p.metadata.name): w for p in pods if (w := pod_weight(p)) != 1}


class ViewMemo:
    """One proxy's views of its last sync, by service and family: a service whose
    object and slices of that family are the very ones it had (the store hands out
    the same parsed objects until they change) keeps its views, so a full sync of
    10 000 services rebuilds only what changed, and a change to a Service's IPv6
    slice leaves its IPv4 views as they were. Each proxy owns its own; pure
    callers pass none."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], tuple[Service, tuple[EndpointSlice, ...], object,
                                                list[ServicePortView]]] = {}

    def views(self, key: tuple[str, str], service: Service, own: tuple[EndpointSlice, ...], context: object,
              make: Callable[[], list[ServicePortView]]) -> list[ServicePortView]:
        last = self._last.get(key)
        if last is not None and last[0] is service and last[2] == context and len(last[1]) == len(own) \
                and all(a is b for a, b in zip(last[1], own)):
            return last[3]
        made = make()
        self._last[key] = (service, own, context, made)
        return made

    def keep_only(self, keys: set[tuple[str, str]]) -> None:
        """Forget the services (and families) that are gone."""
        for key in self._last.keys() - keys:
            del self._last[key]


def service_ports(services: list[Service], slices: list[EndpointSlice], node_name: str,
                  weights: Mapping[tuple[str, str], int] | None = None,
                  memo: ViewMemo | None = None) -> list[ServicePortView]:
    """Every port that gets rules, a view per family of its Service: ClusterIP
    services with an address (headless and ExternalName services are DNS only)."""
    grouped = by_service(slices)
    weights = weights or {}
    memo = memo or ViewMemo()
    context = (node_name, frozenset(weights.items()))
    views: list[ServicePortView] = []
    seen = set()
    for service in sorted(services, key=lambda s: s.metadata.key):
        if not service.cluster_ip or service.headless or service.type == "ExternalName" or service.userspace:
            continue  # headless and ExternalName are DNS only; userspace ones have their own proxy
        own = grouped.get((service.metadata.namespace, service.metadata.name), [])
        for cluster_ip in service.addresses:
            family = family_of(cluster_ip)
            mine = tuple(of_address_type(own, family))
            key = (service.metadata.key, family)
            seen.add(key)
            views += memo.views(key, service, mine, context,
                                lambda: _views_of(service, cluster_ip, family, mine, node_name, weights))
    memo.keep_only(seen)
    return views


def of_address_type(slices: list[EndpointSlice], family: str) -> list[EndpointSlice]:
    """The slices that serve a ClusterIP of this family."""
    return [piece for piece in slices if piece.address_type == family]


def _views_of(service: Service, cluster_ip: str, family: str, slices: tuple[EndpointSlice, ...], node_name: str,
              weights: Mapping[tuple[str, str], int]) -> list[ServicePortView]:
    """The views of one family of the Service: its ClusterIP of that family, served by its slices of it."""
    views = []
    balancer_ips = service.load_balancer_ips if service.type == "LoadBalancer" else ()
    for port in service.ports:
        chosen = usable(endpoints_of(port, list(slices), weights))
        views.append(ServicePortView(
            name=port_name(service, port),
            cluster_ip=cluster_ip,
            protocol=port.protocol.lower(),
            port=port.port,
            node_port=port.node_port if service.exposes_node_ports else None,
            endpoints=chosen,
            local_endpoints=tuple(e for e in chosen if e.node == node_name),
            affinity_seconds=service.session_affinity_seconds,
            external_local=service.external_traffic_local,
            internal_local=service.internal_traffic_local,
            external_ips=tuple(of_family(service.external_ips, family)),
            source_ranges=tuple(of_family(service.source_ranges, family)),
            load_balancer_ips=tuple(of_family(balancer_ips, family)),
            family=family,
        ))
    return views
