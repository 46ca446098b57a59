"""A pod's sandbox: its network namespace, wired in through the node's CNI
conflist as kubelet calls CNI, with the pod's resolv.conf, and a record of it on
disk.

The record is written *before* the namespace exists and removed only after it
has gone, so an agent killed at any point can list every sandbox it may have
made (`recorded`) and finish or undo each one.
"""

from __future__ import annotations

import json
from pathlib import Path

from podnet.cni.result import Result
from podnet.cni.runtime import Attachment, NetworkConfigList, Runtime
from podnet.kernel import netns
from podnet.model.pod import Pod


class Sandboxes:
    def __init__(self, state_dir: Path, network: NetworkConfigList, plugin_dir: str, node_netns: str) -> None:
        self.network = network
        self.runtime = Runtime([plugin_dir], state_dir / "cni", node_netns)
        self.records = state_dir / "pods"
        self.records.mkdir(parents=True, exist_ok=True)

    def recorded(self) -> set[str]:
        """Every sandbox this node may have made."""
        return {path.stem for path in self.records.glob("*.json")}

    def is_complete(self, sandbox: str) -> bool:
        return self._record(sandbox).exists() and netns.is_live(sandbox)

    def has_remains(self, sandbox: str) -> bool:
        """Something of it is left: a record, or a namespace (from a try that crashed)."""
        return self._record(sandbox).exists() or netns.exists(sandbox)

    def pod_of(self, sandbox: str) -> tuple[str, str] | None:
        """The (namespace, name) of the pod its record was made for, if it can be read."""
        try:
            namespace, name = json.loads(self._record(sandbox).read_text())["pod"].split("/", 1)
        except (OSError, ValueError, KeyError):
            return None
        return (namespace, name) if name else None

    def create(self, sandbox: str, pod: Pod, resolv_conf: str) -> tuple[str, ...]:
        """Record, namespace, CNI ADD, resolv.conf; the pod's IPs, in the order
        of the conflist's ranges (the primary family's first)."""
        self._record(sandbox).write_text(json.dumps({"pod": f"{pod.metadata.namespace}/{pod.metadata.name}"}))
        netns.create(sandbox)
        result = Result.parse(self.runtime.add(self.network, _attachment(sandbox, pod)))
        netns.write_etc(sandbox, "resolv.conf", resolv_conf)
        return tuple(dict.fromkeys(ip.address.split("/")[0] for ip in result.ips))

    def remove(self, sandbox: str, pod: Pod | None = None) -> None:
        """CNI DEL (which works without the namespace too), namespace, record: in
        this order, so a crash part-way leaves the record to retry from. Its
        processes must be gone already. A namespace file that holds no namespace
        goes to DEL as no namespace, as containerd passes a closed one."""
        self.runtime.delete(self.network, _attachment(sandbox, pod, live=netns.is_live(sandbox)))
        netns.delete(sandbox)
        self._record(sandbox).unlink(missing_ok=True)

    def _record(self, sandbox: str) -> Path:
        return self.records / f"{sandbox}.json"


def _attachment(sandbox: str, pod: Pod | None = None, live: bool = True) -> Attachment:
    """As kubelet calls CNI: the container ID is the sandbox's name without pn-."""
    container_id = sandbox.removeprefix(netns.PREFIX)
    args = {"IgnoreUnknown": "1"}
    if pod is not None:
        args.update(K8S_POD_NAMESPACE=pod.metadata.namespace, K8S_POD_NAME=pod.metadata.name,
                    K8S_POD_INFRA_CONTAINER_ID=container_id)
    return Attachment(container_id, str(netns.path(sandbox)) if live else "", "eth0", args)
