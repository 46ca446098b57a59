"""CNI ADD and DEL latency, podnet's plugins against the reference Go plugins, and
lease lookup among 5 000 leases (host-local).

Both sides run the same way: exec'd with nsenter in one host namespace, for 100
pods with the same network config, each pod in its own namespace; IPv4 networks,
and dual-stack ones (an IPv4 /24 and an IPv6 /64 range set). podnet's side
has its agent (`podnet cni serve`) running in the host namespace, as on a node,
and is exec'd as the C relay (built by ./run) and as the Python entry. The
relay's own share is timed against an agent that answers at once.
Run as root: .venv/bin/python bench/cni_latency.py [--pods 100]
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import socket as sockets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from podnet.cni.install import c_relay_built, install
from podnet.kernel import netns

REFERENCE = Path("/usr/lib/cni")


def netconf(bridge: str, ipam: str, data_dir: Path, masq: bool, subnets: tuple[str, ...],
            tag: str = "") -> dict:  # type: ignore[type-arg]
    """One range set per subnet: two (an IPv4 and an IPv6 one) make the network dual-stack."""
    ranges = [[{"subnet": subnet}] for subnet in subnets]
    return {"cniVersion": "1.0.0", "name": "bench", "type": bridge, "bridge": f"bench{int(masq)}{tag}", "isGateway": True,
            "ipMasq": masq, "ipam": {"type": ipam, "ranges": ranges, "dataDir": str(data_dir)}}


def call(host: str, plugin_dir: Path, plugin: str, command: str, config: dict, container_id: str,  # type: ignore[type-arg]
         container: str | None) -> float:
    env = {**os.environ, "CNI_COMMAND": command, "CNI_CONTAINERID": container_id, "CNI_IFNAME": "eth0",
           "CNI_PATH": str(plugin_dir)}
    if container:
        env["CNI_NETNS"] = f"/run/netns/{container}"
    started = time.perf_counter()
    proc = subprocess.run(netns.enter_argv(str(netns.path(host)), [str(plugin_dir / plugin)]),
                          input=json.dumps(config).encode(), capture_output=True, env=env)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{plugin} {command} failed: {proc.stdout.decode()} {proc.stderr.decode()}")
    return elapsed * 1000


def add_del_round(host: str, plugin_dir: Path, bridge: str, ipam: str, pods: int, masq: bool, work: Path,
                  subnets: tuple[str, ...], tag: str = "") -> tuple[float, float]:
    config = netconf(bridge, ipam, work / "ipam", masq, subnets, tag)
    containers = [f"pn-bench.{bridge}.{i}" for i in range(pods)]
    for name in containers:
        netns.create(name)
    try:
        adds = [call(host, plugin_dir, bridge, "ADD", config, f"pod{i}", c) for i, c in enumerate(containers)]
        dels = [call(host, plugin_dir, bridge, "DEL", config, f"pod{i}", c) for i, c in enumerate(containers)]
    finally:
        for name in containers:
            netns.delete(name)
    return statistics.median(adds), statistics.median(dels)


def fill_leases(directory: Path, count: int) -> None:
    """5 000 leases in the reference's format, as an existing node would have."""
    directory.mkdir(parents=True, exist_ok=True)
    base = ipaddress.ip_address("10.200.0.10")
    for i in range(count):
        (directory / str(base + i)).write_bytes(f"lease{i}\r\neth0".encode())


def lookup_round(host: str, plugin_dir: Path, plugin: str, work: Path, leases: int, samples: int) -> float:
    """Median DEL of a container that holds one of `leases` leases (host-local alone)."""
    data = work / f"lookup-{plugin}-{leases}"
    config = {"cniVersion": "1.0.0", "name": "bench", "type": plugin,
              "ipam": {"type": plugin, "ranges": [[{"subnet": "10.200.0.0/16"}]], "dataDir": str(data)}}
    fill_leases(data / "bench", leases)
    call(host, plugin_dir, plugin, "DEL", config, "warm-up", None)  # podnet builds its index once here
    timings = []
    base = ipaddress.ip_address("10.200.0.10")
    for i in range(samples):
        index = (i * 37) % max(leases, 1)
        timings.append(call(host, plugin_dir, plugin, "DEL", config, f"lease{index}", None))
        if leases:
            (data / "bench" / str(base + index)).write_bytes(f"lease{index}\r\neth0".encode())
            if plugin.startswith("podnet"):  # put it back the way podnet would have written it
                call(host, plugin_dir, plugin, "DEL", config, "warm-up", None)
    return statistics.median(timings)


