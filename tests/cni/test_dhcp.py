"""DHCP IPAM against a real DHCP server (dnsmasq on the bridge), podnet's
(podnet-bridge, podnet-dhcp and `podnet cni dhcp-daemon`) beside the reference's
(bridge, dhcp and `dhcp daemon`, from containernetworking-plugins): the same
leases, under the same client identifiers, renewed at T1 and released on DEL."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from podnet.cni.install import install
from podnet.kernel import netns
from tests.cni.conftest import REFERENCE_DIR
from tests.helpers import in_netns, within

BRIDGE, SERVER, NETWORK = "dhcptest0", "10.124.0.1", "dhcpnet"
T1, T2 = 2, 4  # seconds: dnsmasq's leases are at least 2 minutes, so renewal is asked for early


@dataclass
class Dhcp:
    """One implementation, in a host namespace of its own with its own dnsmasq."""

    name: str
    bridge_type: str
    ipam_type: str
    plugin_dir: Path
    host: str
    work: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)  # dnsmasq, then the daemon
    daemon: list[str] = field(default_factory=list)
    made: list[str] = field(default_factory=list)

    @property
    def socket(self) -> Path:
        return self.work / "dhcp.sock"

    def netconf(self) -> dict[str, Any]:
        return {"cniVersion": "1.0.0", "name": NETWORK, "type": self.bridge_type, "bridge": BRIDGE,
                "isGateway": True, "ipam": {"type": self.ipam_type, "daemonSocketPath": str(self.socket)}}

    def call(self, command: str, container: str, config: dict[str, Any] | None = None) -> tuple[int, Any]:
        env = {**os.environ, "CNI_COMMAND": command, "CNI_CONTAINERID": container.split(".")[-1],
               "CNI_NETNS": f"/run/netns/{container}", "CNI_IFNAME": "eth0", "CNI_PATH": str(self.plugin_dir)}
        proc = subprocess.run(["nsenter", f"--net=/run/netns/{self.host}", "--", str(self.plugin_dir / self.bridge_type)],
                              input=json.dumps(config or self.netconf()).encode(), capture_output=True, env=env,
                              timeout=60)
        return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else None

    def container(self) -> str:
        name = f"pn-test_cni.d{uuid.uuid4().hex[:8]}"
        netns.create(name)
        self.made.append(name)
        return name

    def leases(self) -> dict[str, tuple[int, str]]:
        """dnsmasq's lease file: address -> (expiry, client identifier)."""
        path = self.work / "leases"
        lines = path.read_text().splitlines() if path.exists() else []
        return {fields[2]: (int(fields[0]), fields[4]) for fields in (line.split() for line in lines)}


def client_id_hex(container: str) -> str:
    """The reference's client identifier for the attachment, as dnsmasq lists it."""
    raw = b"\0" + f"{container.split('.')[-1]}/{NETWORK}/eth0".encode()
    return ":".join(f"{byte:02x}" for byte in raw)


def _start(host: str, argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(netns.exec_argv(host, argv), stdout=open(log, "wb"), stderr=subprocess.STDOUT)


@pytest.fixture(scope="module")
def impls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Dhcp]]:
    if os.geteuid() != 0:
        pytest.skip("CNI tests need root")
    for tool, package in ((REFERENCE_DIR / "dhcp", "containernetworking-plugins"), ("dnsmasq", "dnsmasq-base")):
        if not shutil.which(str(tool)):
            pytest.skip(f"{tool} is not installed ({package})")
    ours_dir = tmp_path_factory.mktemp("dhcp-bin")
    install(ours_dir, "python")  # no agent in this host: the plugins work in their own process
    found = {"reference": Dhcp("reference", "bridge", "dhcp", REFERENCE_DIR, "pn-test_cni.dhcp-ref",
                               tmp_path_factory.mktemp("dhcp-ref")),
             "podnet": Dhcp("podnet", "podnet-bridge", "podnet-dhcp", ours_dir, "pn-test_cni.dhcp-pn",
                            tmp_path_factory.mktemp("dhcp-pn"))}
    try:
        for impl in found.values():
            netns.create(impl.host)
            for command in (["ip", "link", "add", BRIDGE, "type", "bridge"],
                            ["ip", "addr", "add", f"{SERVER}/24", "dev", BRIDGE], ["ip", "link", "set", BRIDGE, "up"]):
                in_netns(impl.host, *command)
            impl.processes.append(_start(impl.host, [
                "dnsmasq", "--keep-in-foreground", "--port=0", f"--interface={BRIDGE}", "--bind-interfaces",
                "--no-ping", "--dhcp-range=10.124.0.10,10.124.0.200,255.255.255.0,2m",
                f"--dhcp-option=option:router,{SERVER}", f"--dhcp-option=option:T1,{T1}",
                f"--dhcp-option=option:T2,{T2}", f"--dhcp-leasefile={impl.work / 'leases'}",
                f"--pid-file={impl.work / 'dnsmasq.pid'}"], impl.work / "dnsmasq.log"))
            daemon = ([str(REFERENCE_DIR / "dhcp"), "daemon", "-socketpath", str(impl.socket), "-timeout", "5s"]
                      if impl.name == "reference" else
                      [sys.executable, "-m", "podnet", "cni", "dhcp-daemon", "--socket", str(impl.socket), "--timeout", "5",
                       "--state", str(impl.work / "held")])
            impl.daemon = daemon
            impl.processes.append(_start(impl.host, daemon, impl.work / "daemon.log"))
            assert within(10, impl.socket.exists), f"the {impl.name} DHCP daemon did not start"
        yield found
    finally:
        for impl in found.values():
            for process in impl.processes:
                process.terminate()
                process.wait(timeout=10)
            for name in impl.made:
                netns.delete(name)
            if netns.exists(impl.host):
                netns.kill_processes_in([impl.host])
                netns.delete(impl.host)


