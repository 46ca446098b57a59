"""podnet on real machines, played by bare machines on a lab's underlay: `podnet
node join --root` writes a scratch tree, the agent is started exactly as its
unit says (same ExecStart, same environment) inside the machine's namespace,
and podman on two such machines runs containers that talk over VXLAN, with the
lab's etcd (TLS, client certificates) as the store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from podnet.kernel import netns
from podnet.machine import files
from tests.helpers import in_netns, podnet, within
from tests.podman import IMAGE, PAGE, Podman, busybox_image, remove_all, require_podman

LAB = "test_join"
MACHINES = ("m1", "m2")
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # what systemd gives a unit


@dataclass
class Machine:
    name: str
    namespace: str
    root: Path
    agent: subprocess.Popen[bytes] | None = None
    podman: Podman | None = None

    def podnet(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """podnet as the operator runs it on the machine."""
        proc = subprocess.run(netns.exec_argv(self.namespace, [sys.executable, "-m", "podnet", *args]),
                              capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "200"})
        if check and proc.returncode != 0:
            raise AssertionError(f"podnet {' '.join(args)} on {self.name}: {proc.stderr}")
        return proc

    def start_agent(self) -> None:
        """As systemd would: the unit's ExecStart, with its Environment and nothing else of ours."""
        argv, environment = files.exec_start((self.root / files.UNIT_DIR / files.AGENT_UNIT).read_text())
        log = open(self.root / "agent.log", "ab")
        self.agent = subprocess.Popen(["nsenter", f"--net=/run/netns/{self.namespace}", "--", *argv],
                                      env={"PATH": SYSTEMD_PATH, **environment}, stdout=log, stderr=subprocess.STDOUT)

    def stop_agent(self) -> None:
        if self.agent is not None:
            self.agent.terminate()
            self.agent.wait(timeout=10)
            self.agent = None


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Machine]]:
    require_podman()
    work = tmp_path_factory.mktemp("join")
    spec = work / "lab.yaml"
    spec.write_text(yaml.safe_dump({"apiVersion": "podnet.dev/v1alpha1", "kind": "Cluster", "metadata": {"name": LAB},
                                    "store": "etcd", "networking": {"backend": "vxlan"},
                                    "nodes": [{"name": "node1"}]}))
    podnet("lab", "up", str(spec), timeout=120)
    machines = {name: Machine(name, f"pn-{LAB}.{name}", work / name) for name in MACHINES}
    try:
        for machine in machines.values():
            podnet("lab", "node", "add", LAB, machine.name, "--bare")
        yield machines
    finally:
        for machine in machines.values():
            try:
                if machine.podman is not None:
                    remove_all(machine.podman, machine.podman.work)
            finally:
                machine.stop_agent()
        podnet("lab", "down", LAB)


def pki() -> Path:
    """The lab's CA and the client certificate it made for podnet."""
    from podnet.lab.state import load

    record = load(LAB)
    assert record is not None
    return record.pki


def store_flags(ca: Path | None = None, cert: Path | None = None, key: Path | None = None) -> list[str]:
    own = pki()
    return ["--store", "etcd://172.18.0.250:2379,172.18.0.251:2379,172.18.0.252:2379",
            "--etcd-cafile", str(ca or own / "ca.crt"), "--etcd-certfile", str(cert or own / "podnet.crt"),
            "--etcd-keyfile", str(key or own / "podnet.key")]


@pytest.fixture(scope="module")
def joined(lab: dict[str, Machine], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Machine]:
    """Both machines joined, their agents started as their units say, podman on each."""
    for machine in lab.values():
        machine.podnet("node", "join", *store_flags(), "--name", machine.name, "--root", str(machine.root))
        machine.start_agent()
        socket = Path("/run/podnet/agents") / f"net-{os.stat(netns.path(machine.namespace)).st_ino}.sock"
        assert within(10, socket.exists), f"the agent of {machine.name} did not start: see {machine.root}/agent.log"
        work = tmp_path_factory.mktemp(f"podman-{machine.name}")
        machine.podman = Podman.configured(work, machine.namespace, machine.root / files.PLUGIN_DIR,
                                           machine.root / "etc/cni/net.d")
        machine.podman("import", str(busybox_image(work)), IMAGE)
    return lab


