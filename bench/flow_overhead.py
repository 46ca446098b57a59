"""What recording flows costs, and whether it loses any: observing off vs on.

  throughput    iperf3 between two pods on one node's bridge (3 s, medians of 5
                interleaved rounds)
  requests      wrk against haproxy in the server pod (keep-alive, 2 threads,
                50 connections, 3 s, medians of 5 interleaved rounds)
  new conns     ab against the same haproxy without keep-alive: every request a
                new connection, as fast as ab goes; once the recorder has read
                all the kernel logged, the flows it recorded, merged and counted
                as lost are set beside the connections the client opened
"Off" is the node as it is without a flow recorder; "on" adds the flow table and
the recorder's thread, reading the node's NFLOG group and conntrack events in
this process, as the node agent does. The node runs podnet's (empty) service
table throughout, so conntrack is on either way, as in a cluster.

node (bridge cni0, 10.240.0.1/16) -- client pod (10.240.0.2), server pod (10.240.0.3)
Run as root: .venv/bin/python bench/flow_overhead.py  (needs iperf3, wrk, apache2-utils and haproxy)
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from podnet.store.snapshot import Snapshot
from podnet.kernel import netns
from podnet.kernel.netlink import open_namespace
from podnet.kernel.nftables import Transaction
from podnet.kernel.node import NamespaceKernel
from podnet.observe.recorder import TABLE, FlowRecorder
from podnet.proxy.ruleset import build

NODE, CLIENT, SERVER = "pn-bench.flows-node", "pn-bench.flows-client", "pn-bench.flows-server"
CLIENT_IP, SERVER_IP = "10.240.0.2", "10.240.0.3"
HAPROXY = """global
    maxconn 8000
defaults
    mode http
    timeout client 10s
    timeout server 10s
    timeout connect 5s
frontend answer
    bind 0.0.0.0:80
    http-request return status 200 content-type text/plain string ok