def test_add_leases_from_the_server_as_the_reference_does(impls: dict[str, Dhcp]) -> None:
    results = {}
    for name, impl in impls.items():
        container = impl.container()
        code, result = impl.call("ADD", container)
        assert code == 0, (name, result)
        (ip,) = result["ips"]
        address = ip["address"].split("/")[0]
        assert ip["address"].endswith("/24") and ip["gateway"] == SERVER
        assert 10 <= int(address.rsplit(".", 1)[1]) <= 200, (name, address)
        assert {"dst": "0.0.0.0/0", "gw": SERVER} in result["routes"]
        # the server holds the lease under the reference's client identifier
        assert impl.leases()[address][1] == client_id_hex(container), (name, impl.leases())
        # and the container uses it: a real packet to the server
        assert f"{ip['address']}" in in_netns(container, "ip", "-4", "addr", "show", "eth0").stdout
        in_netns(container, "ping", "-c1", "-W2", SERVER)
        code, _ = impl.call("CHECK", container, {**impl.netconf(), "prevResult": result})
        assert code == 0, name
        results[name] = result
    shape = {name: (sorted(r), sorted(r["ips"][0]), r["routes"]) for name, r in results.items()}
    assert shape["podnet"] == shape["reference"]


def test_del_releases_the_lease(impls: dict[str, Dhcp]) -> None:
    """The reference (1.1.1) sends its release after its bridge has deleted the
    interface ("failed to release DHCP lease: no such device"), so the server keeps
    the lease until it runs out; podnet's IPAM releases before the link goes."""
    for name, impl in impls.items():
        # several: each port joining or leaving the bridge may change its MAC, the one the ACKs came from
        containers = [impl.container() for _ in range(3)]
        addresses = []
        for container in containers:
            code, result = impl.call("ADD", container)
            assert code == 0, (name, result)
            addresses.append(result["ips"][0]["address"].split("/")[0])
        assert set(addresses) <= set(impl.leases())
        for container in containers:
            code, out = impl.call("DEL", container)
            assert code == 0, (name, out)
        if name == "podnet":
            assert within(5, lambda: not set(addresses) & set(impl.leases())), f"{name}: {impl.leases()}"


def test_leases_are_renewed_at_t1(impls: dict[str, Dhcp]) -> None:
    held = {}
    for name, impl in impls.items():
        container = impl.container()
        code, result = impl.call("ADD", container)
        assert code == 0, (name, result)
        address = result["ips"][0]["address"].split("/")[0]
        held[name] = (impl, container, address, impl.leases()[address][0])
    time.sleep(T1 + 2)
    for name, (impl, container, address, expiry) in held.items():
        assert impl.leases()[address][0] > expiry, f"{name} did not renew its lease at T1"
        impl.call("DEL", container)


def test_a_restarted_daemon_keeps_renewing_what_the_last_one_held(impls: dict[str, Dhcp]) -> None:
    """podnet's records its leases; the reference's daemon forgets them on restart."""
    impl = impls["podnet"]
    container = impl.container()
    code, result = impl.call("ADD", container)
    assert code == 0, result
    address = result["ips"][0]["address"].split("/")[0]
    old = impl.processes.pop()
    old.terminate()  # as systemd stops it for an upgrade: the leases are not released
    old.wait(timeout=10)
    assert address in impl.leases()
    impl.processes.append(_start(impl.host, impl.daemon, impl.work / "daemon-again.log"))
    assert within(10, impl.socket.exists), "the daemon did not start again"
    expiry = impl.leases()[address][0]
    time.sleep(T1 + 2)
    assert impl.leases()[address][0] > expiry, "the new daemon did not renew the lease"
    assert impl.call("CHECK", container, {**impl.netconf(), "prevResult": result})[0] == 0
    assert impl.call("DEL", container)[0] == 0
    assert within(5, lambda: address not in impl.leases())
    held = [json.loads(record.read_text())["clientID"] for record in (impl.work / "held").iterdir()]
    assert f"{container.split('.')[-1]}/{NETWORK}/eth0" not in held  # its record went with the lease


def test_without_a_server_add_fails_and_leaves_nothing(impls: dict[str, Dhcp]) -> None:
    """podnet's: code 11 (try again later) naming the interface, and no veth left on the bridge."""
    impl = impls["podnet"]

    def bridged() -> str:
        return in_netns(impl.host, "ip", "-br", "link", "show", "master", BRIDGE).stdout

    before = bridged()
    pid = int((impl.work / "dnsmasq.pid").read_text())
    os.kill(pid, 19)  # SIGSTOP: the server is there, and silent
    try:
        container = impl.container()
        started = time.monotonic()
        code, error = impl.call("ADD", container)
    finally:
        os.kill(pid, 18)  # SIGCONT
    assert code == 1 and error["code"] == 11 and "no DHCP server sent an offer" in error["msg"], error
    assert time.monotonic() - started < 10
    assert bridged() == before
    assert "eth0" not in in_netns(container, "ip", "-br", "link").stdout


def test_del_and_status_without_the_daemon(impls: dict[str, Dhcp], tmp_path: Path) -> None:
    """No daemon holds no lease: DEL succeeds; STATUS says the plugin cannot serve (code 50)."""
    impl = impls["podnet"]
    config = {**impl.netconf(), "cniVersion": "1.1.0",
              "ipam": {"type": "podnet-dhcp", "daemonSocketPath": str(tmp_path / "none.sock")}}
    container = impl.container()
    assert impl.call("DEL", container, config)[0] == 0
    code, error = impl.call("STATUS", container, config)
    assert code == 1 and error["code"] == 50 and "start `podnet cni dhcp-daemon`" in error["details"], error
