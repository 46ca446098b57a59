"""ClusterNetworkPolicy (policy.networking.k8s.io/v1alpha2): the cluster admin's
policies around NetworkPolicy. The Admin tier is read before NetworkPolicy and
the Baseline tier after it; within a tier by priority (lower first, then name)
and rule order, and the first rule that matches decides: Accept, Deny, or Pass
(on to the next tier).

The v1alpha1 AdminNetworkPolicy and BaselineAdminNetworkPolicy are read as
ClusterNetworkPolicies of the Admin and Baseline tiers (Allow is Accept).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from podnet.errors import ManifestError
from podnet.model.fields import Fields
from podnet.model.meta import ObjectMeta
from podnet.model.networkpolicy import Network, PolicyPort
from podnet.model.origin import Origin
from podnet.model.selector import LabelSelector

ADMIN, BASELINE = "Admin", "Baseline"
ACCEPT, DENY, PASS = "Accept", "Deny", "Pass"


@dataclass(frozen=True)
class ClusterPeer:
    """Pods (of namespaces, and with a pod selector those only), or for egress
    nodes (their addresses, of every family) or networks (CIDRs of either family)."""

    namespaces: LabelSelector | None = None
    pods: LabelSelector | None = None  # with `namespaces`: pods.namespaceSelector and pods.podSelector
    nodes: LabelSelector | None = None
    networks: tuple[Network, ...] = ()

    @classmethod
    def parse(cls, fields: Fields, egress: bool) -> ClusterPeer:
        allowed = ("namespaces", "pods", "nodes", "networks") if egress else ("namespaces", "pods")
        fields.reject_unknown(*allowed)
        present = [key for key in allowed if fields.has(key)]
        if len(present) != 1:
            raise ManifestError(fields.path, f"must have exactly one of {', '.join(allowed)}")
        (key,) = present
        if key == "namespaces":
            return cls(namespaces=LabelSelector.parse(fields.mapping(key)))  # type: ignore[arg-type]
        if key == "nodes":
            return cls(nodes=LabelSelector.parse(fields.mapping(key)))  # type: ignore[arg-type]
        if key == "networks":
            networks = []
            for path, value in fields.items(key):
                try:
                    networks.append(ipaddress.ip_network(str(value), strict=False))
                except ValueError:
                    raise ManifestError(path, f"Invalid value: {str(value)!r}: must be a valid CIDR value, "
                                              "(e.g. 10.9.8.0/24 or 2001:db8::/64)") from None
            return cls(networks=tuple(networks))
        return cls(*_namespaced_pods(fields.mapping(key)))  # type: ignore[arg-type]

    def to_manifest(self) -> dict[str, Any]:
        if self.pods is not None:
            return {"pods": {"namespaceSelector": (self.namespaces or LabelSelector()).to_manifest(),
                             "podSelector": self.pods.to_manifest()}}
        if self.namespaces is not None:
            return {"namespaces": self.namespaces.to_manifest()}
        if self.nodes is not None:
            return {"nodes": self.nodes.to_manifest()}
        return {"networks": [str(n) for n in self.networks]}


def _namespaced_pods(fields: Fields) -> tuple[LabelSelector, LabelSelector]:
    fields.reject_unknown("namespaceSelector", "podSelector")
    spaces, pods = fields.mapping("namespaceSelector"), fields.mapping("podSelector")
    if spaces is None or pods is None:
        raise ManifestError(fields.path, "needs namespaceSelector and podSelector ({} selects all)")
    return LabelSelector.parse(spaces), LabelSelector.parse(pods)


@dataclass(frozen=True)
class ClusterRule:
    action: str
    peers: tuple[ClusterPeer, ...]
    ports: tuple[PolicyPort, ...] = ()  # none: every port and protocol
    name: str = ""


@dataclass(frozen=True)
class ClusterNetworkPolicy:
    metadata: ObjectMeta
    tier: str
    priority: int
    subject_namespaces: LabelSelector  # the namespaces of the pods it applies to
    subject_pods: LabelSelector = LabelSelector()  # and, within them, these pods
    ingress: tuple[ClusterRule, ...] = ()
    egress: tuple[ClusterRule, ...] = ()
    namespaces_form: bool = field(default=False, compare=False)  # subject written as namespaces: (not pods:)
    origin: Origin | None = field(default=None, compare=False, repr=False)  # model/origin.py

    kind = "ClusterNetworkPolicy"

    @property
    def order(self) -> tuple[int, str]:
        """Lower priority first; equal priorities by name, so the order is stable."""
        return self.priority, self.metadata.name

    @classmethod
    def parse(cls, fields: Fields) -> ClusterNetworkPolicy:
        metadata = ObjectMeta.parse(fields, namespaced=False)
        spec = fields.mapping("spec", required=True)
        assert spec is not None
        spec.reject_unknown("tier", "priority", "subject", "ingress", "egress")
        tier = spec.text("tier", required=True)
        if tier not in (ADMIN, BASELINE):
            raise ManifestError(spec.at("tier"), f"{tier!r} is not Admin or Baseline")
        priority = spec.integer("priority", required=True, minimum=0, maximum=1000) or 0
        namespaces, pods = _subject(spec)
        return cls(metadata, tier, priority, namespaces, pods, _rules(spec, "ingress", (ACCEPT, DENY, PASS)),
                   _rules(spec, "egress", (ACCEPT, DENY, PASS)), _namespaces_form(spec))

    def to_manifest(self) -> dict[str, Any]:
        def rules(found: tuple[ClusterRule, ...], peers_key: str) -> list[dict[str, Any]]:
            return [{**({"name": r.name} if r.name else {}), "action": r.action,
                     peers_key: [p.to_manifest() for p in r.peers],
                     **({"match": [_match_manifest(p) for p in r.ports]} if r.ports else {})} for r in found]

        subject = {"namespaces": self.subject_namespaces.to_manifest()} if self.namespaces_form else \
            {"pods": {"namespaceSelector": self.subject_namespaces.to_manifest(),
                      "podSelector": self.subject_pods.to_manifest()}}  # in the form it was written
        spec: dict[str, Any] = {"tier": self.tier, "priority": self.priority, "subject": subject}
        if self.ingress:
            spec["ingress"] = rules(self.ingress, "from")
        if self.egress:
            spec["egress"] = rules(self.egress, "to")
        return {"apiVersion": "policy.networking.k8s.io/v1alpha2", "kind": self.kind,
                "metadata": self.metadata.to_manifest(), "spec": spec}


def _namespaces_form(spec: Fields) -> bool:
    subject = spec.mapping("subject")
    return bool(subject and subject.has("namespaces"))


def _subject(spec: Fields) -> tuple[LabelSelector, LabelSelector]:
    subject = spec.mapping("subject", required=True)
    assert subject is not None
    subject.reject_unknown("namespaces", "pods")
    if subject.has("namespaces") == subject.has("pods"):
        raise ManifestError(subject.path, "must have exactly one of namespaces, pods")
    if subject.has("namespaces"):
        return LabelSelector.parse(subject.mapping("namespaces")), LabelSelector()  # type: ignore[arg-type]
    return _namespaced_pods(subject.mapping("pods"))  # type: ignore[arg-type]


def _rules(spec: Fields, key: str, actions: tuple[str, ...], allow_word: str = ACCEPT) -> tuple[ClusterRule, ...]:
    """A tier's rules; `allow_word` is how the version spells Accept (v1alpha1: Allow)."""
    peers_key, egress = ("to", True) if key == "egress" else ("from", False)
    found = []
    for rule in spec.records(key):
        rule.reject_unknown("name", "action", peers_key, "match", "ports")
        action = rule.text("action", required=True)
        spelled = {allow_word: ACCEPT, DENY: DENY, PASS: PASS}
        if action not in spelled or spelled[action] not in actions:
            words = ", ".join(w for w, a in spelled.items() if a in actions)
            raise ManifestError(rule.at("action"), f"{action!r} is not one of {words}")
        peers = tuple(ClusterPeer.parse(peer, egress) for peer in rule.records(peers_key))
        if not peers:
            raise ManifestError(rule.at(peers_key), "needs at least one peer")
        ports = tuple(_match(m) for m in rule.records("match")) + tuple(_port(p) for p in rule.records("ports"))
        found.append(ClusterRule(spelled[action], peers, ports, rule.text("name", "") or ""))
    return tuple(found)