def test_join_writes_the_conflist_plugins_and_units(joined: dict[str, Machine]) -> None:
    root = joined["m1"].root
    record = json.loads((root / files.RECORD).read_text())
    conflist = json.loads((root / files.CONFLIST).read_text())
    assert conflist["plugins"][0]["ipam"]["ranges"] == [[{"subnet": record["podCIDR"]}]]
    assert all(os.access(root / files.PLUGIN_DIR / plugin, os.X_OK) for plugin in
               ("podnet-bridge", "podnet-host-local", "podnet-loopback", "podnet-portmap"))
    unit = (root / files.UNIT_DIR / files.AGENT_UNIT).read_text()
    assert "Environment=PODNET_ALLOW_ROOT_NETNS=1" in unit and "--backend vxlan" in unit
    assert not (root / files.UNIT_DIR / files.CONTROLLER_UNIT).exists()  # no --control-plane
    nodes = {n["metadata"]["name"]: n for n in json.loads(podnet("get", "nodes", "--lab", LAB, "-o", "json").stdout)["items"]}
    assert nodes["m1"]["spec"]["podCIDR"] == record["podCIDR"] != nodes["m2"]["spec"]["podCIDR"]


def test_containers_on_two_machines_talk_over_vxlan(joined: dict[str, Machine]) -> None:
    one, two = joined["m1"].podman, joined["m2"].podman
    assert one is not None and two is not None
    web = one.run("web", "httpd", "-f", "-p", "80", "-h", "/www")
    client = two.run("client", "sleep", "3600")
    cidrs = {m.name: json.loads((m.root / files.RECORD).read_text())["podCIDR"] for m in joined.values()}
    assert web.rsplit(".", 1)[0] == cidrs["m1"].rsplit(".", 1)[0] and client.rsplit(".", 1)[0] == cidrs["m2"].rsplit(".", 1)[0]
    page = two("exec", "client", "wget", "-qO-", f"http://{web}/").stdout  # (busybox wget -T crashes here)
    assert page == PAGE
    assert "vxlan" in in_netns(joined["m1"].namespace, "ip", "-d", "link", "show", "podnet.1").stdout
    one("rm", "--force", "--time", "0", "web")
    two("rm", "--force", "--time", "0", "client")


def test_status_shows_the_lease_the_agent_and_the_peers(joined: dict[str, Machine]) -> None:
    out = joined["m1"].podnet("node", "status", "--root", str(joined["m1"].root)).stdout
    m2 = json.loads((joined["m2"].root / files.RECORD).read_text())
    assert "Ready" in out and "answering" in out and "expires in" in out
    peer = next(line for line in out.splitlines() if line.split()[:1] == ["m2"])
    assert m2["podCIDR"] in peer and "podnet.1" in peer  # routed here, through the tunnel


def test_the_store_refuses_clients_without_the_clusters_certificate(joined: dict[str, Machine],
                                                                     tmp_path: Path) -> None:
    from podnet.lab.certificates import authority, issue

    stranger = issue(authority(tmp_path, "another CA"), tmp_path, "client", "client")
    machine = joined["m1"]
    attempts = {
        "no certificate": ["--store", store_flags()[1], "--etcd-cafile", str(pki() / "ca.crt")],
        "another CA's certificate": store_flags(cert=Path(stranger.certfile), key=Path(stranger.keyfile)),
        "plain HTTP": ["--store", store_flags()[1]],
    }
    for what, flags in attempts.items():
        proc = machine.podnet("node", "join", *flags, "--name", "intruder", "--root", str(tmp_path / "root"),
                              check=False)
        assert proc.returncode == 1, what
        *warnings, error = proc.stderr.strip().splitlines()
        assert error.startswith("error: ") and "Traceback" not in proc.stderr, proc.stderr
        assert warnings == ([] if "--etcd-cafile" in flags else [w for w in warnings if "without TLS" in w]), warnings
        assert "refused this client" in error or "speaks TLS" in error, (what, error)
    doubted = machine.podnet("node", "join", *store_flags(ca=Path(stranger.cafile)), "--name", "intruder",
                             "--root", str(tmp_path / "root"), check=False)
    assert doubted.returncode == 1 and "not one the CA file vouches for" in doubted.stderr
    assert not (tmp_path / "root").exists()
    assert "intruder" not in podnet("get", "nodes", "--lab", LAB).stdout


