"""One node agent process, put together: its controllers in the order a pass
runs them, and beside them the CNI server, the observe endpoint with the
agent's metrics, and the heartbeat.

`podnet agent` parses its flags into AgentOptions and calls run_agent; what runs
for a node, and with which backend and proxy mode, is decided here and by the
registries (network/backends.py, proxy/modes.py), not by the command line.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from podnet.agent.heartbeat import Heartbeat
from podnet.agent.node_agent import NodeAgent
from podnet.agent.pods import KubeletConfig, PodController
from podnet.kernel import iptables
from podnet.kernel.node import NamespaceKernel, NodeKernel
from podnet.network import backends
from podnet.network.controller import NetworkController
from podnet.observe.metrics import AGENT, conntrack_tally
from podnet.observe.recorder import FlowRecorder
from podnet.policy.enforcer import PolicyEnforcer
from podnet.proxy import modes as proxy_modes
from podnet.store.base import Store
from podnet.store.snapshot import Controller

if TYPE_CHECKING:
    from podnet.streaming.server import KubeletServer


APISERVER_CLIENTS = frozenset({"kube-apiserver-kubelet-client"})  # who may exec, attach, forward and read logs
KUBELET_PORT = 10250


@dataclass(frozen=True)
class KubeletServing:
    """The kubelet's own endpoint (exec, attach, port-forward, logs): its address,
    its serving certificate, and the CA the API server's client certificate is
    checked against."""
    address: str
    cert_file: str
    key_file: str
    client_ca_file: str
    port: int = KUBELET_PORT


@dataclass(frozen=True)
class AgentOptions:
    node_name: str
    namespace: str  # the node's network namespace
    store: str  # where the store is, with its TLS files
    resync: float = 1.0
    cluster_cidr: str | None = None  # the pod network; with it, Services, policies and flows too
    backend: str = backends.DEFAULT
    proxy_mode: str = proxy_modes.DEFAULT
    iptables_backend: str = iptables.DEFAULT_BACKEND
    kubelet: KubeletConfig | None = None  # with it, the node's pods
    serving: KubeletServing | None = None  # with it (and the pods), the kubelet's endpoint


@dataclass(frozen=True)
class NodeControllers:
    network: NetworkController
    services: tuple[Controller, ...] = ()
    policy: PolicyEnforcer | None = None
    recorder: FlowRecorder | None = None
    pods: PodController | None = None

    def in_order(self) -> list[Controller]:
        """As a pass runs them: the network first, the pods last (their policy is written by then)."""
        found: list[Controller | None] = [self.network, *self.services, self.policy, self.recorder, self.pods]
        return [c for c in found if c is not None]


def node_controllers(kernel: NodeKernel, store: Store, options: AgentOptions) -> NodeControllers:
    """A node's controllers: its network; given the pod network, its Services (by
    the proxy mode), its pods' NetworkPolicies and its flow records; given a CNI
    network, its pods, whose addresses the policy learns before they start."""
    network = NetworkController(kernel, store, options.node_name, options.cluster_cidr, options.backend)
    if not options.cluster_cidr:
        pods = PodController(store, options.kubelet) if options.kubelet else None
        return NodeControllers(network, pods=pods)
    # the proxy programs a table per family of the pod network (kube-proxy's --cluster-cidr, comma-separated)
    node = proxy_modes.NodeProxy(kernel, options.namespace, options.node_name, options.cluster_cidr,
                                 options.iptables_backend)
    policy = PolicyEnforcer(kernel, options.node_name)
    recorder = FlowRecorder(kernel, options.node_name, options.namespace)
    pods = PodController(store, options.kubelet, addressed=policy.admit) if options.kubelet else None
    return NodeControllers(network, tuple(proxy_modes.controllers(options.proxy_mode, node)), policy, recorder, pods)


def run_agent(options: AgentOptions, store: Store, stop: threading.Event) -> None:
    """Until stop is set: the CNI server, the observe endpoint, the heartbeat and the loop."""
    from podnet.cni.server import CniServer
    from podnet.observe.server import ObserveServer

    cni = CniServer().start()
    observer: ObserveServer | None = None
    kubelet_server = None
    try:
        controllers = node_controllers(NamespaceKernel(options.namespace), store, options)
        if controllers.pods is not None and options.serving is not None:
            kubelet_server = _serve_kubelet(controllers.pods, options.serving)
        if controllers.recorder is not None:
            AGENT.read_when_scraped(controllers.recorder.tally, lambda: conntrack_tally(options.namespace))
            observer = ObserveServer(options.node_name, controllers.recorder, AGENT.exposition).start()
        Heartbeat(store, options.node_name).start(stop)
        NodeAgent(store, options.node_name, controllers.in_order(), options.resync).run(stop)
    finally:
        if kubelet_server is not None:
            kubelet_server.stop()
        if observer is not None:
            observer.stop()
        cni.stop()


def _serve_kubelet(pods: PodController, serving: KubeletServing) -> KubeletServer:
    from podnet.agent.streams import KubeletRuntime
    from podnet.streaming.server import KubeletServer

    runtime = KubeletRuntime(pods.config, pods.containers)
    return KubeletServer(runtime, (serving.address, serving.port), serving.cert_file, serving.key_file,
                         serving.client_ca_file, APISERVER_CLIENTS).start()
