"""What the kubelet tells the cluster about its pods: their status, written by
compare-and-swap so that a deletion marked meanwhile is kept, and the events of
their history, from "kubelet <node>".
"""

from __future__ import annotations

from dataclasses import dataclass

from podnet.api import events, writes
from podnet.model.container_status import ContainerStatus
from podnet.model.node import Node
from podnet.model.pod import Pod
from podnet.store import resources
from podnet.store.base import Store


@dataclass(frozen=True)
class PodStatus:
    """What the kubelet found of a pod's containers."""
    phase: str
    ready: bool
    pod_ips: tuple[str, ...]
    containers: tuple[ContainerStatus, ...]
    init_containers: tuple[ContainerStatus, ...]


class StatusWriter:
    def __init__(self, store: Store, node_name: str) -> None:
        self.store = store
        self.node_name = node_name
        self._node_address: str | None = None

    def write(self, pod: Pod, status: PodStatus) -> Pod | None:
        """The pod as written, or None when it is gone. A pod marked for deletion,
        or bound elsewhere meanwhile, is left as it is."""
        node_ip = self._node_ip()

        def change(current: Pod) -> Pod:
            if current.terminating or current.node_name != self.node_name:
                return current
            return current.with_containers(status.containers, status.init_containers, pod_ips=status.pod_ips,
                                           host_ip=node_ip, phase=status.phase, ready=status.ready)

        try:
            written, _ = writes.modify(self.store, Pod, pod.metadata.namespace, pod.metadata.name, change)
        except writes.NotFound:
            return None
        return written

    def reported(self, pod: Pod, status: PodStatus) -> bool:
        """The store says this already."""
        return (pod.phase, pod.ready, pod.pod_ips, pod.container_statuses, pod.init_container_statuses) == \
            (status.phase, status.ready, status.pod_ips, status.containers, status.init_containers) and \
            (pod.host_ip is not None or self._node_ip() is None)

    def remove(self, pod: Pod) -> None:
        """The object of a pod marked for deletion goes (its sandbox has gone)."""
        try:
            writes.modify(self.store, Pod, pod.metadata.namespace, pod.metadata.name,
                          lambda current: None if current.terminating else current)
        except writes.NotFound:
            pass

    def event(self, pod: Pod, reason: str, message: str, warning: bool = False) -> None:
        events.record(self.store, "Pod", pod.metadata.namespace, pod.metadata.name, reason, message,
                      f"kubelet {self.node_name}", warning)

    def _node_ip(self) -> str | None:
        """Read once: a node keeps its address."""
        if self._node_address is None:
            node = resources.get(self.store, Node, "", self.node_name)
            self._node_address = node.internal_ip if node else None
        return self._node_address