def test_a_taken_name_is_refused_and_nothing_is_written(joined: dict[str, Machine], tmp_path: Path) -> None:
    proc = joined["m2"].podnet("node", "join", *store_flags(), "--name", "m1", "--root", str(tmp_path / "r"),
                               check=False)
    assert proc.returncode == 1 and "already in the cluster" in proc.stderr
    assert not (tmp_path / "r").exists()


def test_leave_removes_what_join_wrote_and_releases_the_lease(joined: dict[str, Machine]) -> None:
    machine = joined["m2"]
    record = json.loads((machine.root / files.RECORD).read_text())
    machine.stop_agent()
    out = machine.podnet("node", "leave", "--root", str(machine.root)).stdout
    assert "released" in out and "systemctl disable --now podnet-agent.service" in out
    assert not any(Path(p).exists() for p in record["files"]) and not (machine.root / files.RECORD).exists()
    # the directories join made went too, where they were left empty (podman keeps its cni.lock in net.d)
    assert not (machine.root / "opt").exists() and not (machine.root / "etc/systemd").exists()
    assert "m2" not in podnet("get", "nodes", "--lab", LAB).stdout
    # the node that stays forgets the route to the one that left
    assert within(5, lambda: record["podCIDR"] not in in_netns(joined["m1"].namespace, "ip", "route").stdout)


def test_a_control_plane_given_the_cas_key_serves_the_kubernetes_api(joined: dict[str, Machine],
                                                                      tmp_path: Path) -> None:
    """Its unit run as systemd would, kubectl on the machine reaches it with the
    admin kubeconfig join wrote, and leave takes certificates and kubeconfig back."""
    machine, root = joined["m2"], tmp_path / "cp"
    machine.stop_agent()  # the machine serves as a control plane only (if the leave test has not run)
    no_key = machine.podnet("node", "join", *store_flags(), "--name", "cp1", "--control-plane", "--ca-keyfile",
                            str(pki() / "podnet.key"), "--root", str(root), check=False)
    assert no_key.returncode == 1 and "is not the key of the CA certificate" in no_key.stderr
    assert not root.exists()
    said = machine.podnet("node", "join", *store_flags(), "--name", "cp1", "--control-plane", "--ca-keyfile",
                          str(pki() / "ca.key"), "--root", str(root)).stdout
    assert "podnet-apiserver.service" in said and f"export KUBECONFIG={root / files.KUBECONFIG}" in said
    argv, environment = files.exec_start((root / files.UNIT_DIR / files.APISERVER_UNIT).read_text())
    with open(tmp_path / "apiserver.log", "wb") as log:
        server = subprocess.Popen(["nsenter", f"--net=/run/netns/{machine.namespace}", "--", *argv],
                                  env={"PATH": SYSTEMD_PATH, **environment}, stdout=log, stderr=subprocess.STDOUT)
    try:
        def nodes() -> str:
            return in_netns(machine.namespace, "env", f"HOME={tmp_path}", "kubectl", "--kubeconfig",
                            str(root / files.KUBECONFIG), "get", "nodes", "-o", "name", check=False).stdout

        assert within(20, lambda: "node/cp1" in nodes()), (tmp_path / "apiserver.log").read_text()
        assert "node/m1" in nodes()
    finally:
        server.terminate()
        server.wait(timeout=10)
    record = json.loads((root / files.RECORD).read_text())
    machine.podnet("node", "leave", "--root", str(root))
    assert str(root / files.KUBECONFIG) in record["files"] and not (root / files.KUBECONFIG).exists()
    assert not (root / files.PKI_DIR).exists() and "cp1" not in podnet("get", "nodes", "--lab", LAB).stdout
