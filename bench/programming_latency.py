"""Network programming latency (the Kubernetes scalability SLI): the time from a
change of a Service's endpoints until every node forwards to the new set,
observed by real connections from a pod on every node.

Four changes, each measured --rounds times, from a probe every few
milliseconds on every node:
- scale up:     a Deployment 0 -> 1; from the slice showing the new endpoint
                Ready until every node reaches that pod (before, all refuse);
- scale down:   2 -> 1; from the slice taking the leaving pod's Ready away until
                the last connection any node sends it (it serves on for a second
                after SIGTERM, so a node still sending there is seen, not refused);
- pod delete:   one of two bare pods deleted; as scale down (a probe with no
                answer at all counts as sent to the leaving pod; the row
                "answered only" leaves those out, to tell the tails apart);
- label change: the selected label moved from pod a to pod b; from the slice
                holding b alone until every node reaches b.
- policy label: NetworkPolicy. The probing pods' egress is isolated (every node
                enforces it); a pod outside what they may reach gets the label
                that lets them in: from the label's write until every node
                reaches it (dropped probes give up after 150 ms).

Upstream's SLO is p99 <= 30 s; podnet's goal is p99 < 1 s on 20 nodes with 200
pods. No other implementation runs here to compare with (kube-proxy needs a
whole Kubernetes), so the figures stand against those two numbers.

Run as root: .venv/bin/python bench/programming_latency.py [--nodes 20] [--pods 200] [--store sqlite|etcd]
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import yaml

from podnet.api import writes
from podnet.api.apply import apply
from podnet.api.delete import delete
from podnet.kernel import netns
from podnet.lab import state
from podnet.model.deployment import Deployment
from podnet.model.endpointslice import EndpointSlice, by_service
from podnet.model.manifest import Resource, parse_resource
from podnet.model.pod import Pod
from podnet.model.service import Service
from podnet.store import resources
from podnet.store.base import Store
from podnet.store.location import open_store

LAB = "bench-prog"
TARGET_P99, SLO_P99 = 1.0, 30.0
REFUSED = "refused"
REMOVAL_WINDOW = 2.0  # seconds of probing after an endpoint is taken away


def podnet(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "podnet", *args], check=True, capture_output=True)


def manifest(document: dict) -> Resource:  # type: ignore[type-arg]
    return parse_resource(document)


GRACE = 3  # seconds: the measured pods end soon after their endpoints go, whatever connections they hold


def deployment(name: str, replicas: int) -> Resource:
    return manifest({"kind": "Deployment", "metadata": {"name": name}, "spec": {
        "replicas": replicas, "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}}, "spec": {
            "terminationGracePeriodSeconds": GRACE, "containers": [{"name": "echo"}]}}}})


def service(name: str, selector: dict[str, str]) -> Resource:
    return manifest({"kind": "Service", "metadata": {"name": name}, "spec": {"selector": selector,
                                                                            "ports": [{"port": 80}]}})


def pod(name: str, labels: dict[str, str]) -> Resource:
    return manifest({"kind": "Pod", "metadata": {"name": name, "labels": labels},
                     "spec": {"terminationGracePeriodSeconds": GRACE}})


def probers_egress() -> Resource:
    """The probing pods may reach the measured pods, and pods labelled access=yes."""
    return manifest({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                     "metadata": {"name": "filler-egress"},
                     "spec": {"podSelector": {"matchLabels": {"app": "filler"}}, "policyTypes": ["Egress"],
                              "egress": [{"to": [{"podSelector": {"matchExpressions": [
                                  {"key": "app", "operator": "In", "values": ["lat", "gone", "swap"]}]}},
                                  {"podSelector": {"matchLabels": {"access": "yes"}}}]}]}})


class Slices:
    """The store's view, polled every few milliseconds: when each Service's set
    of ready endpoints (pod names) took each value."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.history: dict[str, list[tuple[float, frozenset[str]]]] = {}
        self._stop = threading.Event()
        threading.Thread(target=self._poll, daemon=True).start()

    def _poll(self) -> None:
        while not self._stop.wait(0.005):
            now = time.monotonic()
            grouped = by_service(resources.list_kind(self.store, EndpointSlice)[0])
            for (namespace, name), pieces in grouped.items():
                ready = frozenset(e.pod or "" for s in pieces for e in s.endpoints if e.ready)
                seen = self.history.setdefault(name, [])
                if not seen or seen[-1][1] != ready:
                    seen.append((now, ready))
            for name, seen in self.history.items():
                if (("default", name) not in grouped) and seen[-1][1]:
                    seen.append((now, frozenset()))

    def when(self, name: str, since: float, wanted: Callable[[frozenset[str]], bool],
             timeout: float = 60) -> tuple[float, frozenset[str]]:
        """The first time since `since` the Service's ready set was a wanted one, and that set."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for at, ready in self.history.get(name, []):
                if at >= since and wanted(ready):
                    return at, ready
            time.sleep(0.005)
        seen = [(round(at - since, 3), sorted(ready)) for at, ready in self.history.get(name, [])]
        raise SystemExit(f"the slices of {name} never reached the expected set: {seen}")

    def now(self, name: str) -> frozenset[str]:
        seen = self.history.get(name)
        return seen[-1][1] if seen else frozenset()

    def stop(self) -> None:
        self._stop.set()


class Prober:
    """A loop of connections from one pod's namespace to a Service address,
    answering with which pod replied (or REFUSED), while a round runs."""

    def __init__(self, sandbox: str, interval: float) -> None:
        self.sandbox, self.interval = sandbox, interval
        self.target: str | None = None
        self.timeout = 0.5  # seconds a probe waits for an answer
        self.answers: list[tuple[float, str]] = []
        threading.Thread(target=netns.run_in, args=(sandbox, self._loop), daemon=True).start()

    def _loop(self) -> None:
        while True:
            target = self.target
            if target is None:
                time.sleep(0.01)
                continue
            asked = time.monotonic()
            self.answers.append((asked, _ask(target, self.timeout)))
            time.sleep(self.interval)

    def first(self, since: float, wanted: Callable[[str], bool], timeout: float = 30) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for at, answer in list(self.answers):
                if at >= since and wanted(answer):
                    return at
            time.sleep(0.01)
        raise SystemExit(f"{self.sandbox} never saw the change")

    def last(self, since: float, wrong: Callable[[str], bool]) -> float:
        """When this node last sent a connection to the old set (since, if never)."""
        return max([at for at, answer in list(self.answers) if at >= since and wrong(answer)], default=since)


def _ask(address: str, timeout: float = 0.5) -> str:
    connection = http.client.HTTPConnection(address, 80, timeout=timeout)
    try:
        connection.request("GET", "/")
        body = connection.getresponse().read().decode()
        return body.split('"pod": "', 1)[1].split('"', 1)[0]
    except (ConnectionRefusedError, ConnectionResetError):
        return REFUSED
    except (OSError, http.client.HTTPException, IndexError):
        return "timeout"
    finally:
        connection.close()


def wait(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


class Bench:
    def __init__(self, store: Store, probers: list[Prober]) -> None:
        self.store, self.probers = store, probers
        self.slices = Slices(store)
        self.answered: list[float] = []  # removals: until the last answer from the leaving pod (or its refusal)

    def address(self, name: str) -> str:
        found = resources.get(self.store, Service, "default", name)
        assert found is not None and found.cluster_ip
        return found.cluster_ip

    def _probing(self, service_name: str, change: Callable[[], None]) -> float:
        """Every node probing the Service, then the change made; when it was asked for."""
        address = self.address(service_name)
        for prober in self.probers:
            prober.answers.clear()
            prober.target = address
        asked = time.monotonic()
        change()
        return asked

    def _stop_probing(self) -> None:
        for prober in self.probers:
            prober.target = None

    def round(self, service_name: str, change: Callable[[], None], settled: Callable[[frozenset[str]], bool],
              answer: Callable[[str], bool]) -> list[float]:
        """Each node's latency for one change: slice settled -> node answers."""
        asked = self._probing(service_name, change)
        changed, _ = self.slices.when(service_name, asked, settled)
        latencies = [max(0.0, prober.first(asked, answer) - changed) for prober in self.probers]
        self._stop_probing()
        return latencies

    def removal(self, service_name: str, change: Callable[[], None]) -> list[float]:
        """Each node's latency for taking one of two endpoints away: slice down to
        one -> the last connection the node sent elsewhere than to that one. A probe
        that got no answer at all counts, as it may have gone to the leaving pod; the
        last one the leaving pod answered (or refused) is kept apart in `answered`,
        to tell the two kinds of tail apart."""
        asked = self._probing(service_name, change)
        changed, left = self.slices.when(service_name, asked, lambda ready: len(ready) == 1)
        (stays,) = left
        time.sleep(REMOVAL_WINDOW)
        self._stop_probing()
        self.answered += [prober.last(changed, lambda a: a not in (stays, "timeout")) - changed
                          for prober in self.probers]
        return [prober.last(changed, lambda a: a != stays) - changed for prober in self.probers]

    def ready_pods(self, app: str) -> set[str]:
        return {p.metadata.name for p in resources.list_kind(self.store, Pod)[0]
                if p.metadata.labels.get("app") == app and p.ready and not p.terminating}

    def everyone_answers(self, service_name: str, answer: Callable[[str], bool]) -> None:
        """A steady start: every node already sees the set a round starts from."""
        address = self.address(service_name)
        for prober in self.probers:
            wait(lambda p=prober: answer(_ask_from(p.sandbox, address)), 30, f"{prober.sandbox} to settle")


