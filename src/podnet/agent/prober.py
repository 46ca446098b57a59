"""The kubelet's readiness prober: each pod's probe run on its own period, from
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

from podnet.errors import PodnetError
from podnet.kernel import netns
from podnet.model.pod import Pod
from podnet.model.probe import Probe

log = logging.getLogger("podnet.agent.prober")

PROMPT = 0.05  # the period of a default probe, and the prober's tick


@dataclass
class Target:
    sandbox: str
    pod: Pod
    probe: Probe
    once: bool  # a default probe: stop after the first success
    reported: bool  # what the store says
    ready: bool = False  # what the answers say
    successes: int = 0
    failures: int = 0
    due: float = field(default_factory=time.monotonic)
    running: bool = False


Report = Callable[[Pod, bool], bool]  # (pod, ready) -> whether the store took it


class Prober:
    def __init__(self, report: Report, workers: int = 4) -> None:
        self._report = report
        self._targets: dict[str, Target] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="probe")
        threading.Thread(target=self._loop, name="prober", daemon=True).start()

    def __contains__(self, sandbox: str) -> bool:
        return sandbox in self._targets

    def watch(self, sandbox: str, pod: Pod, probe: Probe | None, default_port: int | None) -> bool:
        """Start probing; False when there is nothing to probe (no probe, no port):
        such a pod is Ready once started."""
        once = probe is None
        if probe is None:
            if default_port is None:
                return False
            probe = Probe("tcpSocket", default_port, period=PROMPT, timeout=0.2, failure_threshold=1)
        target = Target(sandbox, pod, probe, once, reported=pod.ready)
        target.due = time.monotonic() + probe.initial_delay
        with self._lock:
            self._targets[sandbox] = target
        return True

    def observe(self, sandbox: str, reported: bool) -> None:
        """What the store says now (the node lifecycle controller may have taken
        Ready away): a difference from the answers is written again."""
        target = self._targets.get(sandbox)
        if target is not None:
            target.reported = reported

    def forget(self, sandbox: str) -> None:
        with self._lock:
            self._targets.pop(sandbox, None)

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
            ok = answers(target.pod, target.probe, target.sandbox)
        except Exception:  # a bug here must not end the probing of the others
            log.exception("%s: probe failed", target.sandbox)
            ok = False
        if ok:
            target.successes, target.failures = target.successes + 1, 0
            if target.successes >= target.probe.success_threshold:
                target.ready = True
        else:
            target.successes, target.failures = 0, target.failures + 1
            if target.failures >= target.probe.failure_threshold:
                target.ready = False
        if target.ready != target.reported and self._targets.get(target.sandbox) is target:
            if self._report(target.pod, target.ready):
                target.reported = target.ready
        target.due = time.monotonic() + target.probe.period
        target.running = False
        if target.once and target.ready and target.reported:
            with self._lock:
                if self._targets.get(target.sandbox) is target:
                    del self._targets[target.sandbox]


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