"""


def setup(directory: Path) -> list[subprocess.Popen]:  # type: ignore[type-arg]
    for name in (NODE, CLIENT, SERVER):
        netns.create(name)
    with open_namespace(NODE) as node:
        node.ensure_bridge("cni0")
        node.ensure_address("cni0", "10.240.0.1/16")
        node.set_up("cni0")
        for pod, ip, host in ((CLIENT, CLIENT_IP, "veth-c"), (SERVER, SERVER_IP, "veth-s")):
            node.ensure_veth(host, "eth0", pod)
            node.set_master(host, "cni0")
            node.set_up(host)
            with open_namespace(pod) as inside:
                inside.ensure_address("eth0", f"{ip}/16")
                inside.set_up("eth0")
                inside.set_up("lo")
    config = directory / "haproxy.cfg"
    config.write_text(HAPROXY)
    processes = [subprocess.Popen(netns.exec_argv(SERVER, ["haproxy", "-f", str(config)]), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL),
                 subprocess.Popen(netns.exec_argv(SERVER, ["iperf3", "-s"]), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)]
    time.sleep(0.5)
    return processes


def throughput() -> float:
    out = netns.run(CLIENT, ["iperf3", "-c", SERVER_IP, "-t", "3", "-J"], timeout=60).stdout
    return json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e9


def requests() -> float:
    out = netns.run(CLIENT, ["wrk", "-t2", "-c50", "-d3s", f"http://{SERVER_IP}/"], timeout=60).stdout
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]


def new_connections(count: int) -> tuple[int, int, float]:
    """(requests ab completed, connections the client's kernel opened, per second):
    ab without keep-alive opens one per request, and one more now and then when
    a reused port meets the server's TIME_WAIT; the kernel's TcpActiveOpens counts
    them all."""
    opened = _active_opens()
    out = netns.run(CLIENT, ["ab", "-q", "-n", str(count), "-c", "50", f"http://{SERVER_IP}/"], timeout=300).stdout
    complete = int(re.search(r"Complete requests:\s+(\d+)", out).group(1))  # type: ignore[union-attr]
    failed = int(re.search(r"Failed requests:\s+(\d+)", out).group(1))  # type: ignore[union-attr]
    rate = float(re.search(r"Requests per second:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return complete - failed, _active_opens() - opened, rate


def _active_opens() -> int:
    """The client namespace's count of connections it opened (Tcp: ActiveOpens)."""
    lines = [line.split() for line in netns.run(CLIENT, ["cat", "/proc/net/snmp"]).stdout.splitlines()
             if line.startswith("Tcp:")]
    return int(lines[1][lines[0].index("ActiveOpens")])


class Observing:
    """The flow recorder on the bench's node, as the agent runs it."""

    def __init__(self) -> None:
        self.kernel = NamespaceKernel(NODE)
        self.recorder: FlowRecorder | None = None

    def on(self) -> FlowRecorder:
        self.recorder = FlowRecorder(self.kernel, "node", NODE)
        self.recorder.sync(Snapshot(1, [], [], [], []))
        time.sleep(0.2)
        return self.recorder

    def off(self) -> None:
        if self.recorder is not None:
            self.recorder.stop()
            self.recorder = None
        self.kernel.nft.run(Transaction(TABLE).destroy(TABLE))


def _settled(count, quiet: float = 2.0, limit: float = 60.0) -> tuple[int, float]:  # type: ignore[no-untyped-def]
    """The count once it stopped moving for `quiet` seconds (the recorder has read
    the kernel's backlog), and how long that took after the load ended."""
    started = time.monotonic()
    last, since = count(), time.monotonic()
    while time.monotonic() - since < quiet and time.monotonic() - started < limit:
        time.sleep(0.2)
        if (now := count()) != last:
            last, since = now, time.monotonic()
    return last, since - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=100_000, help="new connections for the count")
    options = parser.parse_args()
    for tool, package in (("iperf3", "iperf3"), ("wrk", "wrk"), ("ab", "apache2-utils"), ("haproxy", "haproxy")):
        if not shutil.which(tool):
            raise SystemExit(f"install {tool} first (apt-get install {package})")
    with tempfile.TemporaryDirectory() as directory:
        processes = setup(Path(directory))
        observing = Observing()
        try:
            NamespaceKernel(NODE).nft.run(build([], "10.240.0.0/16").transaction())  # conntrack, as on any node
            gbits: dict[bool, list[float]] = {False: [], True: []}
            rps: dict[bool, list[float]] = {False: [], True: []}
            for _ in range(options.rounds):  # one run moves by more than the difference: interleave, take medians
                for on in (False, True):
                    observing.on() if on else observing.off()
                    gbits[on].append(throughput())
                    rps[on].append(requests())
            observing.off()
            recorder = observing.on()
            before = recorder.flows.recorded + recorder.flows.lost + recorder.flows.merged
            requested, made, rate = new_connections(options.connections)
            flows = recorder.flows
            counted, caught_up = _settled(lambda: flows.recorded + flows.lost + flows.merged - before)
            observing.off()
        finally:
            observing.off()
            for process in processes:
                process.kill()
                process.wait()
            netns.kill_processes_in([NODE, CLIENT, SERVER])
            for name in (NODE, CLIENT, SERVER):
                netns.delete(name)
    off_g, on_g = statistics.median(gbits[False]), statistics.median(gbits[True])
    off_r, on_r = statistics.median(rps[False]), statistics.median(rps[True])
    print(f"flow recording on one node, medians of {options.rounds} interleaved rounds")
    print(f"{'':<44}{'off':>12}{'on':>12}{'ratio':>8}")
    print(f"{'throughput (iperf3, Gbit/s)':<44}{off_g:>12.2f}{on_g:>12.2f}{on_g / off_g:>8.2f}")
    print(f"{'requests/s (wrk, keep-alive)':<44}{off_r:>12.0f}{on_r:>12.0f}{on_r / off_r:>8.2f}")
    print(f"new connections (ab, no keep-alive): {requested} requests at {rate:.0f}/s, {made} connections opened "
          f"(the client's TcpActiveOpens); recorded {flows.recorded}, "
          f"merged {flows.merged}, lost {flows.lost} (counted by the kernel's numbering): "
          f"{counted} accounted for, {'equal' if counted == made else f'{counted - made:+d} off'} "
          f"(the recorder caught up {caught_up:.1f} s after the load ended)")


if __name__ == "__main__":
    main()
