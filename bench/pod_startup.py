"""Pod startup latency: from a pod's creation until it is Ready, for N pods
over 3 nodes (Kubernetes' pod-startup SLI; its SLO is p99 <= 5 s, ours p99 < 2 s).

Two ways, as Kubernetes' scalability tests have two phases:
- burst: all N applied at once (`podnet apply`), each measured from the apply:
  mostly queueing, the time until the last one is Ready;
- paced: pods created at --rate per second (the density test's latency phase),
  each measured from its own creation: the latency the SLO is about.

The anchor is the same work with no control plane at all: sandboxes made
directly, each a namespace wired by the reference Go plugins (bridge and
host-local, exec'd as a runtime does), the pod's command started in it and
waited for, up to 24 at a time (3 nodes x the kubelet's 8 workers). The ratio
is what scheduling, the store and the kubelet cost on top.

Run as root: .venv/bin/python bench/pod_startup.py [--pods 100] [--rate 10] [--command echo|sleep]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from podnet.api.apply import apply
from podnet.kernel import netns
from podnet.lab import state
from podnet.model.manifest import parse_resource
from podnet.model.pod import Pod
from podnet.store import resources
from podnet.store.base import Store
from podnet.store.location import open_store

LAB = "bench-start"
REFERENCE = Path("/usr/lib/cni")
ANCHOR_HOST = "pn-bench-anchor"
WORKERS = 24
TARGET_P99 = 2.0
COMMANDS = {"echo": [], "sleep": ["sleep", "100000"]}  # the echo server is Ready once it listens


def podnet(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "podnet", *args], check=True, capture_output=True, text=True).stdout


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def pod(i: int, command: list[str]) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "c", **({"command": command} if command else {})}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p{i}", "labels": {"app": "start"}},
            "spec": {"containers": [container]}}


def ours(pods: int, rate: float, command: list[str], work: Path) -> tuple[list[float], list[float]]:
    """(burst, paced) latencies in seconds."""
    lab = {"apiVersion": "podnet.dev/v1alpha1", "kind": "Cluster", "metadata": {"name": LAB},
           "nodes": [{"name": f"n{i}"} for i in range(3)]}
    (work / "lab.yaml").write_text(yaml.safe_dump(lab))
    (work / "pods.yaml").write_text(yaml.safe_dump_all([pod(i, command) for i in range(pods)]))
    podnet("lab", "up", str(work / "lab.yaml"))
    record = next(r for r in state.running() if r.name == LAB)
    store = open_store(record.store)
    try:
        started = time.monotonic()
        subprocess.Popen([sys.executable, "-m", "podnet", "apply", "-f", str(work / "pods.yaml"), "--lab", LAB],
                         stdout=subprocess.DEVNULL)
        burst = _until_ready(store, {f"p{i}": started for i in range(pods)})
        podnet("delete", "pods", "--all", "--lab", LAB)
        while any(p.metadata.labels.get("app") == "start" for p in resources.list_kind(store, Pod)[0]):
            time.sleep(0.1)
        created: dict[str, float] = {}
        with ThreadPoolExecutor(1) as watcher:
            paced = watcher.submit(_until_ready, store, created, pods)
            paced_start = time.monotonic()
            for i in range(pods):
                time.sleep(max(0.0, paced_start + i / rate - time.monotonic()))
                created[f"p{i}"] = time.monotonic()
                apply(store, [parse_resource(pod(i, command))])
            return burst, paced.result()
    finally:
        store.close()
        podnet("lab", "down", LAB)


def _until_ready(store: Store, created: dict[str, float], pods: int | None = None) -> list[float]:
    """Each pod's time from its creation to Ready (created may still be filling)."""
    ready: dict[str, float] = {}
    expected = pods or len(created)
    deadline = time.monotonic() + 120
    while len(ready) < expected and time.monotonic() < deadline:
        now = time.monotonic()
        for found in resources.list_kind(store, Pod)[0]:
            name = found.metadata.name
            if found.ready and name in created and name not in ready:
                ready[name] = now - created[name]
        time.sleep(0.01)
    if len(ready) < expected:
        raise SystemExit(f"only {len(ready)} of {expected} pods were Ready after 120 s")
    return list(ready.values())


