"""The ends of a trace as people name them: `client`, `apps/web-1`, `svc/web`,
`apps/svc/web`, `node/worker`, an IP address, or `internet` (the lab's outside
host), with an optional `:PORT` on the destination."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from podnet.errors import PodnetError
from podnet.lab.plan import INTERNET_ADDRESS
from podnet.model.service import Service
from podnet.trace.path import End, PathTracer

INTERNET = INTERNET_ADDRESS.split("/")[0]
_POD_WORDS = ("pod", "pods", "po")
_SERVICE_WORDS = ("svc", "service", "services")
_NODE_WORDS = ("node", "nodes", "no")


class EndError(PodnetError):
    """A FROM or TO that names nothing in the cluster."""


@dataclass(frozen=True)
class Target:
    end: End
    port: int | None
    service: Service | None = None


def split_port(word: str) -> tuple[str, int | None]:
    """`TO[:PORT]`; an IPv4 address or a name may carry a port, nothing else has a colon."""
    where, colon, port = word.rpartition(":")
    if not colon:
        return word, None
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise EndError(f"{word!r}: the port must be a number 1-65535")
    return where, int(port)


def source_end(tracer: PathTracer, word: str, namespace: str) -> End:
    if word == "internet":
        return End(INTERNET, f"the internet ({INTERNET})")
    parts = word.split("/")
    if len(parts) >= 2 and parts[-2] in _SERVICE_WORDS:
        raise EndError(f"{word!r}: a Service does not send packets; trace from a pod, a node, an IP or the internet")
    return _end(tracer, word, namespace)


def target(tracer: PathTracer, services: list[Service], word: str, namespace: str, protocol: str) -> Target:
    """The destination; a Service without a port given takes its only port."""
    where, port = split_port(word)
    parts = where.split("/")
    if len(parts) >= 2 and parts[-2] in _SERVICE_WORDS and len(parts) <= 3:
        key = f"{parts[0] if len(parts) == 3 else namespace}/{parts[-1]}"
        service = next((s for s in services if s.metadata.key == key), None)
        if service is None:
            raise EndError(f"no service {key} (see `podnet get svc -A`)")
        if not service.cluster_ip or service.headless:
            raise EndError(f"service {key} has no ClusterIP to trace to (it is headless or ExternalName)")
        if port is None and protocol != "icmp":
            mine = [p for p in service.ports if p.protocol.lower() == protocol]
            if len(mine) != 1:
                raise EndError(f"service {key} has {len(mine)} {protocol.upper()} ports: give one, as svc/NAME:PORT")
            port = mine[0].port
        return Target(End(service.cluster_ip, f"service {key} ({service.cluster_ip})"), port, service)
    if where == "internet":
        return Target(End(INTERNET, f"the internet ({INTERNET})"), _needs_port(word, port, protocol))
    return Target(_end(tracer, where, namespace), _needs_port(word, port, protocol))


def _needs_port(word: str, port: int | None, protocol: str) -> int | None:
    if protocol == "icmp":
        if port is not None:
            raise EndError(f"{word!r}: ICMP has no ports")
        return None
    if port is None:
        raise EndError(f"{word!r} needs a port for {protocol.upper()}: TO:PORT")
    return port


def _end(tracer: PathTracer, word: str, namespace: str) -> End:
    try:
        return tracer.end_of(str(ipaddress.ip_address(word)))
    except ValueError:
        pass
    parts = [part for i, part in enumerate(word.split("/")) if not (i < 2 and part in _POD_WORDS)]
    if len(parts) == 2 and parts[0] in _NODE_WORDS:
        node = tracer.nodes.get(parts[1])
        if node is None or not node.internal_ip:
            raise EndError(f"no node {parts[1]} with an address (see `podnet get nodes`)")
        return End(node.internal_ip, f"node {parts[1]}", node=parts[1])
    if len(parts) > 2 or not all(parts):
        raise EndError(f"{word!r} is not a pod (name or namespace/name), svc/NAME, node/NAME, an IP address "
                       f"or internet")
    key = "/".join(parts) if len(parts) == 2 else f"{namespace}/{parts[0]}"
    pod = next((p for p in tracer.view.pods if p.metadata.key == key), None)
    if pod is None:
        raise EndError(f"no pod {key} with an IP (see `podnet get pods -A`)")
    return End(pod.pod_ip or "", f"pod {key}", pod)
