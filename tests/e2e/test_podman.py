"""podman as the runtime: a real container engine calls podnet's plugins.

podman runs inside a node namespace (nsenter --net), with runc, cgroupfs and its
CNI backend, using its own storage, config and network directories, so nothing
of the machine's container setup is read or changed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from podnet.cni.install import install
from podnet.kernel import netns
from tests.helpers import in_netns

NODE = "pn-podman.node"
IMAGE = "localhost/busybox-podnet"
SUBNET_PREFIX = "10.89.0."


@dataclass
class Podman:
    work: Path

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = ["nsenter", f"--net=/run/netns/{NODE}", "--", "podman", "--root", str(self.work / "storage"),
                "--runroot", str(self.work / "runroot"), "--storage-driver", "vfs", *args]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120,
                              env={**os.environ, "CONTAINERS_CONF": str(self.work / "containers.conf")})
        if check and proc.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)}: {proc.stderr}")
        return proc

    def run(self, name: str, *command: str, ports: tuple[str, ...] = ()) -> str:
        published = [arg for port in ports for arg in ("-p", port)]
        # This sandbox may not raise rlimits, and podman raises them by default.
        self("run", "-d", "--name", name, "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096",
             *published, IMAGE, *command)
        return self("inspect", name, "--format", "{{.NetworkSettings.Networks.podnet.IPAddress}}").stdout.strip()

    def leases(self) -> list[str]:
        directory = self.work / "ipam" / "podnet"
        return sorted(e.name for e in directory.iterdir() if e.name[0].isdigit()) if directory.is_dir() else []


def _image(work: Path) -> Path:
    """A busybox root filesystem made here, for `podman import`: no registry needed."""
    rootfs = work / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    (rootfs / "www").mkdir()
    shutil.copy("/bin/busybox", rootfs / "bin" / "busybox")
    for applet in ("sh", "ip", "ping", "nc", "httpd", "wget", "sleep", "cat"):
        (rootfs / "bin" / applet).symlink_to("busybox")
    (rootfs / "www" / "index.html").write_text("hello from a podman container\n")
    tarball = work / "busybox.tar"
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tarball), "."], check=True)
    return tarball


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podman]:
    for tool in ("podman", "runc"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed")
    if not Path("/bin/busybox").exists():
        pytest.skip("busybox-static is not installed")
    work = tmp_path_factory.mktemp("podman")
    plugin_dir, conf_dir = work / "bin", work / "net.d"
    install(plugin_dir)
    conf_dir.mkdir()
    (conf_dir / "podnet.conflist").write_text(f"""{{"cniVersion": "1.0.0", "name": "podnet", "plugins": [
 {{"type": "podnet-bridge", "bridge": "pn-podman0", "isGateway": true, "isDefaultGateway": true,
   "ipMasq": true, "hairpinMode": true,
   "ipam": {{"type": "podnet-host-local", "ranges": [[{{"subnet": "{SUBNET_PREFIX}0/24"}}]], "dataDir": "{work / 'ipam'}"}}}},
 {{"type": "podnet-portmap", "capabilities": {{"portMappings": true}}, "stateDir": "{work / 'portmap'}"}}]}}""")
    (work / "containers.conf").write_text(f"""[network]
network_backend = "cni"
cni_plugin_dirs = ["{plugin_dir}"]
network_config_dir = "{conf_dir}"
default_network = "podnet"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
""")
    netns.create(NODE)
    agent = subprocess.Popen(netns.exec_argv(NODE, [sys.executable, "-m", "podnet", "cni", "serve"]),
                             stdout=open(work / "agent.log", "w"), stderr=subprocess.STDOUT)
    engine = Podman(work)
    try:
        socket = Path("/run/podnet/agents") / f"net-{os.stat(netns.path(NODE)).st_ino}.sock"
        deadline = time.monotonic() + 10
        while not socket.exists():
            assert time.monotonic() < deadline, "the agent did not start"
            time.sleep(0.05)
        engine("import", str(_image(work)), IMAGE)
        yield engine
    finally:
        engine("rm", "--all", "--force", "--time", "0", check=False)
        engine("rmi", "--all", "--force", check=False)
        agent.terminate()
        agent.wait(timeout=10)
        netns.kill_processes_in([NODE])
        netns.delete(NODE)
        leftover = [line for line in Path("/proc/mounts").read_text().splitlines() if str(work) in line]
        assert not leftover, leftover


@pytest.mark.slow
def test_containers_get_addresses_and_reach_each_other(podman: Podman) -> None:
    web = podman.run("web", "httpd", "-f", "-p", "80", "-h", "/www")
    client = podman.run("client", "sleep", "3600")
    assert web.startswith(SUBNET_PREFIX) and client.startswith(SUBNET_PREFIX) and web != client
    assert sorted(podman.leases()) == sorted([web, client])
    page = podman("exec", "client", "wget", "-qO-", f"http://{web}/").stdout
    assert page == "hello from a podman container\n"
    podman("rm", "--force", "--time", "0", "web", "client")


@pytest.mark.slow
def test_published_port_and_rm_releases_the_address(podman: Podman) -> None:
    web = podman.run("published", "httpd", "-f", "-p", "80", "-h", "/www", ports=("8080:80",))
    client = podman.run("caller", "sleep", "3600")
    gateway = f"{SUBNET_PREFIX}1"
    from_container = podman("exec", "caller", "wget", "-qO-", f"http://{gateway}:8080/").stdout
    assert from_container == "hello from a podman container\n"
    from_node = in_netns(NODE, "curl", "-s", "-m", "3", "http://127.0.0.1:8080/").stdout
    assert from_node == "hello from a podman container\n"
    assert web in podman.leases()
    podman("rm", "--force", "--time", "0", "published")
    assert web not in podman.leases() and client in podman.leases()
    assert "8080" not in in_netns(NODE, "nft", "list", "table", "inet", "podnet-portmap").stdout
    podman("rm", "--force", "--time", "0", "caller")
    assert podman.leases() == []
