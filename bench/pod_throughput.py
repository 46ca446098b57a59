"""Pod-to-pod TCP throughput across nodes with iperf3, over IPv4 and IPv6:
host-gw, vxlan, and the floor both are measured against, two namespaces joined
by a plain veth pair.

Each backend runs as a two-node dual-stack lab with one pod per node; iperf3's
server runs in one pod and its client in the other, for the same seconds, the
families taking turns (--rounds each), and each figure is the median of its
rounds. The goal: IPv6 at least 0.95x IPv4 on each backend.
Run as root: .venv/bin/python bench/pod_throughput.py [--seconds 5] [--rounds 3]  (needs iperf3)
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
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


FAMILIES = ("IPv4", "IPv6")


def by_family(client: str, server: str, addresses: dict[str, str], seconds: int, rounds: int) -> dict[str, float]:
    """The families take turns, so a noisy moment of the machine falls on both."""
    found: dict[str, list[float]] = {family: [] for family in FAMILIES}
    for _ in range(rounds):
        for family in FAMILIES:
            found[family].append(iperf(client, server, addresses[family], seconds))
    return {family: statistics.median(figures) for family, figures in found.items()}


def backend_lab(directory: Path, backend: str, seconds: int, rounds: int) -> dict[str, float]:
    name = f"bench-{backend.replace('-', '')}"
    pods = [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod},
             "spec": {"nodeName": node, "containers": [{"name": "echo", "image": "podnet/echo"}]}}
            for pod, node in (("a", "n1"), ("b", "n2"))]
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"apiVersion": "podnet.dev/v1alpha1", "kind": "Cluster", "metadata": {"name": name},
                                    "networking": {"backend": backend, "ipFamilies": list(FAMILIES)},
                                    "nodes": [{"name": "n1"}, {"name": "n2"}],
                                    "workloads": pods}))
    podnet("lab", "up", str(path))
    try:
        listing = json.loads(podnet("get", "pods", "--lab", name, "-o", "json"))
        ips = next(p["status"]["podIPs"] for p in listing["items"] if p["metadata"]["name"] == "b")
        addresses = {"IPv6" if ":" in e["ip"] else "IPv4": e["ip"] for e in ips}
        return by_family(f"pn-{name}.default.a", f"pn-{name}.default.b", addresses, seconds, rounds)
    finally:
        podnet("lab", "down", name)


def plain_veth(seconds: int, rounds: int) -> dict[str, float]:
    for name in (VETH_A, VETH_B):
        netns.create(name)
    try:
        with open_namespace(VETH_A) as a:
            a.ensure_veth("eth0", "eth0", VETH_B)
            a.ensure_address("eth0", "10.239.0.1/24")
            a.ensure_address("eth0", "fd00:239::1/64")
            a.set_up("eth0")
        with open_namespace(VETH_B) as b:
            b.ensure_address("eth0", "10.239.0.2/24")
            b.ensure_address("eth0", "fd00:239::2/64")
            b.set_up("eth0")
        return by_family(VETH_A, VETH_B, {"IPv4": "10.239.0.2", "IPv6": "fd00:239::2"}, seconds, rounds)
    finally:
        netns.kill_processes_in([VETH_A, VETH_B])
        for name in (VETH_A, VETH_B):
            netns.delete(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    if not shutil.which("iperf3"):
        raise SystemExit("install iperf3 first (apt-get install iperf3)")
    with tempfile.TemporaryDirectory() as tmp:
        figures = {"veth pair": plain_veth(options.seconds, options.rounds)}
        for backend in ("host-gw", "vxlan"):
            figures[backend] = backend_lab(Path(tmp), backend, options.seconds, options.rounds)
    floor = figures["veth pair"]
    print(f"pod-to-pod TCP across nodes, iperf3 {options.seconds} s, median of {options.rounds} rounds per family")
    print(f"{'':<12}{'IPv4 Gbit/s':>12}{'/veth':>7}{'IPv6 Gbit/s':>13}{'/veth':>7}{'IPv6/IPv4':>11}")
    for label, gbits in figures.items():
        v4, v6 = gbits["IPv4"], gbits["IPv6"]
        print(f"{label:<12}{v4:>12.2f}{v4 / floor['IPv4']:>7.2f}{v6:>13.2f}{v6 / floor['IPv6']:>7.2f}{v6 / v4:>11.2f}")
    print(f"vxlan / host-gw: IPv4 {figures['vxlan']['IPv4'] / figures['host-gw']['IPv4']:.2f}, "
          f"IPv6 {figures['vxlan']['IPv6'] / figures['host-gw']['IPv6']:.2f}")


if __name__ == "__main__":
    main()
