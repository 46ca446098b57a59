"""The node agent's loop: run its controllers on every store change, and at least
every second, so that drift (a route deleted by hand) is repaired as well as changes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from podnet.store.snapshot import Controller, Snapshot
from podnet.agent.pods import KubeletConfig, PodController
from podnet.errors import PodnetError
from podnet.kernel.node import NodeKernel
from podnet.network.controller import NetworkController
from podnet.observe.metrics import AGENT
from podnet.observe.recorder import FlowRecorder
from podnet.policy.enforcer import PolicyEnforcer
from podnet.kernel.iptables import IptablesWriter
from podnet.proxy.iptables import IptablesProxier
from podnet.proxy.proxier import Proxier
from podnet.proxy.userspace_manager import UserspaceProxies
from podnet.store.base import Store
from podnet.store.follow import follow

log = logging.getLogger("podnet.agent")


def node_controllers(kernel: NodeKernel, store: Store, node_name: str, namespace: str,
                     cluster_cidr: str | None = None, backend: str = "host-gw",
                     kubelet: KubeletConfig | None = None, proxy_mode: str = "nftables",
                     iptables_backend: str = "nft") -> list[Controller]:
    """A node's controllers: its network, given the pod network its services (by
    proxy_mode: nftables, kube-proxy's iptables layout, or all in this process as
    userspace; the annotated userspace services always in this process), its pods'
    NetworkPolicies and its flow records, and given a CNI network its pods."""
    controllers: list[Controller] = [NetworkController(kernel, store, node_name, cluster_cidr, backend)]
    enforcer: PolicyEnforcer | None = None
    if cluster_cidr:
        enforcer = PolicyEnforcer(kernel, node_name)
        if proxy_mode == "iptables":
            controllers.append(IptablesProxier(kernel, IptablesWriter(namespace, iptables_backend), node_name,
                                               cluster_cidr))
        elif proxy_mode == "nftables":
            controllers.append(Proxier(kernel, node_name, cluster_cidr))
        controllers += [UserspaceProxies(namespace, node_name, every_service=proxy_mode == "userspace"),
                        enforcer, FlowRecorder(kernel, node_name, namespace)]
    if kubelet is not None:
        controllers.append(PodController(store, kubelet, addressed=enforcer.admit if enforcer else None))
    return controllers


class NodeAgent:
    def __init__(self, store: Store, node_name: str, controllers: Sequence[Controller],
                 resync_seconds: float = 1.0) -> None:
        self.store = store
        self.node_name = node_name
        self.controllers = list(controllers)
        self.resync_seconds = resync_seconds

    def reconcile(self) -> int:
        """One pass of every controller over one snapshot; returns its revision.
        A controller that fails is logged and retried next pass, and does not
        keep the others from running."""
        snapshot = Snapshot.read(self.store)
        for controller in self.controllers:
            started = time.perf_counter()
            try:
                controller.sync(snapshot)
            except PodnetError as err:  # the message says it all: the kernel or the store refused
                log.error("%s: reconcile failed: %s", controller.name, err)
            except Exception:  # a bug in one controller must not stop the others
                log.exception("%s: reconcile failed", controller.name)
            AGENT.sync_took(controller.name, time.perf_counter() - started)
        return snapshot.revision

    def run(self, stop: threading.Event, poll: float = 0.05) -> None:
        follow(self.store, self.reconcile, stop, log, self.resync_seconds, poll,
               started=f"agent for node {self.node_name} is running")
