"""Service: a stable virtual IP and ports in front of the pods its selector matches."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace
from typing import Any

from podnet.errors import ManifestError
from podnet.model.families import family_of, is_address, parse_families
from podnet.model.fields import Fields, check_dns_label
from podnet.model.meta import ObjectMeta
from podnet.model.origin import Origin
from podnet.model.pod import Pod

SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
HEADLESS = "None"
PROXY_MODE = "podnet.dev/proxy-mode"  # "nftables" (the default) or "userspace"
SCHEDULER = "podnet.dev/scheduler"  # userspace mode: rr, wrr, lc, wlc, sed, nq, dh, sh, lblc, lblcr, mh
WEIGHT = "podnet.dev/weight"  # on a pod: its weight as an endpoint (0: quiescent)
IP_FAMILY_POLICIES = ("SingleStack", "PreferDualStack", "RequireDualStack")
SINGLE_STACK, PREFER_DUAL_STACK, REQUIRE_DUAL_STACK = IP_FAMILY_POLICIES
SCHEDULER_NAMES = ("rr", "wrr", "lc", "wlc", "sed", "nq", "dh", "sh", "lblc", "lblcr", "mh")


@dataclass(frozen=True)
class ServicePort:
    port: int
    target_port: int | str
    protocol: str = "TCP"
    name: str | None = None
    node_port: int | None = None

    @classmethod
    def parse(cls, fields: Fields) -> ServicePort:
        port = fields.integer("port", required=True, minimum=1, maximum=65535)
        protocol = fields.text("protocol", "TCP")
        if protocol not in ("TCP", "UDP", "SCTP"):
            raise ManifestError(fields.at("protocol"), f"{protocol!r} is not TCP, UDP or SCTP")
        target = fields.data.get("targetPort", port)
        if isinstance(target, bool) or not isinstance(target, (int, str)):
            raise ManifestError(fields.at("targetPort"), "must be a port number or a port name")
        if isinstance(target, int) and not 1 <= target <= 65535:
            raise ManifestError(fields.at("targetPort"), f"{target} is out of range 1..65535")
        name = fields.text("name")
        if name is not None:
            check_dns_label(name, fields.at("name"))
        unset = type(fields.data.get("nodePort")) is int and fields.data["nodePort"] == 0  # 0 asks for one, as in k8s
        return cls(port, target, protocol, name,
                   None if unset else fields.integer("nodePort", minimum=30000, maximum=32767))

    def to_manifest(self) -> dict[str, Any]:
        out: dict[str, Any] = {"port": self.port, "targetPort": self.target_port, "protocol": self.protocol}
        if self.name:
            out["name"] = self.name
        if self.node_port:
            out["nodePort"] = self.node_port
        return out


@dataclass(frozen=True)
class Service:
    metadata: ObjectMeta
    type: str = "ClusterIP"
    selector: dict[str, str] = field(default_factory=dict, hash=False)
    ports: tuple[ServicePort, ...] = ()
    cluster_ips: tuple[str, ...] = ()  # spec.clusterIPs, one per family (the primary first), or ("None",)
    external_name: str | None = None
    session_affinity_seconds: int | None = None  # sessionAffinity: ClientIP, with its timeout
    external_traffic_local: bool = False  # externalTrafficPolicy: Local
    internal_traffic_local: bool = False  # internalTrafficPolicy: Local
    external_ips: tuple[str, ...] = ()  # spec.externalIPs
    load_balancer_ips: tuple[str, ...] = ()  # spec.loadBalancerIP and status.loadBalancer.ingress
    source_ranges: tuple[str, ...] = ()  # spec.loadBalancerSourceRanges
    publish_not_ready: bool = False  # spec.publishNotReadyAddresses: DNS lists endpoints before they are ready
    ip_families: tuple[str, ...] = ()  # spec.ipFamilies: as written, then as the API server defaulted them
    ip_family_policy: str | None = None  # spec.ipFamilyPolicy: one of IP_FAMILY_POLICIES, or not yet defaulted
    origin: Origin | None = field(default=None, compare=False, repr=False)  # model/origin.py

    kind = "Service"

    @classmethod
    def parse(cls, fields: Fields) -> Service:
        metadata = ObjectMeta.parse(fields)
        check_dns_label(metadata.name, "metadata.name")
        mode = metadata.annotations.get(PROXY_MODE, "nftables")
        if mode not in ("nftables", "userspace"):
            raise ManifestError(f"metadata.annotations.{PROXY_MODE}", f"{mode!r} is not nftables or userspace")
        chosen = metadata.annotations.get(SCHEDULER, "rr")
        if chosen not in SCHEDULER_NAMES:
            raise ManifestError(f"metadata.annotations.{SCHEDULER}", f"{chosen!r} is not one of {', '.join(SCHEDULER_NAMES)}")
        spec = fields.mapping("spec", required=True)
        kind = spec.text("type", "ClusterIP")
        if kind not in SERVICE_TYPES:
            raise ManifestError(spec.at("type"), f"{kind!r} is not one of {', '.join(SERVICE_TYPES)}")
        ports = tuple(ServicePort.parse(p) for p in spec.records("ports"))
        seen: set[tuple[str, int]] = set()
        for i, port in enumerate(ports):
            if (port.protocol, port.port) in seen:
                raise ManifestError(f"{spec.at('ports')}[{i}]", f"duplicate port {port.port}/{port.protocol}")
            seen.add((port.protocol, port.port))
            if len(ports) > 1 and not port.name:
                raise ManifestError(f"{spec.at('ports')}[{i}].name", "is required when a service has several ports")
        cluster_ips = _parse_cluster_ips(spec)
        external_name = spec.text("externalName", required=kind == "ExternalName")
        external_ips = tuple(str(spec.interface(path, value).ip) for path, value in spec.items("externalIPs"))
        lb_ips = [str(spec.address("loadBalancerIP"))] if spec.has("loadBalancerIP") else []
        status = fields.mapping("status")
        balancer = status.mapping("loadBalancer") if status else None
        for ingress in balancer.records("ingress") if balancer else ():
            if ingress.has("ip") and str(ingress.address("ip")) not in lb_ips:
                lb_ips.append(str(ingress.address("ip")))
        if lb_ips and kind != "LoadBalancer":
            raise ManifestError(spec.at("loadBalancerIP"), "only a LoadBalancer service has load balancer IPs")
        ranges = tuple(str(spec.interface(path, value).network) for path, value in spec.items("loadBalancerSourceRanges"))
        families = parse_families(spec, "ipFamilies")
        policy = spec.text("ipFamilyPolicy")
        if policy is not None and policy not in IP_FAMILY_POLICIES:
            raise ManifestError(spec.at("ipFamilyPolicy"), f"Unsupported value: {policy!r}: supported values: "
                                + ", ".join(f'"{p}"' for p in IP_FAMILY_POLICIES))
        return cls(metadata, kind, spec.labels("selector"), ports, cluster_ips, external_name,
                   _parse_affinity(spec), _policy(spec, "externalTrafficPolicy"), _policy(spec, "internalTrafficPolicy"),
                   external_ips, tuple(lb_ips), ranges, spec.boolean("publishNotReadyAddresses"), tuple(families),
                   policy)

    @property
    def userspace(self) -> bool:
        """Proxied by a process rather than by nftables, as kube-proxy's userspace mode was."""
        return self.metadata.annotations.get(PROXY_MODE) == "userspace"

    @property
    def scheduler(self) -> str:
        return self.metadata.annotations.get(SCHEDULER, "rr")

    @property
    def cluster_ip(self) -> str | None:
        """spec.clusterIP: the primary family's address, "None" when headless."""
        return self.cluster_ips[0] if self.cluster_ips else None

    @property
    def headless(self) -> bool:
        return self.cluster_ip == HEADLESS

    @property
    def addresses(self) -> tuple[str, ...]:
        """Its ClusterIPs, none when headless."""
        return () if self.headless else self.cluster_ips

    def with_cluster_ips(self, cluster_ips: tuple[str, ...], families: tuple[str, ...], policy: str | None) -> Service:
        return replace(self, cluster_ips=cluster_ips, ip_families=families, ip_family_policy=policy)

    def with_node_ports(self, node_ports: list[int | None]) -> Service:
        return replace(self, ports=tuple(replace(p, node_port=n) for p, n in zip(self.ports, node_ports)))

    @property
    def exposes_node_ports(self) -> bool:
        return self.type in ("NodePort", "LoadBalancer")

    def to_manifest(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"type": self.type, "ports": [p.to_manifest() for p in self.ports]}
        if self.selector:
            spec["selector"] = dict(self.selector)
        if self.cluster_ips:
            spec["clusterIP"] = self.cluster_ips[0]
            spec["clusterIPs"] = list(self.cluster_ips)
        if self.ip_families:
            spec["ipFamilies"] = list(self.ip_families)
        if self.ip_family_policy:
            spec["ipFamilyPolicy"] = self.ip_family_policy
        if self.external_name:
            spec["externalName"] = self.external_name
        if self.session_affinity_seconds is not None:
            spec["sessionAffinity"] = "ClientIP"
            spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": self.session_affinity_seconds}}
        if self.external_traffic_local:
            spec["externalTrafficPolicy"] = "Local"
        if self.internal_traffic_local:
            spec["internalTrafficPolicy"] = "Local"
        if self.external_ips:
            spec["externalIPs"] = list(self.external_ips)
        if self.source_ranges:
            spec["loadBalancerSourceRanges"] = list(self.source_ranges)
        if self.publish_not_ready:
            spec["publishNotReadyAddresses"] = True
        manifest: dict[str, Any] = {"apiVersion": "v1", "kind": "Service", "metadata": self.metadata.to_manifest(),
                                    "spec": spec}
        if self.load_balancer_ips:
            manifest["status"] = {"loadBalancer": {"ingress": [{"ip": ip} for ip in self.load_balancer_ips]}}
        return manifest


