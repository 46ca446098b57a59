"""The userspace proxy against haproxy (Debian's), forwarding the same traffic
between the same namespaces: throughput (iperf3 through the proxy) and
connections per second (short request/response connections, five interleaved
rounds each, medians).

client ns --(10.238.0.0/24)-- proxy ns --(10.237.0.0/24)-- backend ns
Run as root: .venv/bin/python bench/userspace_proxy.py  (needs haproxy and iperf3)
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from podnet.kernel import netns
from podnet.kernel.netlink import open_namespace
from podnet.kernel.route import Route

CLIENT, PROXY, BACKEND = "pn-bench.up-client", "pn-bench.up-proxy", "pn-bench.up-backend"
PROXY_IP, BACKEND_IP = "10.238.0.2", "10.237.0.2"
IPERF, SHORT = 5201, 8080
OURS, HAPROXY = 9000, 9100  # + IPERF or SHORT offsets below

OUR_PROXY = """
import asyncio, sys
from podnet.proxy.endpoints import Endpoint
from podnet.proxy.userspace import PortProxy, PortSpec
async def main():
    for port, target in ((%(ours_iperf)d, %(iperf)d), (%(ours_short)d, %(short)d)):
        spec = PortSpec(f"bench:{port}", "%(proxy_ip)s", port, "tcp", "rr",
                        (Endpoint("%(backend_ip)s", target, "backend", None, True),))
        await PortProxy(spec).start()
    print("ready", flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""

SHORT_SERVER = """
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("%(backend_ip)s", %(short)d)); s.listen(4096)
while True:
    c, _ = s.accept(); c.recv(64); c.sendall(b"ok"); c.close()
"""


def topology() -> None:
    for name in (CLIENT, PROXY, BACKEND):
        netns.create(name)
    with open_namespace(CLIENT) as client:
        client.ensure_veth("eth0", "front", PROXY)
        client.ensure_address("eth0", "10.238.0.1/24")
        client.set_up("eth0")
    with open_namespace(PROXY) as proxy:
        proxy.ensure_address("front", f"{PROXY_IP}/24")
        proxy.set_up("front")
        proxy.ensure_veth("back", "eth0", BACKEND)
        proxy.ensure_address("back", "10.237.0.1/24")
        proxy.set_up("back")
    with open_namespace(BACKEND) as backend:
        backend.ensure_address("eth0", f"{BACKEND_IP}/24")
        backend.set_up("eth0")
        backend.add_route(Route("default", via="10.237.0.1"))


def throughput(port: int) -> float:
    out = netns.run(CLIENT, ["iperf3", "-c", PROXY_IP, "-p", str(port), "-t", "5", "-J"], timeout=60).stdout
    result = json.loads(out)
    if "error" in result:
        raise SystemExit(f"iperf3 through port {port}: {result['error']}")
    return result["end"]["sum_received"]["bits_per_second"] / 1e9


ROUNDS, ROUND_SECONDS = 5, 3.0  # interleaved, medians: one 5 s run each swung the ratio 0.85-1.04


def connections_per_second(port: int, seconds: float = ROUND_SECONDS, workers: int = 8) -> float:
    def work() -> int:
        count = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with socket.create_connection((PROXY_IP, port), timeout=5) as sock:
                sock.sendall(b"hi")
                sock.recv(16)
            count += 1
        return count

    def run() -> int:
        results: list[int] = []
        threads = [threading.Thread(target=lambda: results.append(work())) for _ in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return sum(results)

    return netns.run_in(CLIENT, run) / seconds


def cpu_seconds(pid: int) -> float:
    """User and system time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def connections_and_cost(pid: int, port: int) -> tuple[float, float]:
    """Connections per second, and the proxy's own CPU time per connection (µs)."""
    before = cpu_seconds(pid)
    rate = connections_per_second(port)
    return rate, (cpu_seconds(pid) - before) / (rate * ROUND_SECONDS) * 1e6


def interleaved(theirs: tuple[int, int], ours: tuple[int, int]) -> tuple[tuple[float, float], tuple[float, float]]:
    """Medians of ROUNDS alternating runs against each (pid, port): rate and cost."""
    runs: dict[tuple[int, int], list[tuple[float, float]]] = {theirs: [], ours: []}
    for _ in range(ROUNDS):
        for side, measures in runs.items():
            measures.append(connections_and_cost(*side))
    return tuple(  # type: ignore[return-value]
        (statistics.median(r for r, _ in runs[side]), statistics.median(c for _, c in runs[side]))
        for side in (theirs, ours))


def main() -> None:
    for tool in ("haproxy", "iperf3"):
        if not shutil.which(tool):
            raise SystemExit(f"install {tool} first (apt-get install haproxy iperf3)")
    topology()
    processes = []
    try:
        values = {"proxy_ip": PROXY_IP, "backend_ip": BACKEND_IP, "iperf": IPERF, "short": SHORT,
                  "ours_iperf": OURS + 1, "ours_short": OURS + 2}
        processes.append(subprocess.Popen(netns.exec_argv(BACKEND, ["iperf3", "-s", "-p", str(IPERF)]),
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        processes.append(subprocess.Popen(netns.exec_argv(BACKEND, [sys.executable, "-c", SHORT_SERVER % values])))
        ours = subprocess.Popen(netns.exec_argv(PROXY, [sys.executable, "-c", OUR_PROXY % values]),
                                stdout=subprocess.PIPE, text=True)
        processes.append(ours)
        assert ours.stdout and ours.stdout.readline().strip() == "ready"
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "haproxy.cfg"
            config.write_text(f"""global
    maxconn 4096
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
listen iperf
    bind {PROXY_IP}:{HAPROXY + 1}
    server backend {BACKEND_IP}:{IPERF}
listen short
    bind {PROXY_IP}:{HAPROXY + 2}
    server backend {BACKEND_IP}:{SHORT}
""")
            haproxy = subprocess.Popen(netns.exec_argv(PROXY, ["haproxy", "-f", str(config), "-db"]),
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # ip execs: same pid
            processes.append(haproxy)
            time.sleep(1)
            (theirs_rate, theirs_cost), (ours_rate, ours_cost) = interleaved((haproxy.pid, HAPROXY + 2),
                                                                             (ours.pid, OURS + 2))
            rows = [
                ("throughput (Gbit/s, higher is better)", throughput(HAPROXY + 1), throughput(OURS + 1)),
                ("connections per second (higher is better)", theirs_rate, ours_rate),
                ("proxy CPU per connection (us, lower is better)", theirs_cost, ours_cost),
            ]
        print(f"{'':<44}{'haproxy':>10}{'podnet':>10}{'ratio':>8}")
        for label, theirs, ours_value in rows:
            print(f"{label:<44}{theirs:>10.2f}{ours_value:>10.2f}{ours_value / theirs:>8.2f}")
    finally:
        for process in processes:
            process.kill()
            process.wait()
        netns.kill_processes_in([CLIENT, PROXY, BACKEND])
        for name in (CLIENT, PROXY, BACKEND):
            netns.delete(name)


if __name__ == "__main__":
    main()
