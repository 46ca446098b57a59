"""Cluster DNS throughput: `podnet dns` against dnsmasq (Debian's), both serving the
same 10 000 names on loopback inside one namespace, measured with dnsperf.

Two workloads: the cluster zone (podnet's from its store, dnsmasq's from an
addn-hosts file of the same names), and 10 000 names outside it that both forward
to the same upstream (a third server): the first pass over them, where each is a
cache miss (five passes over fresh names, interleaved), and after them,
answers from the caches. podnet runs once as one
process and once with --workers 2. It prints queries per second and average
latency, and the ratios.
Run as root: .venv/bin/python bench/dns_qps.py  (needs dnsperf and dnsmasq)
With --ipv6, every server listens on ::1 and is asked there (podnet's IPv6
sockets and its fast path's IPv6 upstream socket), with the same names.
"""

from __future__ import annotations

import re
import shutil
import statistics
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
ROUNDS, ROUND_SECONDS = 5, 4  # interleaved, medians: this machine's noise is larger than 10 %
LOOPBACK = "::1" if "--ipv6" in sys.argv[1:] else "127.0.0.1"
UPSTREAM = f"[{LOOPBACK}]:5302" if ":" in LOOPBACK else f"{LOOPBACK}:5302"
COLD_ROUNDS, COLD_NAMES = 5, 40000  # passes over names no server has seen: 10 000 took 0.3 s, too short to measure