def relay_share(plugin_dir: Path, work: Path, samples: int = 50) -> float:
    """Median ms of one exec of the relay, to an agent that answers at once and back."""
    path = str(work / f"stub-{plugin_dir.name}.sock")
    server = sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM)
    server.bind(path)
    server.listen(16)

    def answer() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                while conn.recv(65536):
                    pass
                conn.sendall(b"0\n{}")

    threading.Thread(target=answer, daemon=True).start()
    env = {**os.environ, "CNI_COMMAND": "ADD", "PODNET_AGENT_SOCKET": path}
    config = json.dumps(netconf("podnet-bridge", "podnet-host-local", work, False, ("10.212.0.0/16",))).encode()
    timings = []
    for _ in range(samples):
        started = time.perf_counter()
        subprocess.run([str(plugin_dir / "podnet-bridge")], input=config, env=env, capture_output=True, check=True)
        timings.append((time.perf_counter() - started) * 1000)
    server.close()
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=100)
    parser.add_argument("--leases", type=int, default=5000)
    options = parser.parse_args()
    if not (REFERENCE / "bridge").exists():
        raise SystemExit("install the reference plugins first: apt-get install containernetworking-plugins")
    host = "pn-bench.host"
    netns.create(host)
    server = None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            if not c_relay_built():
                raise SystemExit("build the C relay first: ./run builds it (cc -O2 -o src/podnet/cni/relay ...)")
            ours, python_relay = work / "bin", work / "python-bin"
            install(ours, "c")
            install(python_relay, "python")
            server = subprocess.Popen(netns.exec_argv(host, [sys.executable, "-m", "podnet", "cni", "serve"]),
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            socket = Path("/run/podnet/agents") / f"net-{os.stat(netns.path(host)).st_ino}.sock"
            while not socket.exists():
                time.sleep(0.05)
            print(f"the relay alone (exec, to an agent that answers at once, back), median ms: "
                  f"C {relay_share(ours, work):.2f}, Python {relay_share(python_relay, work):.2f}")
            print(f"\nCNI ADD/DEL, {options.pods} pods, median ms (lower is better); ratio = podnet / reference")
            print(f"{'netconf':<36}{'':>5}{'reference':>11}{'podnet':>9}{'ratio':>8}")
            # (label, ipMasq, relay, tag, subnets): each row's network has a bridge and subnets of its own
            rows = (("bridge+host-local", False, ours, "", ("10.210.0.0/17",)),
                    ("bridge+host-local, Python relay", False, python_relay, "p", ("10.210.128.0/17",)),
                    ("+ ipMasq (seed's 10-bridge)", True, ours, "", ("10.211.0.0/17",)),
                    ("dual-stack (10.x/24 + fd00::/64)", False, ours, "d", ("10.213.0.0/24", "fd00:213::/64")),
                    ("dual-stack + ipMasq", True, ours, "d", ("10.214.0.0/24", "fd00:214::/64")))
            for label, masq, relay_dir, tag, subnets in rows:
                ref = add_del_round(host, REFERENCE, "bridge", "host-local", options.pods, masq,
                                    work / f"ref{masq}{relay_dir.name}{tag}", subnets, tag)
                pod = add_del_round(host, relay_dir, "podnet-bridge", "podnet-host-local", options.pods, masq,
                                    work / f"pod{masq}{relay_dir.name}{tag}", subnets, tag)
                for name, r, p in (("ADD", ref[0], pod[0]), ("DEL", ref[1], pod[1])):
                    print(f"{label:<36}{name:>5}{r:>11.1f}{p:>9.1f}{p / r:>8.2f}")
            print(f"\nhost-local DEL among {options.leases} leases (finding the container's lease), median ms")
            rows = {}
            for plugin, directory in (("host-local", REFERENCE), ("podnet-host-local", ours)):
                empty = lookup_round(host, directory, plugin, work, 0, 30)
                full = lookup_round(host, directory, plugin, work, options.leases, 30)
                rows[plugin] = (empty, full, max(full - empty, 0.01))
            print(f"{'':<20}{'0 leases':>10}{'5000 leases':>13}{'lookup cost':>13}")
            for plugin, (empty, full, cost) in rows.items():
                print(f"{plugin:<20}{empty:>10.1f}{full:>13.1f}{cost:>13.2f}")
            ref_cost, our_cost = rows["host-local"][2], rows["podnet-host-local"][2]
            print(f"lookup: podnet is {ref_cost / our_cost:.0f}x faster (reference {ref_cost:.1f} ms, podnet {our_cost:.2f} ms);"
                  f" whole DEL at {options.leases} leases: {rows['host-local'][1] / rows['podnet-host-local'][1]:.1f}x")
    finally:
        if server:
            server.terminate()
            server.wait()
        netns.kill_processes_in([host])
        netns.delete(host)


if __name__ == "__main__":
    main()
