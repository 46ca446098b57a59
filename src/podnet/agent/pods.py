"""The kubelet part of the agent: the pods bound to this node, made real.

For each pod it makes a sandbox (a network namespace named
`<prefix><namespace>.<pod>`), wires it through the node's CNI conflist, starts
the pod's command and reports podIP, phase and readiness in the store. A pod
marked terminating gets SIGTERM, SIGKILL after its grace period, CNI DEL, and its
sandbox and object removed. A command that exits is restarted with kubelet's
back-off.

What this node has begun is recorded in a file per sandbox *before* the sandbox
exists, so an agent killed at any point finds, when it starts again, every
sandbox it may have made: it adopts those whose pod is still here and running,
and tears down the rest.

PodController only decides, in its pass. The work is done, as in kubelet, by
rooms of their own: sandboxes (agent/sandboxes.py), containers and their
back-off (agent/containers.py), status and events (agent/pod_status.py) and
readiness (agent/prober.py), on the pod workers' threads (agent/pod_workers.py).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from podnet.agent.containers import ContainerKey, Containers, Step
from podnet.agent.pod_status import StatusWriter
from podnet.agent.pod_workers import PodWorkers
from podnet.agent.prober import Prober
from podnet.agent.sandboxes import Sandboxes
from podnet.api import cluster
from podnet.cni.runtime import NetworkConfigList
from podnet.model.commands import readiness_port
from podnet.model.pod import Pod
from podnet.store import resources
from podnet.store.base import Store
from podnet.store.snapshot import Snapshot


@dataclass(frozen=True)
class KubeletConfig:
    node_name: str
    sandbox_prefix: str  # "pn-demo.": a pod's namespace is <prefix><namespace>.<name>
    state_dir: Path  # sandbox records and CNI results
    log_dir: Path
    network: NetworkConfigList
    plugin_dir: str
    node_netns: str  # the node's namespace, by path: where the CNI plugins run
    store_location: str  # the store as pods reach it ($PODNET_STORE)

    def sandbox(self, pod: Pod) -> str:
        return f"{self.sandbox_prefix}{pod.metadata.namespace}.{pod.metadata.name}"


class PodController:
    name = "pods"

    def __init__(self, store: Store, config: KubeletConfig, workers: int = 8,
                 addressed: Callable[[Pod], None] | None = None) -> None:
        self.store = store
        self.config = config
        self.addressed = addressed  # told of each pod's address between CNI ADD and its start (policy isolates it)
        self.sandboxes = Sandboxes(config.state_dir, config.network, config.plugin_dir, config.node_netns)
        self.containers = Containers(config.node_name, config.store_location, config.log_dir)
        self.status = StatusWriter(store, config.node_name)
        self.workers = PodWorkers(workers)
        self.prober = Prober(self._report_readiness)
        self._settings: cluster.ClusterConfig | None = None

    # The controller's pass: decide, and hand slow work to the pod workers.

    def sync(self, snapshot: Snapshot) -> None:
        mine = {self.config.sandbox(p): p for p in snapshot.pods if p.node_name == self.config.node_name}
        recorded = self.sandboxes.recorded()
        stopped = self.containers.stopped(_container(s, p) for s, p in mine.items() if p.pod_ip and not p.terminating)
        for sandbox, pod in mine.items():
            if pod.terminating:
                self.workers.submit(sandbox, self._terminate, sandbox, pod)
            elif sandbox not in recorded or not pod.pod_ip:
                self.workers.submit(sandbox, self._start, sandbox, pod)
            elif _container(sandbox, pod) in stopped:
                self._restart_later(sandbox, pod)
            elif sandbox in self.prober:
                self.prober.observe(sandbox, pod.ready)
            elif pod.readiness or not pod.ready:  # adopted after a restart, or Ready taken away meanwhile
                self._probe(sandbox, pod)
        for sandbox in recorded - mine.keys():
            self.workers.submit(sandbox, self._collect, sandbox)

    def _restart_later(self, sandbox: str, pod: Pod) -> None:
        container = _container(sandbox, pod)
        step = self.containers.backoff.step(container, time.monotonic())
        if step is Step.BACK_OFF:
            self.prober.forget(sandbox)
            self.status.event(pod, "BackOff", f"Back-off restarting failed container {container.name} "
                              f"in pod {pod.metadata.name}", warning=True)
            self.workers.submit(sandbox, functools.partial(self.status.running, ready=False,
                                                           reason="CrashLoopBackOff"), pod, pod.pod_ip)
        elif step is Step.RESTART:
            self.workers.submit(sandbox, self._restart, container, pod)

    def _probe(self, sandbox: str, pod: Pod) -> None:
        if not self.prober.watch(sandbox, pod, pod.readiness, readiness_port(pod)) and not pod.ready:
            self.status.running(pod, pod.pod_ip or "", ready=True)  # nothing to probe: Ready while it runs

    def _report_readiness(self, pod: Pod, ready: bool) -> bool:
        if ready:
            self.containers.backoff.reset(self.config.sandbox(pod))
        return self.status.readiness(pod, ready)

    # The work itself, on the pod workers.

    def _start(self, sandbox: str, pod: Pod) -> None:
        """Sandbox, command, status. Whatever a crashed earlier try left of this
        sandbox goes first."""
        current = resources.get(self.store, Pod, pod.metadata.namespace, pod.metadata.name)
        if current is None or current.terminating or current.node_name != self.config.node_name:
            return  # deleted or moved since the pass that asked
        if current.pod_ip and self.sandboxes.is_complete(sandbox):
            return  # started already: the pass that asked read the store before that was written
        if self.sandboxes.has_remains(sandbox):
            self._teardown(sandbox)
        settings = self._cluster_settings()
        pod_ip = self.sandboxes.create(sandbox, pod, settings.resolv_conf(pod.metadata.namespace))
        if self.addressed is not None:
            self.addressed(pod.with_status(pod_ip=pod_ip, host_ip=pod.host_ip, ready=False))
        container = _container(sandbox, pod)
        self.containers.start(container, pod, pod_ip, settings)
        self.status.event(pod, "Started", f"Started container {container.name}")
        self._started(sandbox, pod, pod_ip)

    def _restart(self, container: ContainerKey, pod: Pod) -> None:
        assert pod.pod_ip
        if self.containers.running(container.sandbox):
            self.containers.backoff.reset(container.sandbox)  # it runs after all: never start a second copy
            return
        self.containers.start(container, pod, pod.pod_ip, self._cluster_settings())
        self._started(container.sandbox, pod, pod.pod_ip, restarts=pod.restarts + 1)

    def _started(self, sandbox: str, pod: Pod, pod_ip: str, restarts: int | None = None) -> None:
        """Running, and Ready at once only when there is nothing to probe."""
        probed = pod.readiness is not None or readiness_port(pod) is not None
        written = self.status.running(pod, pod_ip, ready=not probed, restarts=restarts)
        if written is not None and probed:
            self._probe(sandbox, written)

    def _terminate(self, sandbox: str, pod: Pod) -> None:
        """SIGTERM, SIGKILL after the grace period, CNI DEL, and the object goes."""
        self.prober.forget(sandbox)  # no Ready while it stops
        self.status.event(pod, "Killing", f"Stopping container {_container(sandbox, pod).name}")
        self._teardown(sandbox, pod, grace=float(pod.grace_seconds))
        self.status.remove(pod)

    def _collect(self, sandbox: str) -> None:
        """A sandbox no pod of this node's snapshot has: torn down, unless the store
        says now that its pod is here (the snapshot was read before it was made)."""
        owner = self.sandboxes.pod_of(sandbox)
        current = resources.get(self.store, Pod, *owner) if owner else None
        if current is not None and current.node_name == self.config.node_name and not current.terminating:
            return
        self._teardown(sandbox)

    def _teardown(self, sandbox: str, pod: Pod | None = None, grace: float = 0.5) -> None:
        """Its containers, then the sandbox (CNI DEL, namespace, record last)."""
        self.prober.forget(sandbox)
        self.containers.backoff.reset(sandbox)
        self.containers.stop(sandbox, grace)
        self.sandboxes.remove(sandbox, pod)

    def _cluster_settings(self) -> cluster.ClusterConfig:
        if self._settings is None:
            self._settings = cluster.load(self.store)
        return self._settings


def _container(sandbox: str, pod: Pod) -> ContainerKey:
    """The pod's container: one per pod, for now."""
    return ContainerKey(sandbox, pod.containers[0].name)