def anchor(pods: int, rate: float, command: list[str], work: Path) -> tuple[list[float], list[float]]:
    config = {"cniVersion": "1.0.0", "name": "anchor", "type": "bridge", "bridge": "anchor0", "isGateway": True,
              "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.199.0.0/22"}]], "dataDir": str(work / "ipam")}}
    argv = command or [sys.executable, "-m", "podnet.echo", "--port", "80"]
    netns.create(ANCHOR_HOST)
    made: list[str] = []

    def sandbox(name: str, since: float) -> float:
        netns.create(name)
        made.append(name)
        env = {**os.environ, "CNI_COMMAND": "ADD", "CNI_CONTAINERID": name.replace(".", "-"), "CNI_IFNAME": "eth0",
               "CNI_NETNS": str(netns.path(name)), "CNI_PATH": str(REFERENCE)}
        proc = subprocess.run(netns.enter_argv(str(netns.path(ANCHOR_HOST)), [str(REFERENCE / "bridge")]),
                              input=json.dumps(config).encode(), capture_output=True, env=env, check=True)
        address = json.loads(proc.stdout)["ips"][0]["address"].split("/")[0]
        netns.spawn(name, argv, log_path=work / "pods.log")
        while not command and not netns.run_in(ANCHOR_HOST, _accepts, address):
            time.sleep(0.01)
        return time.monotonic() - since

    try:
        with ThreadPoolExecutor(WORKERS) as pool:
            started = time.monotonic()
            burst = list(pool.map(lambda i: sandbox(f"{ANCHOR_HOST}.b{i}", started), range(pods)))
            futures = []
            paced_start = time.monotonic()
            for i in range(pods):
                time.sleep(max(0.0, paced_start + i / rate - time.monotonic()))
                futures.append(pool.submit(sandbox, f"{ANCHOR_HOST}.p{i}", time.monotonic()))
            return burst, [f.result() for f in futures]
    finally:
        netns.kill_processes_in(made, grace=0.5)
        for name in [*made, ANCHOR_HOST]:
            netns.delete(name)


def _accepts(address: str) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((address, 80)) == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=100)
    parser.add_argument("--rate", type=float, default=10.0, help="Pods created per second in the paced phase.")
    parser.add_argument("--command", choices=sorted(COMMANDS), default="echo",
                        help="What each pod runs: podnet's echo server (Ready once it listens) or sleep.")
    options = parser.parse_args()
    if not (REFERENCE / "bridge").exists():
        raise SystemExit("the reference plugins are missing: apt-get install containernetworking-plugins")
    command = COMMANDS[options.command]
    with tempfile.TemporaryDirectory() as directory:
        work = Path(directory)
        theirs = anchor(options.pods, options.rate, command, work)
        mine = ours(options.pods, options.rate, command, work)
    print(f"pod startup, {options.pods} pods ({options.command}) over 3 nodes, seconds until Ready")
    print(f"{'':44}{'p50':>8}{'p99':>8}{'max':>8}")
    for phase, index in (("burst, from the apply", 0), (f"paced at {options.rate:g}/s, from each creation", 1)):
        print(phase)
        for label, values in (("  podnet (control plane, kubelet, CNI)", mine[index]),
                              ("  anchor (bare sandboxes, reference plugins)", theirs[index])):
            print(f"{label:44}{statistics.median(values):8.2f}{percentile(values, 0.99):8.2f}{max(values):8.2f}")
        print(f"  ratio (p99 podnet / anchor): {percentile(mine[index], 0.99) / percentile(theirs[index], 0.99):.2f}")
    paced_p99 = percentile(mine[1], 0.99)
    verdict = "meets" if paced_p99 < TARGET_P99 else "misses"
    print(f"target p99 < {TARGET_P99:g} s, paced (Kubernetes' SLO: 5 s): {paced_p99:.2f} s, {verdict}")
    print(f"per pod in the burst (p50 / pods): podnet {statistics.median(mine[0]) / options.pods * 1000:.1f} ms, "
          f"anchor {statistics.median(theirs[0]) / options.pods * 1000:.1f} ms")


if __name__ == "__main__":
    main()
