"""The kubelet part of the agent: the pods bound to this node, made real.

For each pod it makes a sandbox (a network namespace named
`<prefix><namespace>.<pod>`), wires it through the node's CNI conflist, runs its
init containers one after another to completion, then all its containers, each
under a shim of its own, and reports what it finds of them in the pod's status
as kubelet does: each container's state, last state, restarts and readiness, and
the pod's phase and Ready by Kubernetes' rules. A container that exits is
restarted per the pod's restartPolicy with kubelet's back-off. A pod marked
terminating gets SIGTERM, SIGKILL after its grace period, CNI DEL, and its
sandbox, logs and object removed.

What this node has begun is on disk before it exists (the sandbox's record, each
container instance's files), so an agent killed at any point finds, when it starts
again, every sandbox and container it may have made: it adopts those whose pod is
still here, and tears down the rest.

PodController only decides, in its pass. The work is done, as in kubelet, by
rooms of their own: sandboxes (agent/sandboxes.py), containers and their
back-off (agent/containers.py), their environment (agent/environment.py), status
and events (agent/pod_status.py) and readiness (agent/prober.py), on the pod
workers' threads (agent/pod_workers.py).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from podnet.agent import logs
from podnet.agent.containers import ContainerKey, Containers, Instance, Launch, Step
from podnet.agent.environment import ConfigError, container_env, expand
from podnet.agent.pod_status import PodStatus, StatusWriter
from podnet.agent.pod_workers import PodWorkers
from podnet.agent.prober import Prober
from podnet.agent.sandboxes import Sandboxes
from podnet.api import cluster
from podnet.cni.runtime import NetworkConfigList
from podnet.model.commands import container_command, container_readiness_port
from podnet.model.container_status import ContainerState, ContainerStatus
from podnet.model.pod import ECHO_IMAGE, Container, Pod
from podnet.store import resources
from podnet.store.base import Store
from podnet.store.snapshot import Snapshot


@dataclass(frozen=True)
class KubeletConfig:
    node_name: str
    sandbox_prefix: str  # "pn-demo.": a pod's namespace is <prefix><namespace>.<name>
    state_dir: Path  # sandbox records, CNI results, container instances
    log_dir: Path  # containers' logs go under <log_dir>/pods, as /var/log/pods
    network: NetworkConfigList
    plugin_dir: str
    node_netns: str  # the node's namespace, by path: where the CNI plugins run
    store_location: str  # the store as pods reach it ($PODNET_STORE)

    def sandbox(self, pod: Pod) -> str:
        return self.sandbox_of(pod.metadata.namespace, pod.metadata.name)

    def sandbox_of(self, namespace: str, name: str) -> str:
        return f"{self.sandbox_prefix}{namespace}.{name}"

    def pod_logs(self, pod: Pod) -> Path:
        return self.log_dir / "pods" / f"{pod.metadata.namespace}_{pod.metadata.name}_{pod.uid}"


class PodController:
    name = "pods"

    def __init__(self, store: Store, config: KubeletConfig, workers: int = 8,
                 addressed: Callable[[Pod], None] | None = None) -> None:
        self.store = store
        self.config = config
        self.addressed = addressed  # told of each pod's address between CNI ADD and its start (policy isolates it)
        self.sandboxes = Sandboxes(config.state_dir, config.network, config.plugin_dir, config.node_netns)
        self.containers = Containers(config.state_dir)
        self.status = StatusWriter(store, config.node_name)
        self.workers = PodWorkers(workers)
        self.prober = Prober(self._verdict_turned)
        self._settings: cluster.ClusterConfig | None = None
        self._config_errors: dict[ContainerKey, str] = {}  # containers whose environment can't be made
        self._pods: dict[str, Pod] = {}  # sandbox -> its pod as last seen, for the prober's reports

    # The controller's pass: decide, and hand slow work to the pod workers.

    def sync(self, snapshot: Snapshot) -> None:
        mine = {self.config.sandbox(p): p for p in snapshot.pods if p.node_name == self.config.node_name}
        self._pods = mine
        recorded = self.sandboxes.recorded()
        for sandbox, pod in mine.items():
            if pod.terminating:
                self.workers.submit(sandbox, self._terminate, sandbox, pod)
            elif sandbox not in recorded or not pod.pod_ip:
                self.workers.submit(sandbox, self._start, sandbox, pod)
            elif not self.workers.busy(sandbox):
                self._tend(sandbox, pod)
        for sandbox in recorded - mine.keys():
            self.workers.submit(sandbox, self._collect, sandbox)

    def _tend(self, sandbox: str, pod: Pod) -> None:
        """Containers to start or restart, readiness to probe, a status to write."""
        instances = self._instances(sandbox, pod)
        starts = self._due(sandbox, pod, instances)
        for container in pod.containers:
            instance = instances[container.name]
            key = ContainerKey(sandbox, container.name)
            if instance is not None and instance.running and key not in self.prober:
                self.prober.watch(key, pod, container.readiness, container_readiness_port(container))
        if starts or not self.status.reported(pod, self._status(sandbox, pod, instances)):
            self.workers.submit(sandbox, self._act, sandbox, pod, starts)

    def _due(self, sandbox: str, pod: Pod, instances: dict[str, Instance | None]) -> list[Container]:
        """What to start now: the next init container, or once all have
        completed, every container not started yet or due for a restart."""
        if self._phase(pod, instances) in ("Succeeded", "Failed"):
            return []
        for container in pod.init_containers:
            instance = instances[container.name]
            if instance is None:
                return [container]
            if instance.running:
                return []
            if not instance.state.succeeded:
                return [container] if self._restart_now(sandbox, pod, container, instance) else []
        starts = []
        for container in pod.containers:
            instance = instances[container.name]
            if instance is None:
                starts.append(container)
            elif not instance.running and _restarts(pod, instance) and \
                    self._restart_now(sandbox, pod, container, instance):
                starts.append(container)
        return starts

    def _restart_now(self, sandbox: str, pod: Pod, container: Container, instance: Instance) -> bool:
        key = ContainerKey(sandbox, container.name)
        step = self.containers.backoff.step(key, time.monotonic())
        if step is Step.BACK_OFF:
            self.prober.forget(sandbox, container.name)
            self.status.event(pod, "BackOff", f"Back-off restarting failed container {container.name} "
                              f"in pod {pod.metadata.name}", warning=True)
        return step is Step.RESTART

    def _verdict_turned(self, key: ContainerKey) -> None:
        pod = self._pods.get(key.sandbox)
        if pod is None:
            return
        if self.prober.ready(key):
            self.containers.backoff.reset(key.sandbox, key.name)
        else:
            self.status.event(pod, "Unhealthy", "Readiness probe failed", warning=True)
        self.workers.submit(key.sandbox, self._act, key.sandbox, pod, [])

    # What the kubelet finds, and reports.

    def _instances(self, sandbox: str, pod: Pod) -> dict[str, Instance | None]:
        return {c.name: self.containers.inspect(ContainerKey(sandbox, c.name))
                for c in (*pod.init_containers, *pod.containers)}

    def _status(self, sandbox: str, pod: Pod, instances: dict[str, Instance | None],
                pod_ips: tuple[str, ...] = ()) -> PodStatus:
        phase = self._phase(pod, instances)
        initialized = _initialized(pod, instances)
        init = tuple(self._container_status(sandbox, pod, c, instances[c.name], phase, True, init=True)
                     for c in pod.init_containers)
        regular = tuple(self._container_status(sandbox, pod, c, instances[c.name], phase, initialized)
                        for c in pod.containers)
        ready = phase == "Running" and all(s.ready for s in regular)
        return PodStatus(phase, ready, pod_ips or pod.pod_ips, regular, init)

    def _container_status(self, sandbox: str, pod: Pod, container: Container, instance: Instance | None,
                          phase: str, initialized: bool, init: bool = False) -> ContainerStatus:
        key = ContainerKey(sandbox, container.name)
        image = container.image or ECHO_IMAGE
        if instance is None:
            problem = self._config_errors.get(key)
            state = ContainerState("waiting", "CreateContainerConfigError", problem) if problem else \
                ContainerState("waiting", "ContainerCreating" if initialized and not init else "PodInitializing")
            return ContainerStatus(container.name, state, image=image)
        if instance.running:
            ready = not init and self.prober.ready(key)
            return ContainerStatus(container.name, instance.state, instance.last, ready, instance.number, True, image)
        if _restarts(pod, instance, init) and phase not in ("Succeeded", "Failed"):
            waited = self.containers.backoff.waiting(key) or 10
            waiting = ContainerState("waiting", "CrashLoopBackOff", f"back-off {waited:.0f}s restarting failed "
                                     f"container={container.name} pod={pod.metadata.name}_{pod.metadata.namespace}"
                                     f"({pod.uid})")
            return ContainerStatus(container.name, waiting, instance.state, False, instance.number, False, image)
        return ContainerStatus(container.name, instance.state, instance.last, False, instance.number, False, image)

    @staticmethod
    def _phase(pod: Pod, instances: dict[str, Instance | None]) -> str:
        """kubelet's getPhase: Pending until every init container has completed
        and every container has started; then Running, until all have ended for
        good under the restartPolicy: Succeeded if none failed, else Failed."""
        for container in pod.init_containers:
            instance = instances.get(container.name)
            if instance is None or instance.running:
                return "Pending"
            if not instance.state.succeeded:
                return "Failed" if pod.restart_policy == "Never" else "Pending"
        running = stopped = failed = waiting = 0
        for container in pod.containers:
            instance = instances.get(container.name)
            if instance is None:
                waiting += 1
            elif instance.running:
                running += 1
            else:
                stopped += 1
                failed += not instance.state.succeeded
        if waiting:
            return "Pending"
        if running:
            return "Running"
        if pod.restart_policy == "Always" or pod.restart_policy == "OnFailure" and failed:
            return "Running"
        return "Failed" if failed else "Succeeded"

    # The work itself, on the pod workers.

    def _start(self, sandbox: str, pod: Pod) -> None:
        """Sandbox, containers, status. Whatever a crashed earlier try left of this
        sandbox goes first."""
        current = resources.get(self.store, Pod, pod.metadata.namespace, pod.metadata.name)
        if current is None or current.terminating or current.node_name != self.config.node_name:
            return  # deleted or moved since the pass that asked
        if current.pod_ip and self.sandboxes.is_complete(sandbox):
            return  # started already: the pass that asked read the store before that was written
        if self.sandboxes.has_remains(sandbox):
            self._teardown(sandbox)
        settings = self._cluster_settings()
        pod_ips = self.sandboxes.create(sandbox, current, settings.resolv_conf(current.metadata.namespace))
        running = current.with_status(pod_ips=pod_ips, host_ip=current.host_ip, ready=False, phase="Pending")
        if self.addressed is not None:
            self.addressed(running)
        self._act(sandbox, running, self._due(sandbox, running, self._instances(sandbox, running)))

    def _act(self, sandbox: str, pod: Pod, starts: list[Container]) -> None:
        """Start these containers, then write the status as the kubelet finds it."""
        if starts:
            current = resources.get(self.store, Pod, pod.metadata.namespace, pod.metadata.name)
            if current is None or current.terminating or current.node_name != self.config.node_name:
                return
            for container in starts:
                self._launch(sandbox, pod, container)
        self.status.write(pod, self._status(sandbox, pod, self._instances(sandbox, pod)))

    def _launch(self, sandbox: str, pod: Pod, container: Container) -> None:
        key = ContainerKey(sandbox, container.name)
        settings = self._cluster_settings()
        base = {"PODNET_STORE": self.config.store_location, "PODNET_DNS_DOMAIN": settings.dns_domain,
                "PODNET_DNS_UPSTREAMS": ",".join(settings.upstreams)}
        try:
            env = container_env(self.store, pod, container, base)
        except ConfigError as err:
            if self._config_errors.get(key) != str(err):
                self.status.event(pod, "Failed", f"Error: {err}", warning=True)
            self._config_errors[key] = str(err)
            return
        self._config_errors.pop(key, None)
        self.prober.forget(sandbox, container.name)
        log_dir = logs.container_log_dir(self.config.log_dir / "pods", pod.metadata.namespace, pod.metadata.name,
                                         pod.uid, container.name)
        declared = {variable.name: env[variable.name] for variable in container.env}
        argv = tuple(expand(word, declared) for word in container_command(container))
        self.containers.start(key, Launch(argv, env, container.working_dir, log_dir,
                                          container.stdin, container.stdin_once, container.tty))
        self.status.event(pod, "Started", f"Started container {container.name}")

    def _terminate(self, sandbox: str, pod: Pod) -> None:
        """SIGTERM, SIGKILL after the grace period, CNI DEL, and the object goes."""
        self.prober.forget(sandbox)  # no Ready while it stops
        for container in pod.containers:
            self.status.event(pod, "Killing", f"Stopping container {container.name}")
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
        """Its containers, then the sandbox (CNI DEL, namespace, record last), then
        its containers' files and logs."""
        self.prober.forget(sandbox)
        self.containers.backoff.reset(sandbox)
        self.containers.stop(sandbox, grace)
        self.sandboxes.remove(sandbox, pod)
        self.containers.forget(sandbox)
        for key in [k for k in self._config_errors if k.sandbox == sandbox]:
            del self._config_errors[key]
        if pod is not None:
            shutil.rmtree(self.config.pod_logs(pod), ignore_errors=True)  # as kubelet removes /var/log/pods/<pod>

    def _cluster_settings(self) -> cluster.ClusterConfig:
        if self._settings is None:
            self._settings = cluster.load(self.store)
        return self._settings


def _restarts(pod: Pod, instance: Instance, init: bool = False) -> bool:
    """Whether an ended container is started again, by the pod's restartPolicy
    (an init container that failed is, unless the policy is Never)."""
    if pod.restart_policy == "Never":
        return False
    if init:
        return not instance.state.succeeded
    return pod.restart_policy == "Always" or not instance.state.succeeded


def _initialized(pod: Pod, instances: dict[str, Instance | None]) -> bool:
    return all((i := instances.get(c.name)) is not None and i.state.succeeded for c in pod.init_containers)
