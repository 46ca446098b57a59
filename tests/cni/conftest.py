"""Plugins under test, each in a host namespace of its own, called as a runtime
calls them: exec'd with CNI_* variables and the config on stdin."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from podnet.cni.install import c_relay_built, install
from podnet.kernel import netns

from tests import scope

REFERENCE_DIR = Path("/usr/lib/cni")


@dataclass(frozen=True)
class Stack:
    """A network's address families: one host-local range set per subnet, as a
    dual-stack network has one for IPv4 and one for IPv6."""

    subnets: tuple[str, ...]

    def ranges(self) -> list[list[dict[str, str]]]:
        return [[{"subnet": subnet}] for subnet in self.subnets]

    def addresses(self, host: int) -> list[str]:
        """The host'th address of each subnet, as "ip/prefix"."""
        networks = [ipaddress.ip_network(subnet) for subnet in self.subnets]
        return [f"{network.network_address + host}/{network.prefixlen}" for network in networks]

    def ips(self, host: int) -> list[str]:
        return [address.split("/")[0] for address in self.addresses(host)]

    @property
    def gateways(self) -> list[str]:
        return self.ips(1)

    @property
    def defaults(self) -> list[str]:
        return ["0.0.0.0/0" if ":" not in gateway else "::/0" for gateway in self.gateways]


STACKS = {"ipv4": Stack(("10.123.0.0/24",)), "ipv6": Stack(("fd00:123::/64",)),
          "dual-stack": Stack(("10.123.0.0/24", "fd00:123::/64"))}


@dataclass
class Plugins:
    """One implementation of bridge + host-local, set up in its own host namespace."""

    name: str
    bridge: str
    host_local: str
    plugin_dir: Path
    host: str  # the host namespace the plugins run in
    data_dir: Path
    stack: Stack = STACKS["ipv4"]
    made: list[str] = field(default_factory=list)

    def netconf(self, cni_version: str = "1.0.0", **overrides: Any) -> dict[str, Any]:
        ipam = {"type": self.host_local, "ranges": self.stack.ranges(), "dataDir": str(self.data_dir)}
        ipam.update(overrides.pop("ipam", {}))
        return {"cniVersion": cni_version, "name": "conformance", "type": self.bridge, "bridge": "cnitest0",
                "isGateway": True, "isDefaultGateway": True, "ipam": ipam, **overrides}

    def container(self) -> str:
        name = f"{scope.NAMESPACES}cni.c{uuid.uuid4().hex[:8]}"
        netns.create(name)
        self.made.append(name)
        return name

    def call(self, command: str, config: dict[str, Any] | bytes | None, *, container_id: str = "", netns_name: str | None = "",
             ifname: str = "eth0", args: str = "", plugin: str | None = None,
             env: dict[str, str] | None = None) -> tuple[int, dict[str, Any] | None]:
        variables = {"CNI_COMMAND": command, "CNI_CONTAINERID": container_id, "CNI_IFNAME": ifname,
                     "CNI_ARGS": args, "CNI_PATH": str(self.plugin_dir)}
        if netns_name:
            variables["CNI_NETNS"] = f"/run/netns/{netns_name}"
        variables.update(env or {})
        stdin = config if isinstance(config, bytes) else json.dumps(config or {}).encode()
        binary = str(self.plugin_dir / (plugin or self.bridge))
        proc = subprocess.run(["nsenter", f"--net=/run/netns/{self.host}", "--", binary], input=stdin,
                              capture_output=True, env={k: v for k, v in {**os.environ, **variables}.items() if v != ""},
                              timeout=30)
        out = json.loads(proc.stdout) if proc.stdout.strip() else None
        return proc.returncode, out

    def add(self, container: str, container_id: str | None = None, **kw: Any) -> dict[str, Any]:
        config = kw.pop("config", None) or self.netconf()
        code, out = self.call("ADD", config, container_id=container_id or container.split(".")[-1], netns_name=container, **kw)
        assert code == 0, out
        assert out is not None
        return out

    def leases(self) -> dict[str, str]:
        directory = self.data_dir / "conformance"
        if not directory.is_dir():
            return {}
        return {entry.name: entry.read_bytes().decode() for entry in directory.iterdir()
                if entry.is_file() and _is_address(entry.name)}


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _host(name: str) -> str:
    host = f"{scope.NAMESPACES}cni.{name}"
    netns.create(host)
    return host


@pytest.fixture(scope="session")
def podnet_agent_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A host namespace with podnet's plugins installed and `podnet cni serve` in it.
    The plugins are the C relay (./run builds it); plugin_dir/python holds the
    Python entry's, so the tests can run both."""
    if os.geteuid() != 0:
        pytest.skip("CNI tests need root")
    host = _host("podnet")
    plugin_dir = tmp_path_factory.mktemp("podnet-bin")
    install(plugin_dir, "c" if c_relay_built() else "python")
    install(plugin_dir / "python", "python")
    log = open(tmp_path_factory.mktemp("log") / "serve.log", "w")
    server = subprocess.Popen(netns.exec_argv(host, [sys.executable, "-m", "podnet", "cni", "serve"]),
                              stdout=log, stderr=subprocess.STDOUT)
    socket = Path("/run/podnet/agents") / f"net-{os.stat(netns.path(host)).st_ino}.sock"
    deadline = time.monotonic() + 10
    while not socket.exists():
        assert time.monotonic() < deadline and server.poll() is None, "podnet cni serve did not start"
        time.sleep(0.05)
    yield host, plugin_dir
    server.terminate()
    server.wait(timeout=10)
    log.close()
    netns.kill_processes_in([host])
    netns.delete(host)


@pytest.fixture(scope="session")
def reference_host() -> Iterator[str]:
    if not (REFERENCE_DIR / "bridge").exists():
        pytest.skip("the reference plugins are not installed (containernetworking-plugins)")
    host = _host("reference")
    yield host
    netns.kill_processes_in([host])
    netns.delete(host)


@pytest.fixture(params=["reference", "podnet", "podnet-python-relay"])
def plugins(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Plugins]:
    if request.param == "reference":
        host = request.getfixturevalue("reference_host")
        impl = Plugins("reference", "bridge", "host-local", REFERENCE_DIR, host, tmp_path / "ipam")
    else:
        host, plugin_dir = request.getfixturevalue("podnet_agent_host")
        if request.param == "podnet-python-relay":
            plugin_dir = plugin_dir / "python"
        impl = Plugins("podnet", "podnet-bridge", "podnet-host-local", plugin_dir, host, tmp_path / "ipam")
    yield impl
    for name in impl.made:
        netns.delete(name)


@pytest.fixture(params=list(STACKS))
def stacked(request: pytest.FixtureRequest, plugins: Plugins) -> Plugins:
    """The same implementations, on an IPv4, an IPv6 and a dual-stack network."""
    plugins.stack = STACKS[request.param]
    return plugins


@pytest.fixture
def ours(podnet_agent_host: tuple[str, Path], tmp_path: Path) -> Iterator[Plugins]:
    """Only podnet's plugins: for what the reference (1.1.1, spec 1.0.0) lacks."""
    host, plugin_dir = podnet_agent_host
    impl = Plugins("podnet", "podnet-bridge", "podnet-host-local", plugin_dir, host, tmp_path / "ipam")
    yield impl
    for name in impl.made:
        netns.delete(name)
