"""Pod: one network namespace with an IP, running a command, scheduled to a node."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from podnet.errors import ManifestError
from podnet.model.fields import Fields, check_dns_label
from podnet.model.meta import ObjectMeta
from podnet.model.origin import Origin
from podnet.model.probe import Probe


PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")
ECHO_IMAGE = "podnet/echo"  # what a container that names no command runs (model/commands.py)


@dataclass(frozen=True)
class ContainerPort:
    container_port: int
    name: str | None = None
    protocol: str = "TCP"


@dataclass(frozen=True)
class Container:
    name: str
    image: str | None = None
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    ports: tuple[ContainerPort, ...] = ()
    readiness: Probe | None = None  # readinessProbe; without one, Ready once its port opens

    @classmethod
    def parse(cls, fields: Fields) -> Container:
        ports = []
        for port in fields.records("ports"):
            protocol = port.text("protocol", "TCP")
            if protocol not in ("TCP", "UDP", "SCTP"):
                raise ManifestError(port.at("protocol"), f"{protocol!r} is not TCP, UDP or SCTP")
            ports.append(ContainerPort(port.integer("containerPort", required=True, minimum=1, maximum=65535),
                                       port.text("name"), protocol))
        return cls(
            name=check_dns_label(fields.text("name", required=True), fields.at("name")),
            image=fields.text("image"),
            command=fields.strings("command"),
            args=fields.strings("args"),
            ports=tuple(ports),
            readiness=Probe.parse(probe) if (probe := fields.mapping("readinessProbe")) else None,
        )

    def to_manifest(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.image:
            out["image"] = self.image
        if self.command:
            out["command"] = list(self.command)
        if self.args:
            out["args"] = list(self.args)
        if self.ports:
            out["ports"] = [
                {"containerPort": p.container_port, "protocol": p.protocol, **({"name": p.name} if p.name else {})}
                for p in self.ports
            ]
        if self.readiness:
            out["readinessProbe"] = self.readiness.to_manifest()
        return out


@dataclass(frozen=True)
class Pod:
    metadata: ObjectMeta
    containers: tuple[Container, ...] = field(default=())
    node_name: str | None = None
    hostname: str | None = None
    subdomain: str | None = None
    pod_ip: str | None = None
    host_ip: str | None = None
    ready: bool = False
    terminating: bool = False  # metadata.deletionTimestamp is set
    node_selector: dict[str, str] = field(default_factory=dict, hash=False)
    grace_seconds: int = 30  # terminationGracePeriodSeconds: SIGTERM, then SIGKILL after this long
    phase: str = "Pending"
    reason: str | None = None  # why it is Pending (Unschedulable) or not running (CrashLoopBackOff)
    restarts: int = 0
    origin: Origin | None = field(default=None, compare=False, repr=False)  # model/origin.py

    kind = "Pod"

    @classmethod
    def parse(cls, fields: Fields) -> Pod:
        metadata = ObjectMeta.parse(fields)
        spec = fields.mapping("spec", required=True)
        terminating = bool((fields.mapping("metadata") or fields).text("deletionTimestamp"))
        return cls(metadata=metadata, **cls.parse_spec(spec), **cls._parse_status(fields.mapping("status")),
                   terminating=terminating)

    @staticmethod
    def parse_spec(spec: Fields) -> dict[str, Any]:
        """The fields of a pod spec; a Deployment's template shares this."""
        containers = tuple(Container.parse(c) for c in spec.records("containers"))
        if not containers:
            containers = (Container(name="echo"),)
        hostname, subdomain = spec.text("hostname"), spec.text("subdomain")
        for key, value in (("hostname", hostname), ("subdomain", subdomain)):
            if value is not None:
                check_dns_label(value, spec.at(key))
        return {"containers": containers, "node_name": spec.text("nodeName"), "hostname": hostname,
                "subdomain": subdomain, "node_selector": spec.labels("nodeSelector"),
                "grace_seconds": spec.integer("terminationGracePeriodSeconds", 30, minimum=0, maximum=3600)}

    @staticmethod
    def _parse_status(status: Fields | None) -> dict[str, Any]:
        if status is None:
            return {}
        pod_ip, host_ip = status.address("podIP"), status.address("hostIP")
        ready = any(c.text("type") == "Ready" and c.text("status") == "True" for c in status.records("conditions"))
        phase = status.text("phase", "Pending") or "Pending"
        if phase not in PHASES:
            raise ManifestError(status.at("phase"), f"{phase!r} is not one of {', '.join(PHASES)}")
        restarts = sum(c.integer("restartCount", 0, minimum=0) or 0 for c in status.records("containerStatuses"))
        return {"pod_ip": str(pod_ip) if pod_ip else None, "host_ip": str(host_ip) if host_ip else None,
                "ready": ready, "phase": phase, "reason": status.text("reason"), "restarts": restarts}

    @property
    def command(self) -> tuple[str, ...]:
        """The first container's command line; empty means podnet's echo server."""
        first = self.containers[0]
        return first.command + first.args

    @property
    def readiness(self) -> Probe | None:
        return self.containers[0].readiness

    def port_number(self, port: int | str) -> int | None:
        """A port by number or by a container port's name."""
        if isinstance(port, int):
            return port
        if port.isdigit():
            return int(port)
        return next((p.container_port for c in self.containers for p in c.ports if p.name == port), None)

    def terminated(self) -> Pod:
        """Being deleted: its endpoints serve only when no ready ones are left."""
        return replace(self, terminating=True)

    def scheduled(self, node_name: str) -> Pod:
        return replace(self, node_name=node_name)

    def with_status(self, *, pod_ip: str | None, host_ip: str | None, ready: bool, phase: str | None = None,
                    reason: str | None = None, restarts: int | None = None) -> Pod:
        return replace(self, pod_ip=pod_ip, host_ip=host_ip, ready=ready,
                       phase=phase or ("Running" if pod_ip else self.phase), reason=reason,
                       restarts=self.restarts if restarts is None else restarts)

    def spec_manifest(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"containers": [c.to_manifest() for c in self.containers]}
        for key, value in (("nodeName", self.node_name), ("hostname", self.hostname), ("subdomain", self.subdomain)):
            if value:
                spec[key] = value
        if self.node_selector:
            spec["nodeSelector"] = dict(self.node_selector)
        if self.grace_seconds != 30:
            spec["terminationGracePeriodSeconds"] = self.grace_seconds
        return spec

    def to_manifest(self) -> dict[str, Any]:
        out: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod", "metadata": self.metadata.to_manifest(),
                               "spec": self.spec_manifest()}
        if self.terminating:
            out["metadata"]["deletionTimestamp"] = "1970-01-01T00:00:00Z"
        ready = "True" if self.ready else "False"
        started = bool(self.pod_ip) and self.phase == "Running"
        status: dict[str, Any] = {"phase": self.phase, "conditions": [  # in kubelet's order
            {"type": "PodReadyToStartContainers", "status": "True" if self.pod_ip else "False"},
            {"type": "Initialized", "status": "True"},
            {"type": "Ready", "status": ready},
            {"type": "ContainersReady", "status": ready},
            {"type": "PodScheduled", "status": "True" if self.node_name else "False"}]}
        if self.reason:
            status["reason"] = self.reason
        if self.pod_ip:
            status["podIP"] = self.pod_ip
        if self.host_ip:
            status["hostIP"] = self.host_ip
        status["containerStatuses"] = [
            {"name": c.name, "ready": self.ready, "restartCount": self.restarts if i == 0 else 0, "started": started,
             "image": c.image or ECHO_IMAGE, "imageID": "",
             "state": {"running": {}} if started and not self.reason else
             {"waiting": {"reason": self.reason or "ContainerCreating"}}}
            for i, c in enumerate(self.containers)]
        out["status"] = status
        return out
