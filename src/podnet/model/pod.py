"""Pod: one network namespace with an IP, running a command, scheduled to a node."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from podnet.errors import ManifestError
from podnet.model.container_status import ContainerStatus
from podnet.model.env import EnvVar
from podnet.model.families import families_of
from podnet.model.fields import Fields, check_dns_label
from podnet.model.meta import ObjectMeta
from podnet.model.origin import Origin
from podnet.model.probe import Probe


PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")
RESTART_POLICIES = ("Always", "OnFailure", "Never")
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
    env: tuple[EnvVar, ...] = ()
    working_dir: str | None = None
    stdin: bool = False  # its stdin is kept open for attach
    stdin_once: bool = False  # ...and closed for good when the first attached client closes it
    tty: bool = False

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
            env=tuple(EnvVar.parse(e) for e in fields.records("env")),
            working_dir=fields.text("workingDir"),
            stdin=fields.boolean("stdin"), stdin_once=fields.boolean("stdinOnce"), tty=fields.boolean("tty"),
        )

    @property
    def argv(self) -> tuple[str, ...]:
        """Its command line (command, then args); empty means podnet's echo server."""
        return self.command + self.args

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
        if self.env:
            out["env"] = [e.to_manifest() for e in self.env]
        if self.working_dir:
            out["workingDir"] = self.working_dir
        for key, value in (("stdin", self.stdin), ("stdinOnce", self.stdin_once), ("tty", self.tty)):
            if value:
                out[key] = True
        return out


