"""The ends of a trace as people name them (`model/targets.py`), found in the
cluster as the tracer sees it, with an optional `:PORT` on the destination
(`[ADDRESS]:PORT` for an IPv6 address, as in a URL).

On a dual-stack cluster a pod, a node, a Service and the internet have an
address per family: the destination takes the family asked for (its primary
one by default), and the source the destination's, as the kernel picks a
source address by the destination.

`internet` is a lab's outside host: the caller says where it is (an address
per family), since the cluster itself does not know."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from podnet.errors import PodnetError
from podnet.model import targets
from podnet.model.families import family_of, first_of, is_address
from podnet.model.node import Node
from podnet.model.pod import Pod
from podnet.model.service import Service
from podnet.model.targets import Reference
from podnet.trace.path import End, PathTracer


class EndError(PodnetError):
    """A FROM or TO that names nothing in the cluster."""


@dataclass(frozen=True)
class Target:
    end: End
    port: int | None
    service: Service | None = None


def split_port(word: str) -> tuple[str, int | None]:
    """`TO[:PORT]`; an IPv4 address or a name may carry a port, an IPv6 address in
    brackets too (`[fd00::5]:80`), and a bare IPv6 address none."""
    if word.startswith("["):
        address, bracket, rest = word[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise EndError(f"{word!r}: an IPv6 address with a port is written [ADDRESS]:PORT")
        if not rest:
            return address, None
        where, port = address, rest[1:]
    elif is_address(word):
        return word, None
    else:
        where, colon, port = word.rpartition(":")
        if not colon:
            return word, None
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise EndError(f"{word!r}: the port must be a number 1-65535")
    return where, int(port)


def source_end(tracer: PathTracer, word: str, namespace: str, internet: Sequence[str] = (),
               family: str | None = None) -> End:
    """Where the packet comes from; `family`, the destination's, picks its address."""
    reference = targets.parse(word, namespace)
    if reference.kind == Service.kind:
        raise EndError(f"{word!r}: a Service does not send packets; trace from a pod, a node, an IP or the internet")
    end = _end(tracer, reference, internet, family)
    if family is not None and family_of(end.address) != family:
        raise EndError(f"{word!r} has no {family} address to send from (the destination is {family})")
    return end


def target(tracer: PathTracer, services: list[Service], word: str, namespace: str, protocol: str,
           internet: Sequence[str] = (), family: str | None = None) -> Target:
    """The destination, in `family` (by default a pod's, node's or Service's
    primary one); a Service without a port given takes its only port."""
    where, port = split_port(word)
    reference = targets.parse(where, namespace)
    if reference.kind == Service.kind:
        return _service_target(services, reference, port, protocol, family)
    end = _end(tracer, reference, internet, family)
    if family is not None and family_of(end.address) != family:
        raise EndError(f"{word!r} has no {family} address")
    return Target(end, _needs_port(word, port, protocol))


def _service_target(services: list[Service], reference: Reference, port: int | None, protocol: str,
                    family: str | None) -> Target:
    key = reference.key
    service = next((s for s in services if s.metadata.key == key), None)
    if service is None:
        raise EndError(f"no service {key} (see `podnet get svc -A`)")
    if not service.cluster_ip or service.headless:
        raise EndError(f"service {key} has no ClusterIP to trace to (it is headless or ExternalName)")
    address = first_of(service.cluster_ips, family) if family else service.cluster_ip
    if address is None:
        raise EndError(f"service {key} has no {family} ClusterIP (its families: {', '.join(service.ip_families)})")
    if port is None and protocol != "icmp":
        mine = [p for p in service.ports if p.protocol.lower() == protocol]
        if len(mine) != 1:
            raise EndError(f"service {key} has {len(mine)} {protocol.upper()} ports: give one, as svc/NAME:PORT")
        port = mine[0].port
    return Target(End(address, f"service {key} ({address})"), port, service)


def _needs_port(word: str, port: int | None, protocol: str) -> int | None:
    if protocol == "icmp":
        if port is not None:
            raise EndError(f"{word!r}: ICMP has no ports")
        return None
    if port is None:
        raise EndError(f"{word!r} needs a port for {protocol.upper()}: TO:PORT")
    return port


def _end(tracer: PathTracer, reference: Reference, internet: Sequence[str], family: str | None) -> End:
    """The end, at its address of `family` where it has one (else its primary)."""
    def pick(addresses: Sequence[str]) -> str:
        return (first_of(addresses, family) if family else None) or addresses[0]

    if reference.kind == "address":
        return tracer.end_of(reference.name)
    if reference.kind == targets.INTERNET:
        if not internet:
            raise EndError("`internet` is a lab's outside host, and this cluster has none: give its address")
        address = pick(internet)
        return End(address, f"the internet ({address})")
    if reference.kind == Node.kind:
        node = tracer.nodes.get(reference.name)
        if node is None or not node.internal_ip:
            raise EndError(f"no node {reference.name} with an address (see `podnet get nodes`)")
        return End(pick(node.internal_ips), f"node {reference.name}", node=reference.name)
    assert reference.kind == Pod.kind
    pod = next((p for p in tracer.view.pods if p.metadata.key == reference.key), None)
    if pod is None:
        raise EndError(f"no pod {reference.key} with an IP (see `podnet get pods -A`)")
    return End(pick(pod.pod_ips), f"pod {reference.key}", pod)
