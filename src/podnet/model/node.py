"""Node: a machine (in a lab, a namespace) that runs pods and owns a pod subnet."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from podnet.errors import ManifestError
from podnet.model.families import families_of, first_of
from podnet.model.fields import Fields
from podnet.model.meta import ObjectMeta
from podnet.model.origin import Origin
from podnet.model.version import GIT_VERSION

HOSTNAME_LABEL = "kubernetes.io/hostname"  # every node carries its name under this label
AGENT_RESTARTS = "podnet.dev/agent-restarts"  # how often the node's agent was restarted, as it last said

MAX_PODS = "110"  # kubelet's default --max-pods


@dataclass(frozen=True)
class Node:
    metadata: ObjectMeta
    pod_cidrs: tuple[str, ...] = ()  # spec.podCIDRs: a subnet per family, the primary first
    internal_ips: tuple[str, ...] = ()  # status.addresses of type InternalIP: one per family
    ready: bool = True  # status.conditions Ready; False once its agent's heartbeats lapse
    capacity: dict[str, str] = field(default_factory=dict, hash=False)  # cpu, memory: as its kubelet reports them
    unschedulable: bool = False  # cordoned (kubectl cordon, drain): no new pods are bound to it
    origin: Origin | None = field(default=None, compare=False, repr=False)  # model/origin.py

    kind = "Node"

    @property
    def pod_cidr(self) -> str | None:
        """spec.podCIDR: the primary family's subnet."""
        return self.pod_cidrs[0] if self.pod_cidrs else None

    @property
    def internal_ip(self) -> str | None:
        return self.internal_ips[0] if self.internal_ips else None

    def pod_cidr_of(self, family: str) -> str | None:
        return first_of(self.pod_cidrs, family)

    def internal_ip_of(self, family: str) -> str | None:
        return first_of(self.internal_ips, family)

    @property
    def agent_restarts(self) -> int:
        text = self.metadata.annotations.get(AGENT_RESTARTS, "0")
        return int(text) if text.isdigit() else 0

    @classmethod
    def parse(cls, fields: Fields) -> Node:
        spec = fields.mapping("spec") or Fields({}, fields.at("spec"))
        cidr = spec.network("podCIDR")
        cidrs = [str(spec.interface(path, value).network) for path, value in spec.items("podCIDRs")]
        if cidr and str(cidr) not in cidrs:
            cidrs.insert(0, str(cidr))
        if len(cidrs) > 2 or len(families_of(cidrs)) != len(cidrs):
            raise ManifestError(spec.at("podCIDRs"), "may hold at most one CIDR of each family")
        internal_ips: list[str] = []
        ready = True
        status = fields.mapping("status")
        if status:
            for address in status.records("addresses"):
                if address.text("type") == "InternalIP":
                    internal_ips.append(str(address.address("address", required=True)))
            ready = all(c.text("status") == "True" for c in status.records("conditions") if c.text("type") == "Ready")
        capacity = status.string_map("capacity") if status else {}
        return cls(ObjectMeta.parse(fields, namespaced=False), tuple(cidrs), tuple(internal_ips), ready,
                   {k: v for k, v in capacity.items() if k != "pods"}, spec.boolean("unschedulable"))

    def to_manifest(self) -> dict[str, Any]:
        out: dict[str, Any] = {"apiVersion": "v1", "kind": "Node", "metadata": self.metadata.to_manifest(), "spec": {}}
        if self.pod_cidrs:
            out["spec"]["podCIDR"] = self.pod_cidrs[0]
            out["spec"]["podCIDRs"] = list(self.pod_cidrs)
        if self.unschedulable:
            out["spec"]["unschedulable"] = True
        condition = {"type": "Ready", "status": "True", "reason": "KubeletReady",
                     "message": "podnet's agent is posting ready status"} if self.ready else \
            {"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown",
             "message": "podnet's agent stopped posting node status."}
        status: dict[str, Any] = {
            "conditions": [condition],
            "addresses": [*({"type": "InternalIP", "address": ip} for ip in self.internal_ips),
                          {"type": "Hostname", "address": self.metadata.name}],
            "nodeInfo": {"kubeletVersion": GIT_VERSION, "kubeProxyVersion": GIT_VERSION,
                         "containerRuntimeVersion": "podnet://0.1.0", "operatingSystem": "linux",
                         "architecture": "amd64", "osImage": "podnet", "kernelVersion": "", "machineID": "",
                         "systemUUID": "", "bootID": ""},
            "allocatable": {**self.capacity, "pods": MAX_PODS}, "capacity": {**self.capacity, "pods": MAX_PODS}}
        out["status"] = status
        return out
