"""kubectl exec and kubectl port-forward through podnet (kubectl -> the lab's API
server -> the node's kubelet endpoint -> the pod's namespace, TLS on both hops),
against the paths that skip both hops, in the same run.

Measured on a one-node cluster lab of its own (`execbench`, torn down at the end):
- exec round trip, p50 and p99 (the 99th of --runs: with 50, the slowest) after
  --warmups, every command once per round in turn: `kubectl exec POD -- true`
  over WebSocket (kubectl 1.32's default) and over SPDY
  (KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false; and Debian's kubectl 1.20 when the
  tests have unpacked it), beside `podnet exec POD -- true` (nsenter, no API
  hop: the anchor of the goal), `ip netns exec NS true` (the floor of entering
  a namespace) and `kubectl version --client` (kubectl's own start-up, part of
  every kubectl row). Goal: kubectl exec p50 within 100 ms of podnet exec's.
- port-forward throughput, Gbit/s each way: --mib MiB down, then up, through
  `kubectl port-forward pod/bulk :9000` (it listens on the machine's 127.0.0.1;
  nothing leaves the machine), over WebSocket and over SPDY; the anchor is the
  same transfer straight to the pod's IP from the node's network namespace.
  Around the timed transfers the CPU time of every process on the path is read
  from /proc/PID/stat (and the machine's from /proc/stat), and printed as a share
  of one core: a process near 1.00 is the hop that limits; a machine near all
  its cores busy (other people's tests count: the load before is printed) means
  CPU itself does. Each hop's Gbit/s per core of its own says what it would move
  alone. Goal: >= 1 Gbit/s each way through port-forward.

The bulk pod runs a small Python server (the pod sees the machine's files, so
this interpreter): a 9-byte header ("D" or "U", then a 64-bit length) asks it to
send that many bytes, or to read them and answer one byte once all arrived, so
neither direction depends on how a half-close crosses the forward.
kubectl's caches live under a HOME of the bench's own (warmed by the warm-ups,
as on a user's machine), and Python's byte-code cache as in cli_latency.py.

Run as root: .venv/bin/python bench/exec_latency.py [--runs 50] [--warmups 3] [--mib 256]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from podnet.kernel import netns
from podnet.lab import names
from podnet.lab.state import labs_dir

LAB, NODE = "execbench", "node1"
ECHO_POD, BULK_POD, BULK_PORT = "echo", "bulk", 9000
PODNET = str(Path(sys.executable).with_name("podnet"))  # the console script users run
KUBECTL = shutil.which("kubectl") or "kubectl"
KUBECTL_120 = Path(__file__).resolve().parents[1] / "tests" / "artifacts" / "kubectl-1.20" / "usr" / "bin" / "kubectl"
EXEC_GAP_GOAL_MS, FORWARD_GOAL_GBITS = 100.0, 1.0
NSENTER = f"podnet exec {ECHO_POD} -- true"
KUBECTL_START = "kubectl version --client"
IP_NETNS = "ip netns exec NS true"
MiB = 1 << 20
ANCHOR = "pod IP from the node (anchor)"

BULK_SERVER = f"""
import socket, socketserver
class Bulk(socketserver.BaseRequestHandler):
    def handle(self):
        head = self.request.recv(9, socket.MSG_WAITALL)
        if len(head) < 9:
            return
        left = int.from_bytes(head[1:], "big")
        block = memoryview(bytearray({MiB}))
        if head[:1] == b"D":
            while left:
                left -= self.request.send(block[:min(left, len(block))])
            return
        while left:
            got = self.request.recv_into(block, min(left, len(block)))
            if not got:
                return
            left -= got
        self.request.sendall(b"k")
socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer(("0.0.0.0", {BULK_PORT}), Bulk).serve_forever()
"""


def lab_file(directory: Path) -> Path:
    """The echo pod to exec into, and the bulk pod (Ready once its port listens)."""
    pods = [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": ECHO_POD},
             "spec": {"nodeName": NODE, "containers": [{"name": "echo", "image": "podnet/echo"}]}},
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": BULK_POD},
             "spec": {"nodeName": NODE, "containers": [{
                 "name": "bulk", "command": [sys.executable, "-c", BULK_SERVER],
                 "ports": [{"containerPort": BULK_PORT}]}]}}]
    lab = {"apiVersion": "podnet.dev/v1alpha1", "kind": "Cluster", "metadata": {"name": LAB},
           "nodes": [{"name": NODE}], "workloads": pods}
    path = directory / f"{LAB}.yaml"
    path.write_text(json.dumps(lab))  # JSON is YAML
    return path


def run(argv: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, timeout=120)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)}: exit status {done.returncode}: {done.stderr.strip()}")
    return done.stdout


# Exec: round trips.

@dataclass(frozen=True)
class Command:
    argv: list[str]
    env: dict[str, str]


def exec_commands(env: dict[str, str]) -> dict[str, Command]:
    """What is measured, by the name printed; kubectl's paths first, then the anchors."""
    kubectl_exec = ["exec", ECHO_POD, "--", "true"]
    found = {f"kubectl exec ({protocol})": Command([KUBECTL, *kubectl_exec],
                                                  {**env, "KUBECTL_REMOTE_COMMAND_WEBSOCKETS": websocket})
             for protocol, websocket in (("WebSocket", "true"), ("SPDY", "false"))}
    if KUBECTL_120.exists():
        found["kubectl 1.20 exec (SPDY)"] = Command([str(KUBECTL_120), *kubectl_exec], env)
    return found | {
        NSENTER: Command([PODNET, "exec", "--lab", LAB, ECHO_POD, "--", "true"], env),
        IP_NETNS: Command(["ip", "netns", "exec", names.pod_namespace(LAB, "default", ECHO_POD), "true"], env),
        KUBECTL_START: Command([KUBECTL, "version", "--client"], env),
    }


def exec_timings_ms(commands: dict[str, Command], runs: int, warmups: int) -> dict[str, list[float]]:
    """Each command once per round, in turn, so a busy moment of the machine
    falls on all of them alike; the warm-up rounds are not counted."""
    found: dict[str, list[float]] = {name: [] for name in commands}
    for round_ in range(warmups + runs):
        for name, command in commands.items():
            started = time.perf_counter()
            run(command.argv, command.env)
            if round_ >= warmups:
                found[name].append((time.perf_counter() - started) * 1000)
    return found


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def report_exec(figures: dict[str, list[float]]) -> None:
    p50 = {name: statistics.median(values) for name, values in figures.items()}
    print(f"{'exec round trip':<30}{'p50':>10}{'p99':>10}{'- podnet exec':>15}{'x podnet exec':>15}"
          f"{'x ip netns':>12}")
    for name, values in figures.items():
        print(f"{name:<30}{p50[name]:>8.1f}ms{percentile(values, 0.99):>8.1f}ms"
              f"{p50[name] - p50[NSENTER]:>+13.1f}ms{p50[name] / p50[NSENTER]:>15.2f}"
              f"{p50[name] / p50[IP_NETNS]:>12.2f}")
    print()
    for name in (name for name in figures if name.startswith("kubectl") and " exec " in name):
        gap = p50[name] - p50[NSENTER]
        print(f"{name}: p50 {p50[name]:.0f} ms, {gap:+.0f} ms from podnet exec's "
              f"{'meets' if gap <= EXEC_GAP_GOAL_MS else 'MISSES'} the goal (within {EXEC_GAP_GOAL_MS:.0f} ms); "
              f"kubectl's own start-up is {p50[KUBECTL_START]:.0f} ms of it")


# Port-forward: throughput, and who spends the CPU.

