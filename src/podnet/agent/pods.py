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
"""

from __future__ import annotations

import functools
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from podnet.store.snapshot import Snapshot
from podnet.agent.prober import Prober
from podnet.api import cluster, events, writes
from podnet.cni.result import Result
from podnet.cni.runtime import Attachment, NetworkConfigList, Runtime
from podnet.errors import PodnetError
from podnet.kernel import netns
from podnet.model.commands import readiness_port, resolve_command
from podnet.model.pod import Pod
from podnet.store import resources
from podnet.store.base import Store

log = logging.getLogger("podnet.agent.pods")

BACKOFF_FIRST, BACKOFF_MAX = 10.0, 300.0  # kubelet's restart back-off: 10 s doubling to 5 min
SCAN_PERIOD = 1.0  # seconds between looks through /proc for commands that stopped


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


@dataclass
class _Backoff:
    delay: float = 0.0
    not_before: float = 0.0


class PodController:
    name = "pods"

    def __init__(self, store: Store, config: KubeletConfig, workers: int = 8,
                 addressed: Callable[[Pod], None] | None = None) -> None:
        self.store = store
        self.config = config
        self.addressed = addressed  # told of each pod's address between CNI ADD and its start (policy isolates it)
        self.runtime = Runtime([config.plugin_dir], config.state_dir / "cni", config.node_netns)
        self.records = config.state_dir / "pods"
        self.records.mkdir(parents=True, exist_ok=True)
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="pod")
        self._lock = threading.Lock()
        self._busy: set[str] = set()  # sandboxes with work in flight
        self._children: dict[int, str] = {}  # pid -> sandbox, of the commands this agent started
        self._exited: set[str] = set()  # sandboxes whose command (a child of ours) has exited
        self._next_scan = 0.0
        self._backoff: dict[str, _Backoff] = {}
        self._settings: cluster.ClusterConfig | None = None
        self._node_address: str | None = None
        self.prober = Prober(self._report_readiness)

    # The controller's pass: decide, and hand slow work to the pool.

    def sync(self, snapshot: Snapshot) -> None:
        mine = {self.config.sandbox(p): p for p in snapshot.pods if p.node_name == self.config.node_name}
        recorded = self._recorded()
        stopped = self._stopped([s for s, p in mine.items() if p.pod_ip and not p.terminating])
        for sandbox, pod in mine.items():
            if pod.terminating:
                self._submit(sandbox, self._terminate, sandbox, pod)
            elif sandbox not in recorded or not pod.pod_ip:
                self._submit(sandbox, self._start, sandbox, pod)
            elif sandbox in stopped:
                self._restart_later(sandbox, pod)
            elif sandbox in self.prober:
                self.prober.observe(sandbox, pod.ready)
            elif pod.readiness or not pod.ready:  # adopted after a restart, or Ready taken away meanwhile
                self._probe(sandbox, pod)
        for sandbox in recorded - mine.keys():
            self._submit(sandbox, self._collect, sandbox)

    def _submit(self, sandbox: str, work: Callable[..., object], *args: object) -> None:
        with self._lock:
            if sandbox in self._busy:
                return
            self._busy.add(sandbox)

        def run() -> None:
            try:
                work(*args)
            except PodnetError as err:
                log.error("%s: %s", sandbox, err)
            except Exception:
                log.exception("%s: failed", sandbox)
            finally:
                with self._lock:
                    self._busy.discard(sandbox)

        self._pool.submit(run)

    # Records of what this node has begun.

    def _record(self, sandbox: str) -> Path:
        return self.records / f"{sandbox}.json"

    def _recorded(self) -> set[str]:
        """Every sandbox this node may have made."""
        return {path.stem for path in self.records.glob("*.json")}

    @staticmethod
    def _attachment(sandbox: str, pod: Pod | None = None) -> Attachment:
        """As kubelet calls CNI: the container ID is the sandbox's name without pn-."""
        container_id = sandbox.removeprefix(netns.PREFIX)
        args = {"IgnoreUnknown": "1"}
        if pod is not None:
            args.update(K8S_POD_NAMESPACE=pod.metadata.namespace, K8S_POD_NAME=pod.metadata.name,
                        K8S_POD_INFRA_CONTAINER_ID=container_id)
        return Attachment(container_id, str(netns.path(sandbox)), "eth0", args)

    # The work itself, in the pool.

    def _start(self, sandbox: str, pod: Pod) -> None:
        """Sandbox, CNI ADD, resolv.conf, command, status. Whatever a crashed
        earlier try left of this sandbox goes first."""
        record = self._record(sandbox)
        current = resources.get(self.store, Pod, pod.metadata.namespace, pod.metadata.name)
        if current is None or current.terminating or current.node_name != self.config.node_name:
            return  # deleted or moved since the pass that asked
        if current.pod_ip and record.exists() and netns.exists(sandbox):
            return  # started already: the pass that asked read the store before that was written
        if record.exists() or netns.exists(sandbox):
            self._teardown(sandbox)
        record.write_text(json.dumps({"pod": f"{pod.metadata.namespace}/{pod.metadata.name}"}))
        netns.create(sandbox)
        result = Result.parse(self.runtime.add(self.config.network, self._attachment(sandbox, pod)))
        pod_ip = result.ips[0].address.split("/")[0]
        if self.addressed is not None:
            self.addressed(pod.with_status(pod_ip=pod_ip, host_ip=pod.host_ip, ready=False))
        settings = self._cluster_settings()
        netns.write_etc(sandbox, "resolv.conf", settings.resolv_conf(pod.metadata.namespace))
        self._spawn(sandbox, pod, pod_ip, settings)
        self._event(pod, "Started", f"Started container {pod.containers[0].name}")
        self._started(sandbox, pod, pod_ip)

    def _started(self, sandbox: str, pod: Pod, pod_ip: str, restarts: int | None = None) -> None:
        """Running, and Ready at once only when there is nothing to probe."""
        probed = pod.readiness is not None or readiness_port(pod) is not None
        written = self._write_status(pod, pod_ip, ready=not probed, restarts=restarts)
        if written is not None and probed:
            self._probe(sandbox, written)

    def _probe(self, sandbox: str, pod: Pod) -> None:
        if not self.prober.watch(sandbox, pod, pod.readiness, readiness_port(pod)) and not pod.ready:
            self._write_status(pod, pod.pod_ip or "", ready=True)  # nothing to probe: Ready while it runs

    def _report_readiness(self, pod: Pod, ready: bool) -> bool:
        if ready:
            self._backoff.pop(self.config.sandbox(pod), None)
        else:
            self._event(pod, "Unhealthy", "Readiness probe failed", warning=True)
        return self._write_status(pod, pod.pod_ip or "", ready=ready) is not None

    def _spawn(self, sandbox: str, pod: Pod, pod_ip: str, settings: cluster.ClusterConfig) -> None:
        env = {"POD_NAME": pod.metadata.name, "POD_NAMESPACE": pod.metadata.namespace, "POD_IP": pod_ip,
               "NODE_NAME": self.config.node_name, "PODNET_STORE": self.config.store_location,
               "PODNET_DNS_DOMAIN": settings.dns_domain, "PODNET_DNS_UPSTREAMS": ",".join(settings.upstreams)}
        log_path = self.config.log_dir / f"pod-{pod.metadata.namespace}.{pod.metadata.name}.log"
        self._exited.discard(sandbox)
        self._children[netns.spawn(sandbox, resolve_command(pod.command), log_path=log_path, env=env)] = sandbox

    def _write_status(self, pod: Pod, pod_ip: str, *, ready: bool, reason: str | None = None,
                      restarts: int | None = None) -> Pod | None:
        """Through compare-and-swap, so a deletion marked meanwhile is kept."""
        node_ip = self._node_ip()

        def status(current: Pod) -> Pod:
            if current.terminating or current.node_name != self.config.node_name:
                return current
            return current.with_status(pod_ip=pod_ip, host_ip=node_ip, ready=ready, phase="Running",
                                       reason=reason, restarts=restarts)

        try:
            written, _ = writes.modify(self.store, Pod, pod.metadata.namespace, pod.metadata.name, status)
        except writes.NotFound:
            return None
        return written

    def _terminate(self, sandbox: str, pod: Pod) -> None:
        """SIGTERM, SIGKILL after the grace period, CNI DEL, and the object goes."""
        self.prober.forget(sandbox)  # no Ready while it stops
        self._event(pod, "Killing", f"Stopping container {pod.containers[0].name}")
        netns.kill_processes_in([sandbox], grace=float(pod.grace_seconds))
        self._teardown(sandbox, pod)
        try:
            writes.modify(self.store, Pod, pod.metadata.namespace, pod.metadata.name,
                          lambda current: None if current.terminating else current)
        except writes.NotFound:
            pass

    def _collect(self, sandbox: str) -> None:
        """A sandbox no pod of this node's snapshot has: torn down, unless the store
        says now that its pod is here (the snapshot was read before it was made)."""
        try:
            namespace, name = json.loads(self._record(sandbox).read_text())["pod"].split("/", 1)
        except (OSError, ValueError, KeyError):
            namespace = name = ""
        current = resources.get(self.store, Pod, namespace, name) if name else None
        if current is not None and current.node_name == self.config.node_name and not current.terminating:
            return
        self._teardown(sandbox)

    def _teardown(self, sandbox: str, pod: Pod | None = None) -> None:
        """Processes, CNI DEL (which works without the namespace too), namespace,
        record: in this order, so a crash part-way leaves the record to retry from.
        Our own children go by pid too: one just spawned may not have entered the
        namespace yet, and would live on in it once it has no name."""
        self.prober.forget(sandbox)
        self._backoff.pop(sandbox, None)
        netns.kill_processes_in([sandbox], grace=0.5)
        for pid, owner in list(self._children.items()):
            if owner == sandbox:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.runtime.delete(self.config.network, self._attachment(sandbox, pod))
        netns.delete(sandbox)
        self._record(sandbox).unlink(missing_ok=True)

    def _restart_later(self, sandbox: str, pod: Pod) -> None:
        """Kubelet's CrashLoopBackOff: the first restart waits 10 s, each next one twice as long, up to 5 min."""
        backoff = self._backoff.setdefault(sandbox, _Backoff())
        now = time.monotonic()
        if backoff.delay == 0.0:
            backoff.delay, backoff.not_before = BACKOFF_FIRST, now + BACKOFF_FIRST
            self.prober.forget(sandbox)
            self._event(pod, "BackOff", f"Back-off restarting failed container {pod.containers[0].name} "
                        f"in pod {pod.metadata.name}", warning=True)
            self._submit(sandbox, functools.partial(self._write_status, ready=False, reason="CrashLoopBackOff"),
                         pod, pod.pod_ip)
            return
        if now < backoff.not_before:
            return
        backoff.delay = min(backoff.delay * 2, BACKOFF_MAX)
        backoff.not_before = now + backoff.delay
        self._submit(sandbox, self._restart, sandbox, pod)

    def _restart(self, sandbox: str, pod: Pod) -> None:
        assert pod.pod_ip
        if netns.processes_by_namespace([sandbox]).get(sandbox):
            self._backoff.pop(sandbox, None)  # it runs after all: never start a second copy
            return
        self._spawn(sandbox, pod, pod.pod_ip, self._cluster_settings())
        self._started(sandbox, pod, pod.pod_ip, restarts=pod.restarts + 1)

    # Small helpers.

    def _event(self, pod: Pod, reason: str, message: str, warning: bool = False) -> None:
        events.record(self.store, "Pod", pod.metadata.namespace, pod.metadata.name, reason, message,
                      f"kubelet {self.config.node_name}", warning)

    def _cluster_settings(self) -> cluster.ClusterConfig:
        if self._settings is None:
            self._settings = cluster.load(self.store)
        return self._settings

    def _node_ip(self) -> str | None:
        """Read once: a node keeps its address."""
        if self._node_address is None:
            node = writes.read(self.store, "Node", "", self.config.node_name)
            self._node_address = node[0].internal_ip if node else None  # type: ignore[union-attr]
        return self._node_address

    def _stopped(self, sandboxes: list[str]) -> set[str]:
        """Sandboxes whose command is not running: our children's exits at once,
        and, once a scan period, a look through /proc (which also sees the commands
        an earlier agent started)."""
        self._reap()
        if time.monotonic() < self._next_scan:
            return self._exited & set(sandboxes)
        self._next_scan = time.monotonic() + SCAN_PERIOD
        running = netns.processes_by_namespace(sandboxes)
        ours = set(self._children.values())  # a child just spawned may not have entered its namespace yet
        return {s for s in sandboxes if not running.get(s) and s not in ours}

    def _reap(self) -> None:
        """Commands this agent started are its children: collect those that exited."""
        for pid, sandbox in list(self._children.items()):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                del self._children[pid]
                self._exited.add(sandbox)
