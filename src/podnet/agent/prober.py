"""The kubelet's readiness prober: each container's probe run on its own period, from
the node (as kubelet probes a pod's IP), its answers counted against the
probe's thresholds, and a change reported once.

A pod without a readinessProbe is probed by its known port (the echo server's,
the DNS server's, the first TCP containerPort) every PROMPT seconds until it
answers once: Ready as soon as it listens, then left alone, as Kubernetes
counts a container without a probe Ready once it runs.
"""

from __future__ import annotations

import http.client
import logging
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from podnet.agent.containers import ContainerKey
from podnet.errors import PodnetError
from podnet.kernel import netns
from podnet.model.pod import Pod
from podnet.model.probe import Probe

log = logging.getLogger("podnet.agent.prober")

PROMPT = 0.05  # the period of a default probe, and the prober's tick


@dataclass
class Target:
    key: ContainerKey
    pod: Pod
    probe: Probe
    once: bool  # a default probe: stop after the first success
    ready: bool = False  # what the answers say
    successes: int = 0
    failures: int = 0
    due: float = field(default_factory=time.monotonic)
    running: bool = False


Changed = Callable[[ContainerKey], None]  # told when a container's verdict turns


class Prober:
    """Probes containers and keeps their verdicts; the kubelet reads them when it
    writes a pod's status, and is told when one turns."""

    def __init__(self, changed: Changed, workers: int = 4) -> None:
        self._changed = changed
        self._targets: dict[ContainerKey, Target] = {}
        self._verdicts: dict[ContainerKey, bool] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="probe")
        threading.Thread(target=self._loop, name="prober", daemon=True).start()

    def __contains__(self, key: ContainerKey) -> bool:
        return key in self._targets or key in self._verdicts

    def ready(self, key: ContainerKey) -> bool:
        return self._verdicts.get(key, False)

    def watch(self, key: ContainerKey, pod: Pod, probe: Probe | None, default_port: int | None) -> None:
        """Start probing; with nothing to probe (no probe, no port) the container
        is Ready at once."""
        once = probe is None
        if probe is None:
            if default_port is None:
                self._verdicts[key] = True
                return
            probe = Probe("tcpSocket", default_port, period=PROMPT, timeout=0.2, failure_threshold=1)
        target = Target(key, pod, probe, once)
        target.due = time.monotonic() + probe.initial_delay
        with self._lock:
            self._targets[key] = target
            self._verdicts[key] = False

    def forget(self, sandbox: str, name: str | None = None) -> None:
        """A container's probing and verdict (all of a sandbox's, without a name)."""
        with self._lock:
            for found in [*self._targets, *self._verdicts]:
                if found.sandbox == sandbox and name in (None, found.name):
                    self._targets.pop(found, None)
                    self._verdicts.pop(found, None)

    def _loop(self) -> None:
        while True:
            time.sleep(PROMPT)
            now = time.monotonic()
            with self._lock:
                due = [t for t in self._targets.values() if not t.running and t.due <= now]
                for target in due:
                    target.running = True
            for target in due:
                self._pool.submit(self._probe, target)

    def _probe(self, target: Target) -> None:
        try:
            ok = answers(target.pod, target.probe, target.key.sandbox)
        except Exception:  # a bug here must not end the probing of the others
            log.exception("%s: probe failed", target.key.sandbox)
            ok = False
        if ok:
            target.successes, target.failures = target.successes + 1, 0
            if target.successes >= target.probe.success_threshold:
                target.ready = True
        else:
            target.successes, target.failures = 0, target.failures + 1
            if target.failures >= target.probe.failure_threshold:
                target.ready = False
        target.due = time.monotonic() + target.probe.period
        target.running = False
        with self._lock:
            if self._targets.get(target.key) is not target:
                return  # forgotten meanwhile
            turned = self._verdicts.get(target.key) != target.ready
            self._verdicts[target.key] = target.ready
            if target.once and target.ready:
                del self._targets[target.key]
        if turned:
            self._changed(target.key)


def answers(pod: Pod, probe: Probe, sandbox: str) -> bool:
    """One probe: a TCP connect or an HTTP GET to the pod's IP (2xx or 3xx), or a
    command in the pod's namespace (exit 0), within the probe's timeout."""
    if probe.action == "exec":
        try:
            return netns.run(sandbox, probe.command, check=False, timeout=probe.timeout).returncode == 0
        except PodnetError:
            return False  # it did not finish in time
    port = pod.port_number(probe.port) if probe.port is not None else None
    if port is None or not pod.pod_ip:
        return False
    if probe.action == "tcpSocket":
        with socket.socket(socket.AF_INET6 if ":" in pod.pod_ip else socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(probe.timeout)
            return sock.connect_ex((pod.pod_ip, port)) == 0
    connection = http.client.HTTPConnection(pod.pod_ip, port, timeout=probe.timeout)
    try:
        connection.request("GET", probe.path, headers={"User-Agent": "kube-probe/podnet"})
        return 200 <= connection.getresponse().status < 400
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()
