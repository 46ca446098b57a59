"""Pod-to-pod TCP throughput across nodes with iperf3: host-gw, vxlan, and the
floor both are measured against, two namespaces joined by a plain veth pair.

Each backend runs as a two-node lab with one pod per node; iperf3's server runs
in one pod and its client in the other, for the same seconds, in one run.
Run as root: .venv/bin/python bench/pod_throughput.py [--seconds 5]  (needs iperf3)
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from podnet.kernel import netns
from podnet.kernel.netlink import open_namespace

VETH_A, VETH_B = "pn-bench.veth-a", "pn-bench.veth-b"


def podnet(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "podnet", *args], check=True, capture_output=True, text=True).stdout


def iperf(client: str, server: str, address: str, seconds: int) -> float:
    """Gbit/s received, iperf3's own figure."""
    listener = subprocess.Popen(netns.exec_argv(server, ["iperf3", "-s", "-1"]), stdout=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        out = netns.run(client, ["iperf3", "-c", address, "-t", str(seconds), "-J"], timeout=seconds + 30).stdout
        return float(json.loads(out)["end"]["sum_received"]["bits_per_second"]) / 1e9
    finally:
        listener.wait(timeout=10)


def backend_lab(directory: Path, backend: str, seconds: int) -> float:
    name = f"bench-{backend.replace('-', '')}"
    pods = [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod},
             "spec": {"nodeName": node, "containers": [{"name": "echo", "image": "podnet/echo"}]}}
            for pod, node in (("a", "n1"), ("b", "n2"))]
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"apiVersion": "podnet.dev/v1alpha1", "kind": "Cluster", "metadata": {"name": name},
                                    "networking": {"backend": backend}, "nodes": [{"name": "n1"}, {"name": "n2"}],
                                    "workloads": pods}))
    podnet("lab", "up", str(path))
    try:
        listing = json.loads(podnet("get", "pods", "--lab", name, "-o", "json"))
        target = next(p["status"]["podIP"] for p in listing["items"] if p["metadata"]["name"] == "b")
        return iperf(f"pn-{name}.default.a", f"pn-{name}.default.b", target, seconds)
    finally:
        podnet("lab", "down", name)


def plain_veth(seconds: int) -> float:
    for name in (VETH_A, VETH_B):
        netns.create(name)
    try:
        with open_namespace(VETH_A) as a:
            a.ensure_veth("eth0", "eth0", VETH_B)
            a.ensure_address("eth0", "10.239.0.1/24")
            a.set_up("eth0")
        with open_namespace(VETH_B) as b:
            b.ensure_address("eth0", "10.239.0.2/24")
            b.set_up("eth0")
        return iperf(VETH_A, VETH_B, "10.239.0.2", seconds)
    finally:
        netns.kill_processes_in([VETH_A, VETH_B])
        for name in (VETH_A, VETH_B):
            netns.delete(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    seconds = parser.parse_args().seconds
    if not shutil.which("iperf3"):
        raise SystemExit("install iperf3 first (apt-get install iperf3)")
    with tempfile.TemporaryDirectory() as tmp:
        figures = {"veth pair": plain_veth(seconds)}
        for backend in ("host-gw", "vxlan"):
            figures[backend] = backend_lab(Path(tmp), backend, seconds)
    floor = figures["veth pair"]
    print(f"pod-to-pod TCP across nodes, iperf3 {seconds} s; ratio = setup / plain veth pair")
    print(f"{'':<12}{'Gbit/s':>10}{'ratio':>8}")
    for label, gbits in figures.items():
        print(f"{label:<12}{gbits:>10.2f}{gbits / floor:>8.2f}")
    print(f"vxlan / host-gw: {figures['vxlan'] / figures['host-gw']:.2f}")


if __name__ == "__main__":
    main()
