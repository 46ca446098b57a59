"""podman as the runtime: a real container engine calls podnet's plugins (see
tests/podman.py for how podman is kept apart from the machine's own)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from podnet.cni.install import install
from podnet.kernel import netns
from tests.helpers import in_netns
from tests.podman import IMAGE, PAGE, Podman, busybox_image, remove_all, require_podman

NODE = "pn-test_podman.node"
SUBNET_PREFIX = "10.89.0."
SUBNET6 = "fd00:89::/64"  # the conflist is dual-stack: a range set per family, as in a dual-stack cluster


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podman]:
    require_podman()
    work = tmp_path_factory.mktemp("podman")
    plugin_dir, conf_dir = work / "bin", work / "net.d"
    install(plugin_dir)
    conf_dir.mkdir()
    (conf_dir / "podnet.conflist").write_text(f"""{{"cniVersion": "1.0.0", "name": "podnet", "plugins": [
 {{"type": "podnet-bridge", "bridge": "pn-podman0", "isGateway": true, "isDefaultGateway": true,
   "ipMasq": true, "hairpinMode": true,
   "ipam": {{"type": "podnet-host-local", "ranges": [[{{"subnet": "{SUBNET_PREFIX}0/24"}}], [{{"subnet": "{SUBNET6}"}}]],
             "dataDir": "{work / 'ipam'}"}}}},
 {{"type": "podnet-portmap", "capabilities": {{"portMappings": true}}, "stateDir": "{work / 'portmap'}"}}]}}""")
    engine = Podman.configured(work, NODE, plugin_dir, conf_dir)
    netns.create(NODE)
    agent = subprocess.Popen(netns.exec_argv(NODE, [sys.executable, "-m", "podnet", "cni", "serve"]),
                             stdout=open(work / "agent.log", "w"), stderr=subprocess.STDOUT)
    try:
        socket = Path("/run/podnet/agents") / f"net-{os.stat(netns.path(NODE)).st_ino}.sock"
        deadline = time.monotonic() + 10
        while not socket.exists():
            assert time.monotonic() < deadline, "the agent did not start"
            time.sleep(0.05)
        engine("import", str(busybox_image(work)), IMAGE)
        yield engine
    finally:
        try:
            remove_all(engine, work)
        finally:
            agent.terminate()
            agent.wait(timeout=10)
            netns.kill_processes_in([NODE])
            netns.delete(NODE)


@pytest.mark.slow
def test_containers_get_addresses_and_reach_each_other(podman: Podman) -> None:
    web = podman.run("web", "httpd", "-f", "-p", "80", "-h", "/www")
    client = podman.run("client", "sleep", "3600")
    assert web.startswith(SUBNET_PREFIX) and client.startswith(SUBNET_PREFIX) and web != client
    assert sorted(podman.leases()) == sorted([web, client])
    page = podman("exec", "client", "wget", "-qO-", f"http://{web}/").stdout
    assert page == PAGE
    podman("rm", "--force", "--time", "0", "web", "client")


@pytest.mark.slow
def test_a_dual_stack_conflist_gives_containers_an_ipv6_address_too(podman: Podman) -> None:
    podman.run("web6", "httpd", "-f", "-p", "80", "-h", "/www")
    podman.run("client6", "sleep", "3600")
    web6 = podman("inspect", "web6", "--format", "{{.NetworkSettings.Networks.podnet.GlobalIPv6Address}}").stdout.strip()
    assert web6.startswith("fd00:89::"), web6
    assert podman("exec", "client6", "wget", "-qO-", f"http://[{web6}]/").stdout == PAGE
    routes = podman("exec", "client6", "ip", "-6", "route").stdout
    assert "default via fd00:89::1" in routes, routes  # isDefaultGateway in each family
    podman("rm", "--force", "--time", "0", "web6", "client6")


@pytest.mark.slow
def test_published_port_and_rm_releases_the_address(podman: Podman) -> None:
    web = podman.run("published", "httpd", "-f", "-p", "80", "-h", "/www", ports=("8080:80",))
    client = podman.run("caller", "sleep", "3600")
    gateway = f"{SUBNET_PREFIX}1"
    from_container = podman("exec", "caller", "wget", "-qO-", f"http://{gateway}:8080/").stdout
    assert from_container == PAGE
    from_node = in_netns(NODE, "curl", "-s", "-m", "3", "http://127.0.0.1:8080/").stdout
    assert from_node == PAGE
    assert web in podman.leases()
    podman("rm", "--force", "--time", "0", "published")
    assert web not in podman.leases() and client in podman.leases()
    assert "8080" not in in_netns(NODE, "nft", "list", "table", "inet", "podnet-portmap").stdout
    podman("rm", "--force", "--time", "0", "caller")
    assert podman.leases() == []
