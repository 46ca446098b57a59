"""DHCP IPAM: ADD and DEL latency, and leases left behind, podnet's (podnet-bridge
with podnet-dhcp and `podnet cni dhcp-daemon`) against the reference's (bridge
with dhcp and `dhcp daemon`, containernetworking-plugins).

Each side has a host namespace of its own with a bridge, dnsmasq on it (--no-ping,
so the server's own 3 s address check is out of both figures) and its daemon.
Every pod has a namespace of its own; the plugins are exec'd with nsenter as a
runtime does, podnet's as on a node: the C relay (built by ./run) handing each
call to the agent (`podnet cni serve` in the host namespace). After the DELs, the
leases dnsmasq still holds are counted: releases that never arrived.
Run as root: .venv/bin/python bench/dhcp_add.py [--pods 30]
Needs: apt-get install containernetworking-plugins dnsmasq-base
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from podnet.cni.install import c_relay_built, install
from podnet.kernel import netns

REFERENCE = Path("/usr/lib/cni")
BRIDGE = "dhcpbench0"


def start(host: str, argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(netns.exec_argv(host, argv), stdout=open(log, "wb"), stderr=subprocess.STDOUT)


def side(name: str, host: str, work: Path) -> list[subprocess.Popen[bytes]]:
    netns.create(host)
    for command in (["ip", "link", "add", BRIDGE, "type", "bridge"], ["ip", "addr", "add", "10.125.0.1/16", "dev", BRIDGE],
                    ["ip", "link", "set", BRIDGE, "up"]):
        netns.run(host, command)
    socket = work / "dhcp.sock"
    daemon = ([str(REFERENCE / "dhcp"), "daemon", "-socketpath", str(socket)] if name == "ref" else
              [sys.executable, "-m", "podnet", "cni", "dhcp-daemon", "--socket", str(socket), "--state", str(work / "held")])
    running = [start(host, [sys.executable, "-m", "podnet", "cni", "serve"], work / "agent.log")] if name == "pn" else []
    running += [start(host, ["dnsmasq", "--keep-in-foreground", "--port=0", f"--interface={BRIDGE}", "--bind-interfaces",
                            "--no-ping", "--log-dhcp", "--log-facility=-", "--dhcp-range=10.125.0.10,10.125.255.200,255.255.0.0,1h",
                            "--dhcp-option=option:router,10.125.0.1", f"--dhcp-leasefile={work / 'leases'}"],
                     work / "dnsmasq.log"),
               start(host, daemon, work / "daemon.log")]
    deadline = time.monotonic() + 10
    while not socket.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"the {name} DHCP daemon did not start: see {work / 'daemon.log'}")
        time.sleep(0.05)
    return running


def call(host: str, plugin_dir: Path, plugin: str, command: str, config: dict, container: str) -> float:  # type: ignore[type-arg]
    env = {**os.environ, "CNI_COMMAND": command, "CNI_CONTAINERID": container.rsplit(".", 1)[1], "CNI_IFNAME": "eth0",
           "CNI_PATH": str(plugin_dir), "CNI_NETNS": f"/run/netns/{container}"}
    started = time.perf_counter()
    proc = subprocess.run(netns.enter_argv(str(netns.path(host)), [str(plugin_dir / plugin)]),
                          input=json.dumps(config).encode(), capture_output=True, env=env, timeout=120)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{plugin} {command} failed: {proc.stdout.decode()} {proc.stderr.decode()}")
    return elapsed * 1000


def run(name: str, plugin_dir: Path, bridge: str, ipam: str, pods: int, work: Path) -> tuple[float, float, int]:
    host = f"pn-bench.dhcp-{name}"
    running = side(name, host, work)
    config = {"cniVersion": "1.0.0", "name": "bench", "type": bridge, "bridge": BRIDGE, "isGateway": True,
              "ipam": {"type": ipam, "daemonSocketPath": str(work / "dhcp.sock")}}
    containers = [f"pn-bench.dhcp-{name}.p{i}" for i in range(pods)]
    try:
        for container in containers:
            netns.create(container)
        adds = [call(host, plugin_dir, bridge, "ADD", config, c) for c in containers]
        dels = [call(host, plugin_dir, bridge, "DEL", config, c) for c in containers]
        left = settled(work / "leases")
    finally:
        for process in running:
            process.terminate()
            process.wait(timeout=10)
        for container in containers:
            netns.delete(container)
        netns.kill_processes_in([host])
        netns.delete(host)
    return statistics.median(adds), statistics.median(dels), left


def settled(leases: Path, wait: float = 5.0) -> int:
    """The leases dnsmasq still lists, once its file has stopped changing."""
    deadline, last = time.monotonic() + wait, -1
    while True:
        count = len(leases.read_text().splitlines()) if leases.exists() else 0
        if count == last or time.monotonic() > deadline:
            return count
        last = count
        time.sleep(1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=30)
    args = parser.parse_args()
    for need in (REFERENCE / "dhcp", Path("/usr/sbin/dnsmasq")):
        if not need.exists():
            raise SystemExit(f"{need} is missing: apt-get install containernetworking-plugins dnsmasq-base")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ours = work / "bin"
        install(ours, "c" if c_relay_built() else "python")
        (work / "ref").mkdir()
        (work / "pn").mkdir()
        reference = run("ref", REFERENCE, "bridge", "dhcp", args.pods, work / "ref")
        podnet = run("pn", ours, "podnet-bridge", "podnet-dhcp", args.pods, work / "pn")
    print(f"{args.pods} pods, each ADD then DEL, against dnsmasq on the bridge (medians)")
    print(f"{'':24}{'reference':>12}{'podnet':>12}{'ratio':>8}")
    for label, index, unit in (("ADD", 0, "ms"), ("DEL", 1, "ms")):
        print(f"{label + ' (' + unit + ')':24}{reference[index]:12.1f}{podnet[index]:12.1f}"
              f"{podnet[index] / reference[index]:8.2f}x")
    print(f"{'leases left after DEL':24}{reference[2]:12d}{podnet[2]:12d}")


if __name__ == "__main__":
    main()