def _match(fields: Fields) -> PolicyPort:
    """v1alpha2's `match`: {tcp|udp: {port: {number} | {portRange: {start, end}}}} or {namedPort}."""
    fields.reject_unknown("tcp", "udp", "sctp", "namedPort")
    if fields.has("namedPort"):
        return PolicyPort("TCP", fields.text("namedPort"))
    for protocol in ("tcp", "udp", "sctp"):
        inner = fields.mapping(protocol)
        if inner is not None:
            inner.reject_unknown("port")
            port = inner.mapping("port")
            if port is None:
                return PolicyPort(protocol.upper())
            port.reject_unknown("number", "portRange")
            if port.has("portRange"):
                span = port.mapping("portRange")
                assert span is not None
                start = span.integer("start", required=True, minimum=1, maximum=65535) or 0
                end = span.integer("end", required=True, minimum=start, maximum=65535) or 0
                return PolicyPort(protocol.upper(), start, end)
            return PolicyPort(protocol.upper(), port.integer("number", required=True, minimum=1, maximum=65535))
    raise ManifestError(fields.path, "must have one of tcp, udp, sctp, namedPort")


def _port(fields: Fields) -> PolicyPort:
    """v1alpha1's `ports`: {portNumber: {protocol, port}} | {namedPort} | {portRange: {protocol, start, end}}."""
    fields.reject_unknown("portNumber", "namedPort", "portRange")
    if fields.has("namedPort"):
        return PolicyPort("TCP", fields.text("namedPort"))
    for key in ("portNumber", "portRange"):
        inner = fields.mapping(key)
        if inner is not None:
            protocol = inner.text("protocol", "TCP") or "TCP"
            if protocol not in ("TCP", "UDP", "SCTP"):
                raise ManifestError(inner.at("protocol"), f"{protocol!r} is not TCP, UDP or SCTP")
            if key == "portNumber":
                return PolicyPort(protocol, inner.integer("port", required=True, minimum=1, maximum=65535))
            start = inner.integer("start", required=True, minimum=1, maximum=65535) or 0
            return PolicyPort(protocol, start, inner.integer("end", required=True, minimum=start, maximum=65535))
    raise ManifestError(fields.path, "must have one of portNumber, namedPort, portRange")