def _parse_cluster_ips(spec: Fields) -> tuple[str, ...]:
    """spec.clusterIP and spec.clusterIPs, kept in step as kube-apiserver's
    strategy keeps them: either may be given, and when both are, the first
    ClusterIP must be the clusterIP."""
    single = spec.text("clusterIP") or ""
    if single not in ("", HEADLESS):
        single = str(spec.address("clusterIP"))
    listed = [str(value) for _, value in spec.items("clusterIPs")]
    if single and listed and listed[0] != single:
        raise ManifestError(spec.at("clusterIPs"), f"Invalid value: {listed}: first value must match `clusterIP`")
    ips = listed or ([single] if single else [])
    if len(ips) > 2:
        raise ManifestError(spec.at("clusterIPs"), f"Invalid value: {ips}: may only hold up to 2 values")
    for i, ip in enumerate(ips):
        if ip == HEADLESS:
            if i or len(ips) > 1:
                raise ManifestError(spec.at("clusterIPs"), f"Invalid value: {ips}: 'None' must be the first and only value")
        elif not is_address(ip):
            raise ManifestError(f"{spec.at('clusterIPs')}[{i}]", f"Invalid value: {ip!r}: must be a valid IP address")
    if len(ips) == 2 and family_of(ips[0]) == family_of(ips[1]):
        raise ManifestError(spec.at("clusterIPs"), f"Invalid value: {ips}: may specify no more than one IP for each "
                                                   "IP family")
    return tuple(str(ipaddress.ip_address(ip)) if ip != HEADLESS else ip for ip in ips)