def _ask_from(sandbox: str, address: str, timeout: float = 0.5) -> str:
    return netns.run_in(sandbox, _ask, address, timeout)


def scale(store: Store, name: str, replicas: int) -> None:
    writes.modify(store, Deployment, "default", name, lambda d: d.scaled(replicas))


def relabel(store: Store, name: str, labels: dict[str, str]) -> None:
    writes.modify(store, Pod, "default", name,
                  lambda p: replace(p, metadata=replace(p.metadata, labels=labels)))


def guarded_by_policy(bench: Bench, store: Store) -> list[float]:
    """Each node's latency from the guard pod's new label to its first connection there."""
    guard = resources.get(store, Pod, "default", "guard")
    assert guard is not None and guard.pod_ip
    is_pod = lambda answer: answer not in (REFUSED, "timeout")  # noqa: E731
    for prober in bench.probers:
        prober.timeout = 0.15
        prober.answers.clear()
        prober.target = guard.pod_ip
    time.sleep(0.3)  # every node probing, and dropped
    relabel(store, "guard", {"app": "guard", "access": "yes"})
    changed = time.monotonic()
    latencies = [max(0.0, prober.first(changed, is_pod) - changed) for prober in bench.probers]
    bench._stop_probing()
    relabel(store, "guard", {"app": "guard"})
    for prober in bench.probers:
        prober.timeout = 0.5
        wait(lambda p=prober: _ask_from(p.sandbox, guard.pod_ip or "", 0.15) == "timeout", 30,
             f"{prober.sandbox} to be kept from the guard again")
    return latencies