def _match_manifest(port: PolicyPort) -> dict[str, Any]:
    if isinstance(port.port, str):
        return {"namedPort": port.port}
    inner: dict[str, Any] = {}
    if port.end_port is not None:
        inner = {"port": {"portRange": {"start": port.port, "end": port.end_port}}}
    elif port.port is not None:
        inner = {"port": {"number": port.port}}
    return {port.protocol.lower(): inner}


def _v1alpha1(fields: Fields, tier: str) -> ClusterNetworkPolicy:
    metadata = ObjectMeta.parse(fields, namespaced=False)
    spec = fields.mapping("spec", required=True)
    assert spec is not None
    if tier == ADMIN:
        spec.reject_unknown("priority", "subject", "ingress", "egress")
        priority = spec.integer("priority", required=True, minimum=0, maximum=1000) or 0
        actions: tuple[str, ...] = (ACCEPT, DENY, PASS)
    else:
        spec.reject_unknown("subject", "ingress", "egress")
        if metadata.name != "default":
            raise ManifestError("metadata.name", "a BaselineAdminNetworkPolicy must be named default")
        priority, actions = 0, (ACCEPT, DENY)
    return ClusterNetworkPolicy(metadata, tier, priority, *_subject(spec), _rules(spec, "ingress", actions, "Allow"),
                                _rules(spec, "egress", actions, "Allow"))


class AdminNetworkPolicy:
    """policy.networking.k8s.io/v1alpha1: read as a ClusterNetworkPolicy of the Admin tier."""

    kind = "AdminNetworkPolicy"

    @staticmethod
    def parse(fields: Fields) -> ClusterNetworkPolicy:
        return _v1alpha1(fields, ADMIN)


class BaselineAdminNetworkPolicy:
    """policy.networking.k8s.io/v1alpha1: read as the ClusterNetworkPolicy of the Baseline tier."""

    kind = "BaselineAdminNetworkPolicy"

    @staticmethod
    def parse(fields: Fields) -> ClusterNetworkPolicy:
        return _v1alpha1(fields, BASELINE)