def transfer_gbits(connect: Callable[[], socket.socket], size: int) -> tuple[float, float]:
    """(down, up) in Gbit/s: size bytes from the bulk pod, then size bytes to it,
    each on a connection of its own, timed from the request to the last byte
    (down) or to the pod's word that it has them all (up)."""
    block = memoryview(bytearray(MiB))

    def down() -> float:
        with connect() as sock:
            started = time.perf_counter()
            sock.sendall(b"D" + size.to_bytes(8, "big"))
            left = size
            while left:
                got = sock.recv_into(block, min(left, MiB))
                if not got:
                    raise SystemExit(f"the bulk pod's stream ended {left} bytes short of {size}")
                left -= got
            return size * 8 / (time.perf_counter() - started) / 1e9

    def up() -> float:
        with connect() as sock:
            started = time.perf_counter()
            sock.sendall(b"U" + size.to_bytes(8, "big"))
            left = size
            while left:
                left -= sock.send(block[:min(left, MiB)])
            if sock.recv(1) != b"k":
                raise SystemExit("the bulk pod did not confirm the upload")
            return size * 8 / (time.perf_counter() - started) / 1e9

    return down(), up()


def cpu_ticks(pid: int) -> int:
    """utime + stime of the whole process (all its threads), in clock ticks."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    return int(fields[11]) + int(fields[12])


def descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parent = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError):
                continue
            children.setdefault(parent, []).append(int(entry))
    found, todo = {root}, [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def path_processes(kubectl_pid: int | None) -> dict[int, str]:
    """Every process that can carry the transfer, by what it is: kubectl (and any
    child of the dispatcher), the lab's API server, the node's agent (whose
    kubelet endpoint copies to the pod), the bulk pod's server, and this bench."""
    roles: dict[str, tuple[bytes | None, str, str]] = {  # namespace: (argv word, its name, any other's)
        names.lab_namespace(LAB): (b"apiserver", "API server", "other in the fabric"),
        names.member_namespace(LAB, NODE): (b"agent", "agent (kubelet)", "other on the node"),
        names.pod_namespace(LAB, "default", BULK_POD): (None, "bulk pod server", "")}
    labelled: dict[int, str] = {}
    for space, pids in netns.processes_by_namespace(list(roles)).items():
        word, named, other = roles[space]
        for pid in pids:
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except (FileNotFoundError, ProcessLookupError):
                continue
            if b"podnet.supervise" not in argv:  # a supervisor only waits on its child
                labelled[pid] = named if word is None or word in argv else other
    for pid in descendants(kubectl_pid) if kubectl_pid else ():
        labelled[pid] = "kubectl port-forward"
    labelled[os.getpid()] = "bench client (this process)"
    return labelled


def machine_ticks() -> tuple[int, int]:
    """(busy, all) clock ticks of every CPU, from /proc/stat: kernel work (softirqs,
    TCP) and everyone else's processes included."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return sum(fields) - fields[3] - fields[4], sum(fields)  # idle and iowait are not busy


MACHINE = "whole machine (all CPUs)"
RELAYS = ("kubectl port-forward", "API server", "agent (kubelet)")  # each copies every byte


def busy_cores(seconds: float = 1.0) -> float:
    """How many cores the machine keeps busy while this bench waits: others' load."""
    busy_before, total_before = machine_ticks()
    time.sleep(seconds)
    busy, total = machine_ticks()
    return (busy - busy_before) / max(1, total - total_before) * (os.cpu_count() or 1)


@contextmanager
def cpu_shares(kubectl_pid: int | None) -> Iterator[dict[str, float]]:
    """Each process's CPU over the block, as a share of one core, and the whole
    machine's; a process that starts within the block counts from zero (one that
    also ends there is missed)."""
    before = {pid: cpu_ticks(pid) for pid in path_processes(kubectl_pid)}
    machine_before = machine_ticks()
    started = time.perf_counter()
    shares: dict[str, float] = {}
    yield shares
    wall = time.perf_counter() - started
    busy, total = (after - prior for after, prior in zip(machine_ticks(), machine_before))
    hertz = os.sysconf("SC_CLK_TCK")
    for pid, label in path_processes(kubectl_pid).items():
        shares[label] = shares.get(label, 0.0) + (cpu_ticks(pid) - before.get(pid, 0)) / hertz / wall
    shares[MACHINE] = busy / total * (os.cpu_count() or 1) if total else 0.0