def run_cases(bench: Bench, store: Store, rounds: int) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {"scale up": [], "scale down": [], "pod delete": [], "label change": [],
                                       "policy label": []}
    is_pod = lambda answer: answer not in (REFUSED, "timeout")  # noqa: E731
    for _ in range(rounds):
        bench.everyone_answers("lat", lambda a: a == REFUSED)
        results["scale up"] += bench.round("lat", lambda: scale(store, "lat", 1), bool, is_pod)
        scale(store, "lat", 2)
        wait(lambda: len(bench.slices.now("lat")) == 2, 30, "a second lat endpoint")
        bench.everyone_answers("lat", is_pod)
        results["scale down"] += bench.removal("lat", lambda: scale(store, "lat", 1))
        scale(store, "lat", 0)
        wait(lambda: not any(p.metadata.labels.get("app") == "lat" for p in resources.list_kind(store, Pod)[0]), 30,
             "the lat pods to go")
        apply(store, [pod("gone-b", {"app": "gone"})])
        wait(lambda: bench.slices.now("gone") == {"gone-a", "gone-b"}, 30, "pod gone-b's endpoint")
        results["pod delete"] += bench.removal("gone", lambda: delete(store, "Pod", "default", "gone-b"))
        wait(lambda: resources.get(store, Pod, "default", "gone-b") is None, 30, "pod gone-b to go")
        bench.everyone_answers("swap", lambda a: a == "swap-a")
        results["label change"] += bench.round(
            "swap", lambda: (relabel(store, "swap-a", {"app": "swap"}),
                             relabel(store, "swap-b", {"app": "swap", "active": "yes"})),
            lambda s: s == {"swap-b"}, lambda a: a == "swap-b")
        relabel(store, "swap-b", {"app": "swap"})
        relabel(store, "swap-a", {"app": "swap", "active": "yes"})
        results["policy label"] += guarded_by_policy(bench, store)
    return results


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--pods", type=int, default=30, help="Echo pods besides the measured ones (a prober on each node).")
    parser.add_argument("--store", choices=["sqlite", "etcd"], default="sqlite")
    parser.add_argument("--rounds", type=int, default=10)
    options = parser.parse_args()
    interval = max(0.01, 0.002 * options.nodes)  # fewer connections per node when there are many nodes
    lab = {"apiVersion": "podnet.dev/v1alpha1", "kind": "Cluster", "metadata": {"name": LAB}, "store": options.store,
           "nodes": [{"name": f"n{i}"} for i in range(options.nodes)]}
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "lab.yaml"
        path.write_text(yaml.safe_dump(lab))
        started = time.monotonic()
        podnet("lab", "up", str(path))
        print(f"lab of {options.nodes} nodes up in {time.monotonic() - started:.1f} s", flush=True)
    record = next(r for r in state.running() if r.name == LAB)
    store = open_store(record.store)
    try:
        apply(store, [deployment("filler", options.pods), deployment("lat", 0), service("lat", {"app": "lat"}),
                      service("gone", {"app": "gone"}), pod("gone-a", {"app": "gone"}), pod("swap-a", {"app": "swap", "active": "yes"}),
                      pod("swap-b", {"app": "swap"}), service("swap", {"app": "swap", "active": "yes"}),
                      pod("guard", {"app": "guard"}), probers_egress()])
        bench = Bench(store, [])
        wait(lambda: len(bench.ready_pods("filler")) == options.pods and len(bench.ready_pods("swap")) == 2
             and len(bench.ready_pods("guard")) == 1, 600,
             "the pods to be Ready")
        fillers = [p for p in resources.list_kind(store, Pod)[0] if p.metadata.labels.get("app") == "filler"]
        hosts = {p.node_name: p for p in fillers if p.ready}
        if len(hosts) < options.nodes:
            raise SystemExit(f"only {len(hosts)} nodes have a pod to probe from")
        bench.probers = [Prober(f"pn-{LAB}.default.{p.metadata.name}", interval) for p in hosts.values()]
        try:
            results = run_cases(bench, store, options.rounds)
        finally:
            bench.slices.stop()
            time.sleep(0.05)
    finally:
        store.close()
        podnet("lab", "down", LAB)
    print(f"network programming latency, {options.nodes} nodes, {options.pods + 3} pods, {options.store}; "
          f"seconds from the slice change until a node forwards to the new set (probes every {interval * 1000:.0f} ms)")
    print(f"{'':16}{'p50':>8}{'p99':>8}{'max':>8}   every node, {options.rounds} rounds")
    everything = []
    for case, values in results.items():
        everything += values
        print(f"{case:16}{statistics.median(values):8.3f}{percentile(values, 0.99):8.3f}{max(values):8.3f}")
    if bench.answered:
        print(f"{'  answered only':16}{statistics.median(bench.answered):8.3f}{percentile(bench.answered, 0.99):8.3f}"
              f"{max(bench.answered):8.3f}   scale down and pod delete, probes without an answer left out")
    p99 = percentile(everything, 0.99)
    print(f"all changes: p99 {p99:.3f} s; goal p99 < {TARGET_P99:g} s: {'meets' if p99 < TARGET_P99 else 'misses'}; "
          f"upstream SLO p99 <= {SLO_P99:g} s (ratio to it {p99 / SLO_P99:.3f})")


if __name__ == "__main__":
    main()