@dataclass(frozen=True)
class Pod:
    metadata: ObjectMeta
    containers: tuple[Container, ...] = field(default=())
    node_name: str | None = None
    hostname: str | None = None
    subdomain: str | None = None
    pod_ips: tuple[str, ...] = ()  # status.podIPs: one per family, the primary first
    host_ip: str | None = None
    ready: bool = False
    terminating: bool = False  # metadata.deletionTimestamp is set
    node_selector: dict[str, str] = field(default_factory=dict, hash=False)
    grace_seconds: int = 30  # terminationGracePeriodSeconds: SIGTERM, then SIGKILL after this long
    phase: str = "Pending"
    reason: str | None = None  # why it is Pending (Unschedulable) or not running (CrashLoopBackOff)
    restarts: int = 0
    init_containers: tuple[Container, ...] = ()
    restart_policy: str = "Always"
    container_statuses: tuple[ContainerStatus, ...] = ()  # as the kubelet reported them; empty before it did
    init_container_statuses: tuple[ContainerStatus, ...] = ()
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
        init_containers = tuple(Container.parse(c) for c in spec.records("initContainers"))
        names = [c.name for c in (*init_containers, *containers)]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise ManifestError(spec.at("containers"), f"Duplicate value: {name!r}: container names must be "
                                    "unique in a pod")
        restart_policy = spec.text("restartPolicy", "Always") or "Always"
        if restart_policy not in RESTART_POLICIES:
            raise ManifestError(spec.at("restartPolicy"), f"Unsupported value: {restart_policy!r}: supported "
                                f"values: {', '.join(repr(p) for p in RESTART_POLICIES)}")
        hostname, subdomain = spec.text("hostname"), spec.text("subdomain")
        for key, value in (("hostname", hostname), ("subdomain", subdomain)):
            if value is not None:
                check_dns_label(value, spec.at(key))
        return {"containers": containers, "init_containers": init_containers, "restart_policy": restart_policy,
                "node_name": spec.text("nodeName"), "hostname": hostname,
                "subdomain": subdomain, "node_selector": spec.labels("nodeSelector"),
                "grace_seconds": spec.integer("terminationGracePeriodSeconds", 30, minimum=0, maximum=3600)}

    @staticmethod
    def _parse_status(status: Fields | None) -> dict[str, Any]:
        if status is None:
            return {}
        pod_ip, host_ip = status.address("podIP"), status.address("hostIP")
        pod_ips = [str(record.address("ip", required=True)) for record in status.records("podIPs")]
        if pod_ip and str(pod_ip) not in pod_ips:
            pod_ips.insert(0, str(pod_ip))
        if len(pod_ips) > 2 or len(families_of(pod_ips)) != len(pod_ips):
            raise ManifestError(status.at("podIPs"), "may hold at most one IP of each family")
        ready = any(c.text("type") == "Ready" and c.text("status") == "True" for c in status.records("conditions"))
        phase = status.text("phase", "Pending") or "Pending"
        if phase not in PHASES:
            raise ManifestError(status.at("phase"), f"{phase!r} is not one of {', '.join(PHASES)}")
        statuses = tuple(ContainerStatus.parse(c) for c in status.records("containerStatuses"))
        init_statuses = tuple(ContainerStatus.parse(c) for c in status.records("initContainerStatuses"))
        return {"pod_ips": tuple(pod_ips), "host_ip": str(host_ip) if host_ip else None,
                "ready": ready, "phase": phase, "reason": status.text("reason"),
                "restarts": sum(c.restart_count for c in statuses), "container_statuses": statuses,
                "init_container_statuses": init_statuses}

    @property
    def pod_ip(self) -> str | None:
        """status.podIP: the primary family's address."""
        return self.pod_ips[0] if self.pod_ips else None

    @property
    def command(self) -> tuple[str, ...]:
        """The first container's command line; empty means podnet's echo server."""
        return self.containers[0].argv

    @property
    def uid(self) -> str:
        """metadata.uid, as the store stamped it (the model keeps it in the origin)."""
        document = self.origin.document if self.origin else {}
        return str((document.get("metadata") or {}).get("uid") or "")

    def container(self, name: str) -> Container | None:
        return next((c for c in (*self.containers, *self.init_containers) if c.name == name), None)

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

    def with_status(self, *, pod_ips: tuple[str, ...], host_ip: str | None, ready: bool, phase: str | None = None,
                    reason: str | None = None, restarts: int | None = None) -> Pod:
        return replace(self, pod_ips=pod_ips, host_ip=host_ip, ready=ready,
                       phase=phase or ("Running" if pod_ips else self.phase), reason=reason,
                       restarts=self.restarts if restarts is None else restarts)

    def with_containers(self, statuses: tuple[ContainerStatus, ...], init_statuses: tuple[ContainerStatus, ...],
                        *, pod_ips: tuple[str, ...], host_ip: str | None, phase: str, ready: bool) -> Pod:
        """As the kubelet found its containers."""
        return replace(self, pod_ips=pod_ips, host_ip=host_ip, phase=phase, ready=ready, reason=None,
                       restarts=sum(s.restart_count for s in statuses), container_statuses=statuses,
                       init_container_statuses=init_statuses)

    @property
    def initialized(self) -> bool:
        """Every init container has run to completion."""
        done = {s.name for s in self.init_container_statuses if s.state.succeeded}
        return all(c.name in done for c in self.init_containers)

    def spec_manifest(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"containers": [c.to_manifest() for c in self.containers]}
        if self.init_containers:
            spec["initContainers"] = [c.to_manifest() for c in self.init_containers]
        if self.restart_policy != "Always":
            spec["restartPolicy"] = self.restart_policy
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
        status: dict[str, Any] = {"phase": self.phase, "conditions": [  # in kubelet's order
            {"type": "PodReadyToStartContainers", "status": "True" if self.pod_ip else "False"},
            {"type": "Initialized", "status": "True" if self.initialized else "False"},
            {"type": "Ready", "status": ready},
            {"type": "ContainersReady", "status": ready},
            {"type": "PodScheduled", "status": "True" if self.node_name else "False"}]}
        if self.reason:
            status["reason"] = self.reason
        if self.pod_ips:
            status["podIP"] = self.pod_ips[0]
            status["podIPs"] = [{"ip": ip} for ip in self.pod_ips]
        if self.host_ip:
            status["hostIP"] = self.host_ip
        if self.container_statuses:  # none before a kubelet reported, as in Kubernetes
            status["containerStatuses"] = [s.to_manifest() for s in self.container_statuses]
        if self.init_container_statuses:
            status["initContainerStatuses"] = [s.to_manifest() for s in self.init_container_statuses]
        out["status"] = status
        return out
