"""Rows for `lab status` and `get`: pure functions of resources, kubectl's columns."""

from __future__ import annotations

from podnet.controller.deployments import owned
from podnet.model.clusternetworkpolicy import ClusterNetworkPolicy
from podnet.model.deployment import TEMPLATE_HASH, Deployment
from podnet.model.endpointslice import EndpointSlice, by_service
from podnet.model.event import Event
from podnet.model.lease import Lease
from podnet.model.namespace import Namespace
from podnet.model.networkpolicy import NetworkPolicy
from podnet.model.node import Node
from podnet.model.pod import Pod
from podnet.model.service import Service

NODE_COLUMNS = ("NAME", "STATUS", "INTERNAL-IP", "POD-CIDR", "AGENT-RESTARTS")
POD_COLUMNS = ("NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "IP", "NODE")
SERVICE_COLUMNS = ("NAMESPACE", "NAME", "TYPE", "CLUSTER-IP", "PORT(S)", "ENDPOINTS")
DEPLOYMENT_COLUMNS = ("NAMESPACE", "NAME", "READY", "UP-TO-DATE", "AVAILABLE")
NAMESPACE_COLUMNS = ("NAME", "STATUS")
ENDPOINTSLICE_COLUMNS = ("NAMESPACE", "NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS")
LEASE_COLUMNS = ("NAMESPACE", "NAME", "HOLDER", "RENEWED")
EVENT_COLUMNS = ("NAMESPACE", "LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE")
NETWORKPOLICY_COLUMNS = ("NAMESPACE", "NAME", "POD-SELECTOR", "POLICY-TYPES", "MODE")
CLUSTERNETWORKPOLICY_COLUMNS = ("NAME", "TIER", "PRIORITY", "SUBJECT", "RULES")


def node_rows(nodes: list[Node]) -> list[tuple[str, ...]]:
    return [(n.metadata.name, "Ready" if n.ready else "NotReady", n.internal_ip or "<none>", n.pod_cidr or "<none>",
             str(n.agent_restarts)) for n in nodes]


def pod_status(pod: Pod) -> str:
    """kubectl's STATUS: Terminating, a reason (CrashLoopBackOff), or the phase."""
    if pod.terminating:
        return "Terminating"
    return (pod.reason or pod.phase).split(":")[0]


def pod_rows(pods: list[Pod]) -> list[tuple[str, ...]]:
    return [
        (p.metadata.namespace, p.metadata.name, "1/1" if p.ready else "0/1", pod_status(p), str(p.restarts),
         p.pod_ip or "<none>", p.node_name or "<none>")
        for p in pods
    ]


def deployment_rows(deployments: list[Deployment], pods: list[Pod]) -> list[tuple[str, ...]]:
    rows = []
    for d in deployments:
        live = [p for p in owned(d, pods) if not p.terminating]
        ready = sum(1 for p in live if p.ready)
        current = sum(1 for p in live if p.metadata.labels.get(TEMPLATE_HASH) == d.template_hash)
        rows.append((d.metadata.namespace, d.metadata.name, f"{ready}/{d.replicas}", str(current), str(ready)))
    return rows


def networkpolicy_rows(policies: list[NetworkPolicy]) -> list[tuple[str, ...]]:
    return [(p.metadata.namespace, p.metadata.name, p.pod_selector.text(), ",".join(p.policy_types),
             "audit" if p.audit else "enforce") for p in policies]


def clusternetworkpolicy_rows(policies: list[ClusterNetworkPolicy]) -> list[tuple[str, ...]]:
    return [(p.metadata.name, p.tier, str(p.priority),
             f"namespaces {p.subject_namespaces.text()}, pods {p.subject_pods.text()}",
             f"{len(p.ingress)} ingress, {len(p.egress)} egress") for p in policies]


def namespace_rows(namespaces: list[Namespace]) -> list[tuple[str, ...]]:
    return [(n.metadata.name, "Terminating" if n.terminating else "Active") for n in namespaces]


def format_ports(service: Service) -> str:
    return ",".join(
        f"{p.port}{f':{p.node_port}' if p.node_port else ''}/{p.protocol}" for p in service.ports
    ) or "<none>"


def format_endpoints(found: list[str], limit: int = 3) -> str:
    """kubectl's style: the first few, then "+ N more..."."""
    if not found:
        return "<none>"
    shown = ",".join(found[:limit])
    return shown + (f" + {len(found) - limit} more..." if len(found) > limit else "")


def ready_endpoints(slices: list[EndpointSlice]) -> list[str]:
    """ip:port of every ready endpoint, in address order (ip alone for a slice without ports)."""
    found = {f"{e.address}:{p.port}" if p else e.address
             for piece in slices for e in piece.endpoints if e.ready for p in (piece.ports or (None,))}
    return sorted(found, key=_address_order)


def _address_order(text: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else 0 for part in text.replace(":", ".").split("."))


def service_rows(services: list[Service], slices: list[EndpointSlice]) -> list[tuple[str, ...]]:
    grouped = by_service(slices)
    return [
        (s.metadata.namespace, s.metadata.name, s.type, s.cluster_ip or "<none>", format_ports(s),
         format_endpoints(ready_endpoints(grouped.get((s.metadata.namespace, s.metadata.name), []))))
        for s in services
    ]


def endpointslice_rows(slices: list[EndpointSlice]) -> list[tuple[str, ...]]:
    """kubectl's columns: every address, ready or not."""
    return [
        (s.metadata.namespace, s.metadata.name, s.address_type, ",".join(str(p.port) for p in s.ports) or "<unset>",
         format_endpoints([e.address for e in s.endpoints]))
        for s in slices
    ]


def lease_rows(leases: list[Lease], now: float) -> list[tuple[str, ...]]:
    return [(lease.metadata.namespace, lease.metadata.name, lease.holder, f"{max(now - lease.renewed, 0):.1f}s ago")
            for lease in leases]


def event_rows(events: list[Event], now: float) -> list[tuple[str, ...]]:
    """Oldest first, as kubectl sorts them."""
    return [(e.metadata.namespace, f"{max(now - e.time, 0):.0f}s", e.type, e.reason,
             f"{e.involved[0].lower()}/{e.involved[1]}", e.message) for e in sorted(events, key=lambda e: e.time)]
