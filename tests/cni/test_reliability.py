"""An agent killed with SIGKILL in the middle of ADDs, and restarted: after the
runtime's DELs for the failed ADDs and a GC, nothing is left leaked."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from podnet.cni.install import install
from podnet.kernel import netns
from tests.cni.conftest import Plugins
from tests.helpers import in_netns


def start_agent(host: str, log: Path) -> subprocess.Popen:  # type: ignore[type-arg]
    socket = Path("/run/podnet/agents") / f"net-{os.stat(netns.path(host)).st_ino}.sock"
    socket.unlink(missing_ok=True)
    server = subprocess.Popen(netns.exec_argv(host, [sys.executable, "-m", "podnet", "cni", "serve"]),
                              stdout=open(log, "a"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while not socket.exists():
        assert time.monotonic() < deadline, "the agent did not start"
        time.sleep(0.02)
    return server


@pytest.mark.slow
def test_agent_killed_mid_add_leaks_nothing(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    host = "pn-test_cni.killed"
    netns.create(host)
    plugin_dir = tmp_path / "bin"
    install(plugin_dir)
    plugins = Plugins("podnet", "podnet-bridge", "podnet-host-local", plugin_dir, host, tmp_path / "ipam")
    config = plugins.netconf(ipMasq=True)
    containers = [plugins.container() for _ in range(24)]
    agent = start_agent(host, tmp_path / "agent.log")
    outcomes: dict[str, bool] = {}
    killed = threading.Event()

    def add(container: str) -> None:
        code, _ = plugins.call("ADD", config, container_id=container.split(".")[-1], netns_name=container)
        outcomes[container] = code == 0
        if len(outcomes) == 6 and not killed.is_set():
            killed.set()
            os.kill(agent.pid, signal.SIGKILL)

    try:
        with ThreadPoolExecutor(max_workers=6) as pool:
            list(pool.map(add, containers))
        agent.wait()
        assert killed.is_set()
        agent = start_agent(host, tmp_path / "agent.log")
        for container, ok in outcomes.items():  # as a runtime does after a failed ADD
            if not ok:
                assert plugins.call("DEL", config, container_id=container.split(".")[-1], netns_name=container)[0] == 0
        alive = [c for c, ok in outcomes.items() if ok]
        print("ADDs that succeeded:", len(alive), "of", len(outcomes))
        valid = [{"containerID": c.split(".")[-1], "ifname": "eth0"} for c in alive]
        assert plugins.call("GC", {**plugins.netconf("1.1.0", ipMasq=True), "cni.dev/valid-attachments": valid})[0] == 0

        time.sleep(0.3)  # deferred deletions
        leases = plugins.leases()
        assert sorted(owner.split("\r\n")[0] for owner in leases.values()) == sorted(c.split(".")[-1] for c in alive)
        veths = [line for line in in_netns(host, "ip", "-o", "link", "show", "master", "cnitest0").stdout.splitlines()]
        assert len(veths) == len(alive)
        masq = in_netns(host, "nft", "list", "map", "inet", "podnet-cni", "masq4").stdout
        masqueraded = re.findall(r"(\d+\.\d+\.\d+\.\d+) : jump", masq)
        assert sorted(masqueraded) == sorted(leases), (outcomes, leases, open(tmp_path / "agent.log").read())
        for container in outcomes:
            links = in_netns(container, "ip", "-o", "link").stdout
            assert ("eth0" in links) == outcomes[container]
        for container in alive:
            assert "1 received" in in_netns(container, "ping", "-c1", "-W2", "10.123.0.1").stdout
    finally:
        agent.kill()
        agent.wait()
        for container in plugins.made:
            netns.delete(container)
        netns.kill_processes_in([host])
        (Path("/run/podnet/agents") / f"net-{os.stat(netns.path(host)).st_ino}.sock").unlink(missing_ok=True)
        netns.delete(host)
