"""Rows for `lab status`: pure functions of resources, in kubectl's words
(`podnet get` prints the API server's Tables instead)."""

from __future__ import annotations

import ipaddress

from podnet.model.endpointslice import EndpointSlice, by_service
from podnet.model.node import Node
from podnet.model.pod import Pod
from podnet.model.service import Service

NODE_COLUMNS = ("NAME", "STATUS", "INTERNAL-IP", "POD-CIDR", "AGENT-RESTARTS")
POD_COLUMNS = ("NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "IP", "NODE")
SERVICE_COLUMNS = ("NAMESPACE", "NAME", "TYPE", "CLUSTER-IP", "PORT(S)", "ENDPOINTS")


def node_rows(nodes: list[Node]) -> list[tuple[str, ...]]:
    return [(n.metadata.name, "Ready" if n.ready else "NotReady", n.internal_ip or "<none>", n.pod_cidr or "<none>",
             str(n.agent_restarts)) for n in nodes]


def pod_rows(pods: list[Pod]) -> list[tuple[str, ...]]:
    """READY, STATUS and RESTARTS as kube-apiserver's Table says them."""
    import time

    from podnet.apiserver.tables.age import Clock
    from podnet.apiserver.tables.pods import pod_cells

    clock = Clock.at(time.time())
    rows = []
    for p in pods:
        _, ready, status, restarts, *_ = pod_cells(p.to_manifest(), clock)
        rows.append((p.metadata.namespace, p.metadata.name, str(ready), str(status), str(restarts),
                     p.pod_ip or "<none>", p.node_name or "<none>"))
    return rows


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
    """ip:port of every ready endpoint, as kubectl joins them ([ip]:port for IPv6),
    IPv4 before IPv6 and each in address order (ip alone for a slice without ports)."""
    found = {(ipaddress.ip_address(e.address), p.port if p else 0)
             for piece in slices for e in piece.endpoints if e.ready for p in (piece.ports or (None,))}
    ordered = sorted(found, key=lambda item: (item[0].version, int(item[0]), item[1]))
    return [(f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}") if port else str(ip) for ip, port in ordered]


def service_rows(services: list[Service], slices: list[EndpointSlice]) -> list[tuple[str, ...]]:
    grouped = by_service(slices)
    return [
        (s.metadata.namespace, s.metadata.name, s.type, s.cluster_ip or "<none>", format_ports(s),
         format_endpoints(ready_endpoints(grouped.get((s.metadata.namespace, s.metadata.name), []))))
        for s in services
    ]
