"""podman as a node's container runtime in tests: run inside a node namespace
(nsenter --net), with runc, cgroupfs and its CNI backend, using its own storage,
config and network directories, so nothing of the machine's container setup is
read or changed."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

IMAGE = "localhost/busybox-podnet"
PAGE = "hello from a podman container\n"


def require_podman() -> None:
    for tool in ("podman", "runc"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed")
    if not Path("/bin/busybox").exists():
        pytest.skip("busybox-static is not installed")


@dataclass
class Podman:
    work: Path
    node: str  # the node namespace podman runs in

    @classmethod
    def configured(cls, work: Path, node: str, plugin_dir: Path, conf_dir: Path) -> Podman:
        """podman's containers.conf: the CNI backend over these plugins and conflists."""
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
        return cls(work, node)

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = ["nsenter", f"--net=/run/netns/{self.node}", "--", "podman", "--root", str(self.work / "storage"),
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


def busybox_image(work: Path) -> Path:
    """A busybox root filesystem made here, for `podman import`: no registry needed."""
    rootfs = work / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    (rootfs / "www").mkdir()
    shutil.copy("/bin/busybox", rootfs / "bin" / "busybox")
    for applet in ("sh", "ip", "ping", "nc", "httpd", "wget", "sleep", "cat"):
        (rootfs / "bin" / applet).symlink_to("busybox")
    (rootfs / "www" / "index.html").write_text(PAGE)
    tarball = work / "busybox.tar"
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tarball), "."], check=True)
    return tarball


def remove_all(engine: Podman, work: Path) -> None:
    """Every container and image, and no mount left behind."""
    engine("rm", "--all", "--force", "--time", "0", check=False)
    engine("rmi", "--all", "--force", check=False)
    leftover = [line for line in Path("/proc/mounts").read_text().splitlines() if str(work) in line]
    assert not leftover, leftover
