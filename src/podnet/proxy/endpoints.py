"""What the proxy needs to know of each service port, derived from Services and Pods.

Like an EndpointSlice: the endpoints a port may send to, chosen as kube-proxy
chooses them (ready ones; terminating ones only when none is ready), and which of
them are on this node (for the Local traffic policies).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from podnet.model.pod import Pod
from podnet.model.selector import matches_labels
from podnet.model.service import Endpoint, Service, ServicePort


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


class PodIndex:
    """Pods by namespace and label, so selecting is a set intersection rather than a
    scan of every pod for every service (10 000 services x 100 000 pods)."""

    def __init__(self, pods: list[Pod]) -> None:
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


def service_ports(services: list[Service], pods: list[Pod], node_name: str) -> list[ServicePortView]:
    """Every port that gets rules: ClusterIP services with an address (headless and
    ExternalName services are DNS only)."""
    index = PodIndex(pods)
    views = []
    for service in sorted(services, key=lambda s: s.metadata.key):
        if not service.cluster_ip or service.headless or service.type == "ExternalName" or service.userspace:
            continue  # headless and ExternalName are DNS only; userspace ones have their own proxy
        selected = index.select(service)
        for port in service.ports:
            chosen = usable(service.endpoints_of_selected(port, selected))
            views.append(ServicePortView(
                name=port_name(service, port),
                cluster_ip=service.cluster_ip,
                protocol=port.protocol.lower(),
                port=port.port,
                node_port=port.node_port if service.exposes_node_ports else None,
                endpoints=chosen,
                local_endpoints=tuple(e for e in chosen if e.node == node_name),
                affinity_seconds=service.session_affinity_seconds,
                external_local=service.external_traffic_local,
                internal_local=service.internal_traffic_local,
                external_ips=service.external_ips,
                source_ranges=service.source_ranges,
                load_balancer_ips=service.load_balancer_ips if service.type == "LoadBalancer" else (),
            ))
    return views
