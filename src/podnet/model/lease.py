"""Lease: a node's heartbeat, as kubelet renews its Lease in kube-node-lease.

The control plane reads the renew time to decide whether a node is alive, so a
heartbeat is one small write rather than a rewrite of the Node.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from podnet.model.event import parse_time, timestamp
from podnet.model.fields import Fields
from podnet.model.meta import ObjectMeta
from podnet.model.origin import Origin

NODE_LEASES = "kube-node-lease"  # the namespace of the nodes' leases


@dataclass(frozen=True)
class Lease:
    metadata: ObjectMeta
    holder: str
    renewed: float  # seconds since the epoch
    duration: int = 5  # leaseDurationSeconds
    origin: Origin | None = field(default=None, compare=False, repr=False)  # model/origin.py

    kind = "Lease"

    @classmethod
    def of_node(cls, node: str, renewed: float, duration: int) -> Lease:
        return cls(ObjectMeta(node, NODE_LEASES, owner=("Node", node)), node, renewed, duration)

    @classmethod
    def parse(cls, fields: Fields) -> Lease:
        spec = fields.mapping("spec", required=True)
        assert spec is not None
        return cls(ObjectMeta.parse(fields), spec.text("holderIdentity", required=True) or "",
                   parse_time(spec, "renewTime"),
                   spec.integer("leaseDurationSeconds", 5, minimum=1, maximum=3600) or 5)

    def to_manifest(self) -> dict[str, Any]:
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": self.metadata.to_manifest(),
                "spec": {"holderIdentity": self.holder, "renewTime": timestamp(self.renewed), "leaseDurationSeconds": self.duration}}
