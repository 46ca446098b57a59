"""What `podnet node join` writes onto a machine, computed as a value: the CNI
conflist the runtime reads, the systemd units that run podnet, and the record
`leave` and `status` read back. Every path is under the root given, and so is
every path the files name, so a scratch tree is a whole machine's worth."""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from podnet.api.cluster import ClusterConfig
from podnet.model.families import family_of, host_port
from podnet.network.node import POD_BRIDGE, pod_mtu
from podnet.store.tls import TlsFiles

CONFLIST = "etc/cni/net.d/10-podnet.conflist"
PLUGIN_DIR = "opt/cni/bin"
UNIT_DIR = "etc/systemd/system"
AGENT_UNIT = "podnet-agent.service"
CONTROLLER_UNIT = "podnet-controller.service"
APISERVER_UNIT = "podnet-apiserver.service"
API_PORT = 6443
PKI_DIR = "etc/podnet/pki"  # the API server's certificate, and the admin's
KUBECONFIG = "etc/podnet/admin.kubeconfig"
RECORD = "var/lib/podnet/node.json"
IPAM_DIR = "var/lib/cni/networks"  # host-local's own default, as the reference plugin keeps it
PORTMAP_DIR = "var/lib/podnet/portmap"
NETWORK_NAME = "podnet"
ALLOW_ROOT = "PODNET_ALLOW_ROOT_NETNS=1"  # in the agent's unit, and nowhere else


@dataclass(frozen=True)
class Joining:
    """One machine joining: who it is, where the cluster is, what it got."""

    root: Path
    name: str
    addresses: tuple[str, ...]  # on the underlay, one per family, the primary first
    store: str  # etcd://HOST:PORT[,HOST:PORT...]
    tls: TlsFiles | None
    cluster: ClusterConfig
    pod_cidrs: tuple[str, ...]  # a leased subnet per family of the cluster
    control_plane: bool = False
    apiserver: bool = False  # a control plane given the CA's key serves the Kubernetes API (machine/apiserver.py)

    @property
    def address(self) -> str:
        return self.addresses[0]

    @property
    def pod_cidr(self) -> str:
        return self.pod_cidrs[0]

    def path(self, relative: str) -> Path:
        return self.root / relative


def conflist(joining: Joining) -> dict[str, object]:
    """bridge with host-local over the node's leased subnets (a range set per
    family, the primary first), then portmap: the
    same chain a lab node's runtime gets. CNI 1.0.0, since runtimes' libcni
    (Debian's podman's among them) does not all take 1.1.0 results yet."""
    return {
        "cniVersion": "1.0.0",
        "name": NETWORK_NAME,
        "plugins": [
            {"type": "podnet-bridge", "bridge": POD_BRIDGE, "isGateway": True, "isDefaultGateway": True,
             "hairpinMode": True, "mtu": pod_mtu(joining.cluster.backend, underlay_family=family_of(joining.address)),
             "ipam": {"type": "podnet-host-local", "ranges": [[{"subnet": cidr}] for cidr in joining.pod_cidrs],
                      "dataDir": str(joining.path(IPAM_DIR))}},
            {"type": "podnet-portmap", "capabilities": {"portMappings": True},
             "stateDir": str(joining.path(PORTMAP_DIR))},
        ],
    }


def store_flags(joining: Joining) -> list[str]:
    flags = ["--store", joining.store]
    if joining.tls is not None:
        flags += ["--etcd-cafile", joining.tls.cafile, "--etcd-certfile", joining.tls.certfile,
                  "--etcd-keyfile", joining.tls.keyfile]
    return flags


def agent_argv(joining: Joining) -> list[str]:
    return [sys.executable, "-m", "podnet", "agent", "--node", joining.name, *store_flags(joining),
            "--cluster-cidr", joining.cluster.pod_subnet, "--backend", joining.cluster.backend,
            "--proxy-mode", joining.cluster.proxy_mode, "--iptables-backend", joining.cluster.iptables_backend]


def controller_argv(joining: Joining) -> list[str]:
    return [sys.executable, "-m", "podnet", "controller", *store_flags(joining)]


def apiserver_argv(joining: Joining) -> list[str]:
    """On the node's address and its own 127.0.0.1, with the certificates join
    issued (machine/apiserver.py); users are the cluster CA's certificates."""
    from podnet.lab.apiserver import kubelet_client_flags

    assert joining.tls is not None
    pki = joining.path(PKI_DIR)
    return [sys.executable, "-m", "podnet", "apiserver", *store_flags(joining),
            *(flag for address in joining.addresses for flag in ("--listen", host_port(address, API_PORT))),
            "--listen", f"127.0.0.1:{API_PORT}",
            "--tls-cert-file", str(pki / "apiserver.crt"), "--tls-private-key-file", str(pki / "apiserver.key"),
            "--client-ca-file", joining.tls.cafile, *kubelet_client_flags(pki, Path(joining.tls.cafile))]


def unit(description: str, argv: list[str], environment: tuple[str, ...] = ()) -> str:
    lines = ["[Unit]", f"Description={description}", "Wants=network-online.target",
             "After=network-online.target", "", "[Service]"]
    lines += [f"Environment={e}" for e in environment]
    lines += [f"ExecStart={shlex.join(argv)}", "Restart=always", "RestartSec=2", "",
              "[Install]", "WantedBy=multi-user.target", ""]
    return "\n".join(lines)


def unit_names(control_plane: bool, apiserver: bool = False) -> list[str]:
    return [AGENT_UNIT, *([CONTROLLER_UNIT] if control_plane else []), *([APISERVER_UNIT] if apiserver else [])]


def units(joining: Joining) -> dict[str, str]:
    """Unit file name -> text. Only the agent changes the machine's network, so
    only its unit may touch the root namespace."""
    written = {AGENT_UNIT: unit(f"podnet node agent (node {joining.name})", agent_argv(joining), (ALLOW_ROOT,))}
    if joining.control_plane:
        written[CONTROLLER_UNIT] = unit("podnet control plane", controller_argv(joining))
    if joining.apiserver:
        written[APISERVER_UNIT] = unit("podnet Kubernetes API server", apiserver_argv(joining))
    return written


def rendered(joining: Joining) -> dict[Path, str]:
    """Every file join writes besides the plugins, by path."""
    files = {joining.path(CONFLIST): json.dumps(conflist(joining), indent=2) + "\n"}
    for name, text in units(joining).items():
        files[joining.path(f"{UNIT_DIR}/{name}")] = text
    return files


def record(joining: Joining, written: list[Path], directories: list[Path]) -> str:
    """What leave and status read back: the node, its store, and what was written."""
    tls = joining.tls
    return json.dumps({"name": joining.name, "address": joining.address, "addresses": list(joining.addresses),
                       "store": joining.store,
                       "tls": [tls.cafile, tls.certfile, tls.keyfile] if tls else None, "podCIDR": joining.pod_cidr,
                       "podCIDRs": list(joining.pod_cidrs),
                       "controlPlane": joining.control_plane, "apiServer": joining.apiserver,
                       "files": [str(p) for p in written], "directories": [str(d) for d in directories]},
                      indent=2) + "\n"


def exec_start(unit_text: str) -> tuple[list[str], dict[str, str]]:
    """A unit's command and environment, as systemd would run them."""
    argv: list[str] = []
    environment: dict[str, str] = {}
    for line in unit_text.splitlines():
        key, _, value = line.partition("=")
        if key == "ExecStart":
            argv = shlex.split(value)
        elif key == "Environment":
            name, _, setting = value.partition("=")
            environment[name] = setting
    return argv, environment