def pod_weight(pod: Pod) -> int:
    """A bad weight annotation counts as the default rather than hiding the pod."""
    text = pod.metadata.annotations.get(WEIGHT, "1")
    return int(text) if text.isdigit() else 1


DEFAULT_AFFINITY_SECONDS = 10800


def _parse_affinity(spec: Fields) -> int | None:
    affinity = spec.text("sessionAffinity", "None")
    if affinity not in ("None", "ClientIP"):
        raise ManifestError(spec.at("sessionAffinity"), f"{affinity!r} is not None or ClientIP")
    if affinity == "None":
        return None
    config = spec.mapping("sessionAffinityConfig")
    client_ip = config.mapping("clientIP") if config else None
    return client_ip.integer("timeoutSeconds", DEFAULT_AFFINITY_SECONDS, minimum=1, maximum=86400) if client_ip \
        else DEFAULT_AFFINITY_SECONDS


def _policy(spec: Fields, key: str) -> bool:
    """Whether a traffic policy is Local (Cluster is the default)."""
    value = spec.text(key, "Cluster")
    if value not in ("Cluster", "Local"):
        raise ManifestError(spec.at(key), f"{value!r} is not Cluster or Local")
    return value == "Local"


def resolve_target_port(port: ServicePort, pod: Pod) -> int | None:
    """A named targetPort is looked up in the pod's container ports, as kube does."""
    if isinstance(port.target_port, int):
        return port.target_port
    if port.target_port.isdigit():
        return int(port.target_port)
    for container in pod.containers:
        for container_port in container.ports:
            if container_port.name == port.target_port and container_port.protocol == port.protocol:
                return container_port.container_port
    return None
