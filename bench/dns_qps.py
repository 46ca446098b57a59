"""Cluster DNS throughput: `podnet dns` against dnsmasq (Debian's), both serving the
same 10 000 names on loopback inside one namespace, measured with dnsperf.

It prints queries per second and average latency for both, and the ratio, for the
cluster zone (podnet) vs an addn-hosts zone (dnsmasq) of the same names.
Run as root: .venv/bin/python bench/dns_qps.py  (needs dnsperf and dnsmasq)
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from podnet.kernel import netns
from podnet.model.meta import ObjectMeta
from podnet.model.service import Service, ServicePort
from podnet.store import resources
from podnet.store.sqlite import SqliteStore

NAMESPACE = "pn-bench.dns"
NAMES = 10000


def dnsperf(port: int, queries: Path, seconds: int = 10) -> tuple[float, float]:
    out = netns.run(NAMESPACE, ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(queries), "-l", str(seconds),
                                "-c", "4", "-Q", "200000"], timeout=seconds + 30).stdout
    qps = float(re.search(r"Queries per second:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    latency = float(re.search(r"Average Latency \(s\):\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return qps, latency * 1000


def wait_port(port: int) -> None:
    deadline = time.monotonic() + 10
    while netns.run(NAMESPACE, ["sh", "-c", f"nc -z 127.0.0.1 {port}"], check=False).returncode != 0:
        if time.monotonic() > deadline:
            raise SystemExit(f"nothing listens on {port}")
        time.sleep(0.05)


def main() -> None:
    for tool in ("dnsperf", "dnsmasq"):
        if not shutil.which(tool):
            raise SystemExit("install dnsperf and dnsmasq first (apt-get install dnsperf dnsmasq-base)")
    netns.create(NAMESPACE)
    processes = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            store = SqliteStore(work / "store.db")
            hosts, queries = [], []
            for i in range(NAMES):
                ip = f"10.{96 + i // 65536}.{i // 256 % 256}.{i % 256}"
                resources.put(store, Service(ObjectMeta(f"svc{i}", "bench"), "ClusterIP", {}, (ServicePort(80, 80),), ip))
                name = f"svc{i}.bench.svc.cluster.local"
                hosts.append(f"{ip} {name}")
                queries.append(f"{name} A")
            store.close()
            (work / "hosts").write_text("\n".join(hosts) + "\n")
            (work / "queries").write_text("\n".join(queries) + "\n")
            processes.append(subprocess.Popen(netns.exec_argv(NAMESPACE, [
                sys.executable, "-m", "podnet", "dns", "--store", str(work / "store.db"), "--listen", "127.0.0.1",
                "--port", "5300"]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            processes.append(subprocess.Popen(netns.exec_argv(NAMESPACE, [
                "dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", f"--addn-hosts={work / 'hosts'}",
                "--listen-address=127.0.0.1", "--bind-interfaces", "--port=5301", "--cache-size=10000",
                "--user=root"]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_port(5300)
            wait_port(5301)
            time.sleep(1)
            ours = dnsperf(5300, work / "queries")
            theirs = dnsperf(5301, work / "queries")
        print(f"{NAMES} names, dnsperf on loopback, 10 s each")
        print(f"{'':<28}{'dnsmasq':>12}{'podnet':>12}{'ratio':>8}")
        print(f"{'queries per second':<28}{theirs[0]:>12.0f}{ours[0]:>12.0f}{ours[0] / theirs[0]:>8.2f}")
        print(f"{'average latency (ms)':<28}{theirs[1]:>12.3f}{ours[1]:>12.3f}{ours[1] / theirs[1]:>8.2f}")
    finally:
        for process in processes:
            process.kill()
            process.wait()
        netns.kill_processes_in([NAMESPACE])
        netns.delete(NAMESPACE)


if __name__ == "__main__":
    main()