@dataclass
class Forwarded:
    down: float
    up: float
    shares: dict[str, float]


@contextmanager
def port_forward(kubeconfig_env: dict[str, str], websocket: bool) -> Iterator[subprocess.Popen[str]]:
    """`kubectl port-forward` on a port of the machine's 127.0.0.1 it picks; yields once it listens."""
    env = {**kubeconfig_env, "KUBECTL_PORT_FORWARD_WEBSOCKETS": "true" if websocket else "false"}
    process = subprocess.Popen([KUBECTL, "port-forward", "--address", "127.0.0.1", f"pod/{BULK_POD}",
                                f":{BULK_PORT}"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, env=env)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def listening_port(process: subprocess.Popen[str], timeout: float = 30.0) -> int:
    """The local port from kubectl's "Forwarding from 127.0.0.1:PORT -> 9000"."""
    assert process.stdout is not None
    lines: list[str] = []
    timer = threading.Timer(timeout, process.kill)
    timer.start()
    try:
        for line in process.stdout:
            lines.append(line.strip())
            match = re.match(r"Forwarding from 127\.0\.0\.1:(\d+) ", line)
            if match:
                return int(match.group(1))
    finally:
        timer.cancel()
    raise SystemExit(f"kubectl port-forward did not listen: {' / '.join(lines) or 'no output'}")


def measure_forward(env: dict[str, str], websocket: bool, size: int) -> Forwarded:
    with port_forward(env, websocket) as process:
        port = listening_port(process)
        connect = lambda: socket.create_connection(("127.0.0.1", port), timeout=120)  # noqa: E731
        transfer_gbits(connect, MiB)  # the first connection sets up the stream; not timed
        with cpu_shares(process.pid) as shares:
            down, up = transfer_gbits(connect, size)
        return Forwarded(down, up, shares)


def measure_direct(pod_ip: str, size: int) -> Forwarded:
    """The anchor: the same transfer from the node's namespace to the pod's IP."""
    node = names.member_namespace(LAB, NODE)
    connect = lambda: netns.run_in(node, socket.create_connection, (pod_ip, BULK_PORT), 120)  # noqa: E731
    transfer_gbits(connect, MiB)
    with cpu_shares(None) as shares:
        down, up = transfer_gbits(connect, size)
    return Forwarded(down, up, shares)


def report_forward(figures: dict[str, Forwarded], mib: int, background: float) -> None:
    anchor = figures[ANCHOR]
    print(f"{f'port-forward, {mib} MiB each way':<36}{'down':>12}{'up':>12}{'down/anchor':>13}{'up/anchor':>11}")
    for name, figure in figures.items():
        print(f"{name:<36}{figure.down:>7.2f}Gb/s{figure.up:>7.2f}Gb/s"
              f"{figure.down / anchor.down:>13.2f}{figure.up / anchor.up:>11.2f}")
    print(f"\nCPU during the timed transfers (down and up), in cores of {os.cpu_count()}; {background:.2f} busy "
          "just before the first, lab idle:")
    labels = sorted({label for figure in figures.values() for label in figure.shares} - {MACHINE}) + [MACHINE]
    print(f"{'process':<36}" + "".join(f"{name.split(' (')[-1].rstrip(')'):>12}" for name in figures))
    for label in labels:
        print(f"{label:<36}" + "".join(f"{figure.shares.get(label, 0.0):>12.2f}" for figure in figures.values()))
    print()
    for name, figure in figures.items():
        if figure is anchor:
            continue
        slowest = min(figure.down, figure.up)
        hops = {label: share for label, share in figure.shares.items()
                if label not in (MACHINE, "bench client (this process)")}
        busiest = max(hops, key=lambda label: hops[label])
        print(f"{name}: {slowest:.2f} Gbit/s the slower way {'meets' if slowest >= FORWARD_GOAL_GBITS else 'MISSES'}"
              f" the goal (>= {FORWARD_GOAL_GBITS:g} Gbit/s); busiest hop: {busiest} at {hops[busiest]:.2f} of a "
              f"core; the machine {figure.shares[MACHINE]:.2f} of {os.cpu_count()} cores busy")
        rate = statistics.harmonic_mean([figure.down, figure.up])  # bits moved over the seconds both took
        print("  what one core of each hop moves, in Gbit/s (its ceiling if the machine were idle): " + ", ".join(
            f"{label} {rate / share:.1f}" for label, share in sorted(hops.items(), key=lambda item: -item[1])
            if share >= 0.05) + f"; the three relays together: {rate / sum(hops.get(r, 0.0) for r in RELAYS):.1f}")


# The run.

def wait_for_exec(env: dict[str, str], timeout: float = 60.0) -> None:
    """podnet exec answers once the pod's namespace exists; kubectl exec once the
    API server, the kubelet endpoint and the pod all do."""
    deadline = time.monotonic() + timeout
    for argv in ([PODNET, "exec", "--lab", LAB, ECHO_POD, "--", "true"], [KUBECTL, "exec", ECHO_POD, "--", "true"]):
        while True:
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env)
            if done.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"{' '.join(argv)} still fails after {timeout:.0f} s: {done.stderr.strip()}")
            time.sleep(0.5)


