"""The containers of this node's pods, each a process in its pod's sandbox:
started with the pod's environment and a log file, stopped with a grace period,
reaped when it exits, and restarted with kubelet's CrashLoopBackOff.

A container is known by its sandbox and its name. The commands this agent
started are its children, so their exits are seen at once; those an earlier
agent started are found by a look through /proc once a scan period, which sees
which sandboxes have processes left, not which container each one is.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from podnet.api import cluster
from podnet.kernel import netns
from podnet.model.commands import resolve_command
from podnet.model.pod import Pod

BACKOFF_FIRST, BACKOFF_MAX = 10.0, 300.0  # kubelet's restart back-off: 10 s doubling to 5 min
SCAN_PERIOD = 1.0  # seconds between looks through /proc for commands that stopped


@dataclass(frozen=True)
class ContainerKey:
    sandbox: str
    name: str


class Step(Enum):
    """What to do about a container found stopped."""
    BACK_OFF = "back off"  # just found: say so, and wait the first delay
    WAIT = "wait"
    RESTART = "restart"


@dataclass
class _Delay:
    delay: float = 0.0
    not_before: float = 0.0


class Backoff:
    """Kubelet's CrashLoopBackOff: the first restart waits 10 s, each next one
    twice as long, up to 5 min, until the pod is reset (Ready again, or gone)."""

    def __init__(self) -> None:
        self._delays: dict[str, dict[str, _Delay]] = {}  # sandbox -> container name -> its delay

    def step(self, container: ContainerKey, now: float) -> Step:
        delay = self._delays.setdefault(container.sandbox, {}).setdefault(container.name, _Delay())
        if delay.delay == 0.0:
            delay.delay, delay.not_before = BACKOFF_FIRST, now + BACKOFF_FIRST
            return Step.BACK_OFF
        if now < delay.not_before:
            return Step.WAIT
        delay.delay = min(delay.delay * 2, BACKOFF_MAX)
        delay.not_before = now + delay.delay
        return Step.RESTART

    def reset(self, sandbox: str) -> None:
        self._delays.pop(sandbox, None)  # one call: the prober's and the pod workers' threads reset too


class Containers:
    def __init__(self, node_name: str, store_location: str, log_dir: Path) -> None:
        self.node_name = node_name
        self.store_location = store_location  # the store as pods reach it ($PODNET_STORE)
        self.log_dir = log_dir
        self.backoff = Backoff()
        self._children: dict[int, ContainerKey] = {}  # pid -> container, of the commands this agent started
        self._exited: set[ContainerKey] = set()  # containers whose process (a child of ours) has exited
        self._next_scan = 0.0

    def start(self, container: ContainerKey, pod: Pod, pod_ip: str, settings: cluster.ClusterConfig) -> None:
        """The pod's command (one container per pod, for now), in its sandbox."""
        env = {"POD_NAME": pod.metadata.name, "POD_NAMESPACE": pod.metadata.namespace, "POD_IP": pod_ip,
               "NODE_NAME": self.node_name, "PODNET_STORE": self.store_location,
               "PODNET_DNS_DOMAIN": settings.dns_domain, "PODNET_DNS_UPSTREAMS": ",".join(settings.upstreams)}
        log_path = self.log_dir / f"pod-{pod.metadata.namespace}.{pod.metadata.name}.log"
        self._exited.discard(container)
        pid = netns.spawn(container.sandbox, resolve_command(pod.command), log_path=log_path, env=env)
        self._children[pid] = container

    def running(self, sandbox: str) -> bool:
        return bool(netns.processes_by_namespace([sandbox]).get(sandbox))

    def stopped(self, containers: Iterable[ContainerKey]) -> set[ContainerKey]:
        """Those not running: our children's exits at once, and, once a scan
        period, a look through /proc (which also sees the commands an earlier
        agent started)."""
        wanted = set(containers)
        self._reap()
        if time.monotonic() < self._next_scan:
            return self._exited & wanted
        self._next_scan = time.monotonic() + SCAN_PERIOD
        running = netns.processes_by_namespace(list({c.sandbox for c in wanted}))
        ours = set(self._children.values())  # a child just spawned may not have entered its namespace yet
        return {c for c in wanted if not running.get(c.sandbox) and c not in ours}

    def stop(self, sandbox: str, grace: float) -> None:
        """SIGTERM to every process in the sandbox, SIGKILL after the grace period.
        Our own children go by pid too: one just spawned may not have entered the
        namespace yet, and would live on in it once it has no name."""
        netns.kill_processes_in([sandbox], grace=grace)
        for pid, owner in list(self._children.items()):
            if owner.sandbox == sandbox:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def _reap(self) -> None:
        """Commands this agent started are its children: collect those that exited."""
        for pid, container in list(self._children.items()):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                del self._children[pid]
                self._exited.add(container)
