"""Node: a machine (in a lab, a namespace) that runs pods and owns a pod subnet."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
    pod_cidr: str | None = None
    internal_ip: str | None = None
    ready: bool = True  # status.conditions Ready; False once its agent's heartbeats lapse
    capacity: dict[str, str] = field(default_factory=dict, hash=False)  # cpu, memory: as its kubelet reports them
    unschedulable: bool = False  # cordoned (kubectl cordon, drain): no new pods are bound to it
    origin: Origin | None = field(default=None, compare=False, repr=False)  # model/origin.py

    kind = "Node"

    @property
    def agent_restarts(self) -> int:
        text = self.metadata.annotations.get(AGENT_RESTARTS, "0")
        return int(text) if text.isdigit() else 0

    @classmethod
    def parse(cls, fields: Fields) -> Node:
        spec = fields.mapping("spec") or Fields({}, fields.at("spec"))
        cidr = spec.network("podCIDR")
        internal_ip = None
        ready = True
        status = fields.mapping("status")
        if status:
            for address in status.records("addresses"):
                if address.text("type") == "InternalIP":
                    internal_ip = str(address.address("address", required=True))
            ready = all(c.text("status") == "True" for c in status.records("conditions") if c.text("type") == "Ready")
        capacity = status.string_map("capacity") if status else {}
        return cls(ObjectMeta.parse(fields, namespaced=False), str(cidr) if cidr else None, internal_ip, ready,
                   {k: v for k, v in capacity.items() if k != "pods"}, spec.boolean("unschedulable"))

    def to_manifest(self) -> dict[str, Any]:
        out: dict[str, Any] = {"apiVersion": "v1", "kind": "Node", "metadata": self.metadata.to_manifest(), "spec": {}}
        if self.pod_cidr:
            out["spec"]["podCIDR"] = self.pod_cidr
        if self.unschedulable:
            out["spec"]["unschedulable"] = True
        condition = {"type": "Ready", "status": "True", "reason": "KubeletReady",
                     "message": "podnet's agent is posting ready status"} if self.ready else \
            {"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown",
             "message": "podnet's agent stopped posting node status."}
        status: dict[str, Any] = {
            "conditions": [condition],
            "addresses": [*([{"type": "InternalIP", "address": self.internal_ip}] if self.internal_ip else []),
                          {"type": "Hostname", "address": self.metadata.name}],
            "nodeInfo": {"kubeletVersion": GIT_VERSION, "kubeProxyVersion": GIT_VERSION,
                         "containerRuntimeVersion": "podnet://0.1.0", "operatingSystem": "linux",
                         "architecture": "amd64", "osImage": "podnet", "kernelVersion": "", "machineID": "",
                         "systemUUID": "", "bootID": ""},
            "allocatable": {**self.capacity, "pods": MAX_PODS}, "capacity": {**self.capacity, "pods": MAX_PODS}}
        out["status"] = status
        return out