def pod_ip(env: dict[str, str]) -> str:
    return run([PODNET, "get", "pod", BULK_POD, "--lab", LAB, "-o", "jsonpath={.status.podIP}"], env).strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmups", type=int, default=3)
    parser.add_argument("--mib", type=int, default=256, help="MiB moved each way per transfer.")
    parser.add_argument("--skip-exec", action="store_true", help="Only the port-forward part.")
    parser.add_argument("--skip-forward", action="store_true", help="Only the exec part.")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="execbench-") as tmp:
        env = {**os.environ, "PYTHONPYCACHEPREFIX": str(Path(tmp) / "pycache"), "HOME": tmp,
               "KUBECONFIG": str(labs_dir() / LAB / "kubeconfig")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        exec_figures: dict[str, list[float]] = {}
        forward_figures: dict[str, Forwarded] = {}
        forward_background = 0.0
        background = busy_cores()
        try:
            run([PODNET, "lab", "up", str(lab_file(Path(tmp)))], env)
            wait_for_exec(env)
            if not options.skip_exec:
                exec_figures = exec_timings_ms(exec_commands(env), options.runs, options.warmups)
            if not options.skip_forward:
                size = options.mib * MiB
                forward_background = busy_cores()
                forward_figures = {ANCHOR: measure_direct(pod_ip(env), size)}
                for websocket, name in ((True, "kubectl port-forward (WebSocket)"),
                                        (False, "kubectl port-forward (SPDY)")):
                    forward_figures[name] = measure_forward(env, websocket, size)
        finally:
            subprocess.run([PODNET, "lab", "down", LAB], capture_output=True, env=env)
    print(f"{os.cpu_count()} CPUs, {background:.2f} of them busy with others' work before the lab came up "
          f"(1 s sample); kubectl on PATH: {KUBECTL}")
    if exec_figures:
        print(f"\n{options.runs} runs each after {options.warmups} warm-ups, in turn (milliseconds, wall clock, "
              f"start-up included; p99: run {int(0.99 * options.runs) + 1} of {options.runs} from the fastest)")
        report_exec(exec_figures)
    if forward_figures:
        print()
        report_forward(forward_figures, options.mib, forward_background)


if __name__ == "__main__":
    main()
