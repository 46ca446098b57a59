"""EndpointSlice: where a Service's traffic may go, as the control plane decided it.

The proxy and the DNS read these rather than selecting pods themselves, as
kube-proxy and CoreDNS do, so one controller decides readiness (a pod being
deleted, a pod on a node that went NotReady) for every node at once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from podnet.errors import ManifestError
from podnet.model.fields import Fields
from podnet.model.meta import ObjectMeta
from podnet.model.origin import Origin

SERVICE_NAME = "kubernetes.io/service-name"  # the label naming the slice's Service
MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
CONTROLLER = "endpointslice-controller.podnet.dev"
ZONE = "topology.kubernetes.io/zone"  # the node label a slice endpoint's zone comes from
ADDRESS_TYPES = ("IPv4", "IPv6")
MAX_ENDPOINTS = 100  # per slice, the controller's default (--max-endpoints-per-slice)
# when the controller saw the change it wrote: network programming latency is measured from it
TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"


@dataclass(frozen=True)
class SlicePort:
    name: str | None
    port: int
    protocol: str = "TCP"


@dataclass(frozen=True)
class SliceEndpoint:
    """One pod address. ready: take new connections; serving: would answer
    (ready, whether or not terminating); terminating: being deleted."""

    address: str
    ready: bool
    serving: bool
    terminating: bool = False
    node_name: str | None = None
    zone: str | None = None
    hostname: str | None = None
    pod: str | None = None  # targetRef: the pod it stands for

    @classmethod
    def parse(cls, fields: Fields) -> SliceEndpoint:
        addresses = [str(fields.interface(path, value).ip) for path, value in fields.items("addresses", required=True)]
        if len(addresses) != 1:
            raise ManifestError(fields.at("addresses"), "must hold exactly one address")
        conditions = fields.mapping("conditions") or Fields({}, fields.at("conditions"))
        target = fields.mapping("targetRef")
        return cls(addresses[0], conditions.boolean("ready"), conditions.boolean("serving"),
                   conditions.boolean("terminating"), fields.text("nodeName"), fields.text("zone"),
                   fields.text("hostname"), target.text("name") if target else None)

    def to_manifest(self, namespace: str) -> dict[str, Any]:
        out: dict[str, Any] = {"addresses": [self.address], "conditions": {
            "ready": self.ready, "serving": self.serving, "terminating": self.terminating}}
        for key, value in (("nodeName", self.node_name), ("zone", self.zone), ("hostname", self.hostname)):
            if value:
                out[key] = value
        if self.pod:
            out["targetRef"] = {"kind": "Pod", "namespace": namespace, "name": self.pod}
        return out


@dataclass(frozen=True)
class EndpointSlice:
    metadata: ObjectMeta  # labelled with its service's name, owned by the service
    address_type: str = "IPv4"
    endpoints: tuple[SliceEndpoint, ...] = ()
    ports: tuple[SlicePort, ...] = ()
    origin: Origin | None = field(default=None, compare=False, repr=False)  # model/origin.py

    kind = "EndpointSlice"

    @property
    def service(self) -> str | None:
        return self.metadata.labels.get(SERVICE_NAME)

    @classmethod
    def parse(cls, fields: Fields) -> EndpointSlice:
        metadata = ObjectMeta.parse(fields)
        address_type = fields.text("addressType", required=True)
        if address_type not in ADDRESS_TYPES:
            raise ManifestError(fields.at("addressType"), f"{address_type!r} is not IPv4 or IPv6")
        ports = []
        for port in fields.records("ports"):
            protocol = port.text("protocol", "TCP")
            if protocol not in ("TCP", "UDP", "SCTP"):
                raise ManifestError(port.at("protocol"), f"{protocol!r} is not TCP, UDP or SCTP")
            ports.append(SlicePort(port.text("name") or None, port.integer("port", required=True, minimum=1,
                                                                            maximum=65535) or 0, protocol or "TCP"))
        endpoints = tuple(SliceEndpoint.parse(e) for e in fields.records("endpoints"))
        return cls(metadata, address_type or "IPv4", endpoints, tuple(ports))

    def to_manifest(self) -> dict[str, Any]:
        return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": self.metadata.to_manifest(),
                "addressType": self.address_type,
                "endpoints": [e.to_manifest(self.metadata.namespace) for e in self.endpoints],
                "ports": [{"name": p.name or "", "port": p.port, "protocol": p.protocol}  # name defaults to ""
                          for p in self.ports]}


def by_service(slices: Iterable[EndpointSlice]) -> dict[tuple[str, str], list[EndpointSlice]]:
    """Slices grouped by (namespace, service name), as the proxy and the DNS look them up."""
    found: dict[tuple[str, str], list[EndpointSlice]] = defaultdict(list)
    for s in slices:
        if s.service:
            found[(s.metadata.namespace, s.service)].append(s)
    return found
