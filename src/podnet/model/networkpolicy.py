"""NetworkPolicy (networking.k8s.io/v1): which pods a policy isolates, and what
its rules let in and out. Parsing validates as the API server does, so a policy
that would be refused there is refused here, naming the field."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from podnet.errors import ManifestError
from podnet.model.families import family_of
from podnet.model.fields import Fields
from podnet.model.meta import ObjectMeta
from podnet.model.origin import Origin
from podnet.model.selector import LabelSelector

INGRESS, EGRESS = "Ingress", "Egress"
PROTOCOLS = ("TCP", "UDP", "SCTP")
ENFORCEMENT = "podnet.dev/enforcement"  # "audit": log what would be dropped, drop nothing
_PORT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")  # IANA_SVC_NAME, with a letter and no "--"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class IPBlock:
    """A CIDR of either family minus its holes; an address of the other family
    is simply not in it (a dual-stack pod matches by the address of the block's family)."""

    cidr: Network
    excepted: tuple[Network, ...] = ()

    @property
    def family(self) -> str:
        return family_of(str(self.cidr))

    def holds(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return address in self.cidr and not any(address in hole for hole in self.excepted)

    @classmethod
    def parse(cls, fields: Fields) -> IPBlock:
        """As the API server validates: each hole must lie strictly inside the cidr,
        which a hole of the other family never does."""
        fields.reject_unknown("cidr", "except")
        cidr = _network(fields.at("cidr"), fields.text("cidr", required=True))
        excepted = []
        for path, value in fields.items("except"):
            hole = _network(path, value)
            if hole.version != cidr.version or not hole.subnet_of(cidr) or hole == cidr:  # type: ignore[arg-type]
                raise ManifestError(path, f"Invalid value: {str(value)!r}: must be a strict subset of `cidr`")
            excepted.append(hole)
        return cls(cidr, tuple(excepted))

    def to_manifest(self) -> dict[str, Any]:
        out: dict[str, Any] = {"cidr": str(self.cidr)}
        if self.excepted:
            out["except"] = [str(hole) for hole in self.excepted]
        return out


def _network(path: str, value: object) -> Network:
    """A CIDR; host bits are cleared, as Go's net.ParseCIDR does for the API server."""
    try:
        return ipaddress.ip_network(str(value), strict=False)
    except ValueError:
        raise ManifestError(path, f"Invalid value: {str(value)!r}: must be a valid CIDR value, "
                                  "(e.g. 10.9.8.0/24 or 2001:db8::/64)") from None


@dataclass(frozen=True)
class Peer:
    """One entry of `from` or `to`. Selectors in one peer mean AND; a podSelector
    alone means pods of the policy's own namespace."""

    pod_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    ip_block: IPBlock | None = None

    @classmethod
    def parse(cls, fields: Fields) -> Peer:
        fields.reject_unknown("podSelector", "namespaceSelector", "ipBlock")
        pods, spaces, block = (fields.mapping(key) for key in ("podSelector", "namespaceSelector", "ipBlock"))
        if block is not None and (pods is not None or spaces is not None):
            raise ManifestError(fields.path, "ipBlock may not be combined with podSelector or namespaceSelector")
        if pods is None and spaces is None and block is None:
            raise ManifestError(fields.path, "must have podSelector, namespaceSelector or ipBlock")
        return cls(LabelSelector.parse(pods) if pods is not None else None,
                   LabelSelector.parse(spaces) if spaces is not None else None,
                   IPBlock.parse(block) if block is not None else None)

    def to_manifest(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.pod_selector is not None:
            out["podSelector"] = self.pod_selector.to_manifest()
        if self.namespace_selector is not None:
            out["namespaceSelector"] = self.namespace_selector.to_manifest()
        if self.ip_block is not None:
            out["ipBlock"] = self.ip_block.to_manifest()
        return out


@dataclass(frozen=True)
class PolicyPort:
    """A port (number or a container port's name, resolved on each destination
    pod), a range up to end_port, or with port None every port of the protocol."""

    protocol: str = "TCP"
    port: int | str | None = None
    end_port: int | None = None

    @classmethod
    def parse(cls, fields: Fields) -> PolicyPort:
        fields.reject_unknown("protocol", "port", "endPort")
        protocol = fields.text("protocol", "TCP") or "TCP"
        if protocol not in PROTOCOLS:
            raise ManifestError(fields.at("protocol"), f"{protocol!r} is not TCP, UDP or SCTP")
        port = fields.data.get("port")
        if isinstance(port, bool) or not isinstance(port, (int, str, type(None))):
            raise ManifestError(fields.at("port"), "must be a port number or a port name")
        if isinstance(port, int) and not 1 <= port <= 65535:
            raise ManifestError(fields.at("port"), f"{port} is out of range 1..65535")
        if isinstance(port, str):
            if port.isdigit():
                port = int(port)
            elif len(port) > 15 or not _PORT_NAME.match(port) or "--" in port or not re.search("[a-z]", port):
                raise ManifestError(fields.at("port"), f"{port!r} is not a valid port name (at most 15 lower-case "
                                    "letters, digits and '-', with a letter)")
        end = fields.integer("endPort", minimum=1, maximum=65535)
        if end is not None:
            if not isinstance(port, int):
                raise ManifestError(fields.at("endPort"), "needs a numeric port")
            if end < port:
                raise ManifestError(fields.at("endPort"), f"{end} is below port {port}")
        return cls(protocol, port, end)

    def to_manifest(self) -> dict[str, Any]:
        out: dict[str, Any] = {"protocol": self.protocol}
        if self.port is not None:
            out["port"] = self.port
        if self.end_port is not None:
            out["endPort"] = self.end_port
        return out


@dataclass(frozen=True)
class PolicyRule:
    """An ingress or egress rule. No peers (an omitted or empty list) means every
    peer; no ports, every port."""

    peers: tuple[Peer, ...] = ()
    ports: tuple[PolicyPort, ...] = ()

    @classmethod
    def parse(cls, fields: Fields, peers_key: str) -> PolicyRule:
        fields.reject_unknown(peers_key, "ports")
        return cls(tuple(Peer.parse(peer) for peer in fields.records(peers_key)),
                   tuple(PolicyPort.parse(port) for port in fields.records("ports")))

    def to_manifest(self, peers_key: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.peers:
            out[peers_key] = [peer.to_manifest() for peer in self.peers]
        if self.ports:
            out["ports"] = [port.to_manifest() for port in self.ports]
        return out


@dataclass(frozen=True)
class NetworkPolicy:
    metadata: ObjectMeta
    pod_selector: LabelSelector = LabelSelector()
    ingress: tuple[PolicyRule, ...] = ()
    egress: tuple[PolicyRule, ...] = ()
    policy_types: tuple[str, ...] = (INGRESS,)  # as given, or inferred as the API server does
    origin: Origin | None = field(default=None, compare=False, repr=False)  # model/origin.py

    kind = "NetworkPolicy"

    @property
    def audit(self) -> bool:
        """Logs what it would drop and drops nothing."""
        return self.metadata.annotations.get(ENFORCEMENT) == "audit"

    @classmethod
    def parse(cls, fields: Fields) -> NetworkPolicy:
        metadata = ObjectMeta.parse(fields)
        enforcement = metadata.annotations.get(ENFORCEMENT, "enforce")
        if enforcement not in ("enforce", "audit"):
            raise ManifestError(f"metadata.annotations.{ENFORCEMENT}", f"{enforcement!r} is not enforce or audit")
        spec = fields.mapping("spec", required=True)
        assert spec is not None
        spec.reject_unknown("podSelector", "ingress", "egress", "policyTypes")
        selector = spec.mapping("podSelector")
        if selector is None:
            raise ManifestError(spec.at("podSelector"), "is required ({} selects every pod of the namespace)")
        ingress = tuple(PolicyRule.parse(rule, "from") for rule in spec.records("ingress"))
        egress = tuple(PolicyRule.parse(rule, "to") for rule in spec.records("egress"))
        types = spec.strings("policyTypes")
        for i, value in enumerate(types):
            if value not in (INGRESS, EGRESS):
                raise ManifestError(f"{spec.at('policyTypes')}[{i}]", f"{value!r} is not Ingress or Egress")
        if not types:  # unset: Ingress always, Egress when there are egress rules (so `egress: []` isolates nothing)
            types = (INGRESS, EGRESS) if egress else (INGRESS,)
        return cls(metadata, LabelSelector.parse(selector), ingress, egress, tuple(dict.fromkeys(types)))

    def to_manifest(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"podSelector": self.pod_selector.to_manifest(), "policyTypes": list(self.policy_types)}
        if self.ingress:
            spec["ingress"] = [rule.to_manifest("from") for rule in self.ingress]
        if self.egress:
            spec["egress"] = [rule.to_manifest("to") for rule in self.egress]
        return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": self.metadata.to_manifest(), "spec": spec}