def median_of(runs: tuple[tuple[float, float], ...]) -> tuple[float, float]:
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def dnsperf(port: int, queries: Path, seconds: int | None = None) -> tuple[float, float]:
    """Queries per second and average latency (ms): for `seconds`, or else one pass over the names."""
    length = ["-l", str(seconds)] if seconds else ["-n", "1"]
    out = netns.run(NAMESPACE, ["dnsperf", "-s", LOOPBACK, "-p", str(port), "-d", str(queries), *length,
                                "-c", "4", "-Q", "200000"], timeout=(seconds or 60) + 30).stdout
    qps = float(re.search(r"Queries per second:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    latency = float(re.search(r"Average Latency \(s\):\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return qps, latency * 1000


def wait_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 10
    while netns.run(NAMESPACE, ["sh", "-c", f"nc -z {LOOPBACK} {port}"], check=False).returncode != 0:
        if process.poll() is not None or time.monotonic() > deadline:
            said = log.read_text().strip().splitlines()[-1:] or ["nothing on stderr"]
            raise SystemExit(f"nothing listens on {port} (exit status {process.returncode}): {said[0]}")
        time.sleep(0.05)


def main() -> None:
    for tool in ("dnsperf", "dnsmasq"):
        if not shutil.which(tool):
            raise SystemExit("install dnsperf and dnsmasq first (apt-get install dnsperf dnsmasq-base)")
    netns.create(NAMESPACE)
    netns.run(NAMESPACE, ["ip", "link", "set", "lo", "up"])
    processes = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            store = SqliteStore(work / "store.db")
            hosts, queries, outside_hosts, outside = [], [], [], []
            for i in range(NAMES):
                ip = f"10.{96 + i // 65536}.{i // 256 % 256}.{i % 256}"
                resources.put(store, Service(ObjectMeta(f"svc{i}", "bench"), "ClusterIP", {}, (ServicePort(80, 80),), (ip,)))
                name = f"svc{i}.bench.svc.cluster.local"
                hosts.append(f"{ip} {name}")
                queries.append(f"{name} A")
                outside.append(f"host{i}.example.org A")
            for i in range(COLD_NAMES * COLD_ROUNDS):
                outside_hosts.append(f"203.{i // 65536}.{i // 256 % 256}.{i % 256} host{i}.example.org")
            store.close()
            (work / "hosts").write_text("\n".join(hosts) + "\n")
            (work / "queries").write_text("\n".join(queries) + "\n")
            (work / "outside-hosts").write_text("\n".join(outside_hosts) + "\n")
            (work / "outside").write_text("\n".join(outside) + "\n")
            for r in range(COLD_ROUNDS):  # the first round is the names the cached runs ask again
                (work / f"cold{r}").write_text("".join(f"host{i}.example.org A\n"
                                                       for i in range(r * COLD_NAMES, (r + 1) * COLD_NAMES)))

            def start(port: int, argv: list[str]) -> None:
                with (work / f"{port}.log").open("wb") as log:
                    process = subprocess.Popen(netns.exec_argv(NAMESPACE, argv), stdout=subprocess.DEVNULL, stderr=log)
                processes.append(process)
                wait_port(port, process, work / f"{port}.log")

            def podnet(port: int, workers: int) -> None:
                start(port, [sys.executable, "-m", "podnet", "dns", "--store", str(work / "store.db"), "--listen",
                             LOOPBACK, "--port", str(port), "--forward", UPSTREAM, "--workers", str(workers)])

            def dnsmasq(port: int, *options: str) -> None:
                start(port, ["dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--pid-file=",
                             f"--listen-address={LOOPBACK}", "--bind-interfaces", f"--port={port}", "--user=root", *options])

            dnsmasq(5302, f"--addn-hosts={work / 'outside-hosts'}", "--local-ttl=3600")  # the upstream
            dnsmasq(5301, f"--addn-hosts={work / 'hosts'}", f"--cache-size={COLD_NAMES * COLD_ROUNDS + NAMES}", f"--server={LOOPBACK}#5302")
            podnet(5300, 1)
            podnet(5303, 2)
            time.sleep(1)
            upstream = dnsperf(5302, work / "outside", ROUND_SECONDS)  # not the limit of what forwards to it
            rows = []
            cold = [[dnsperf(port, work / f"cold{r}") for port in (5301, 5300, 5303)] for r in range(COLD_ROUNDS)]
            rows.append(("forwarded, first asked", *(median_of(runs) for runs in zip(*cold))))
            for label, file in (("cluster zone", "queries"), ("forwarded, from cache", "outside")):
                for port in (5301, 5300, 5303):  # one pass: the caches fill
                    dnsperf(port, work / file)
                theirs, ours, ours2 = (median_of(runs) for runs in zip(*(
                    [dnsperf(port, work / file, ROUND_SECONDS) for port in (5301, 5300, 5303)] for _ in range(ROUNDS))))
                rows.append((label, theirs, ours, ours2))
        print(f"{NAMES} names, dnsperf on loopback ({LOOPBACK}); medians of {ROUNDS} interleaved {ROUND_SECONDS} s runs;"
              " ratio = podnet / dnsmasq")
        print(f"{'':<24}{'':<13}{'dnsmasq':>10}{'podnet':>10}{'ratio':>7}{'podnet x2':>11}{'ratio':>7}")
        for label, theirs, ours, ours2 in rows:
            print(f"{label:<24}{'queries/s':<13}{theirs[0]:>10.0f}{ours[0]:>10.0f}{ours[0] / theirs[0]:>7.2f}"
                  f"{ours2[0]:>11.0f}{ours2[0] / theirs[0]:>7.2f}")
            print(f"{'':<24}{'latency ms':<13}{theirs[1]:>10.3f}{ours[1]:>10.3f}{ours[1] / theirs[1]:>7.2f}"
                  f"{ours2[1]:>11.3f}{ours2[1] / theirs[1]:>7.2f}")
        print(f"forwarded, first asked: medians of {COLD_ROUNDS} interleaved passes over {COLD_NAMES} names no cache holds yet")
        print(f"the upstream alone (dnsmasq answering from a hosts file): {upstream[0]:.0f} queries/s, "
              f"{upstream[1]:.3f} ms")
        print("podnet x2: `podnet dns --workers 2` (two processes on one port); dnsmasq is one process")
    finally:
        for process in processes:
            process.kill()
            process.wait()
        netns.kill_processes_in([NAMESPACE])
        netns.delete(NAMESPACE)


if __name__ == "__main__":
    main()
