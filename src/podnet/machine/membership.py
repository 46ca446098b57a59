"""Joining a real machine to a cluster, and leaving it.

join checks everything it can before changing anything (the store answers, it
holds a cluster, the name is free, the root is writable), then leases the node's
pod subnet and registers the Node, then writes its files; a failure on the way
gives the lease back and removes what was written. It starts nothing: systemd
does, when the operator says so.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from podnet.api import cluster
from podnet.cni.install import FALLBACK_DIR, install
from podnet.errors import ManifestError, PodnetError
from podnet.kernel import iptables
from podnet.machine import apiserver, files
from podnet.machine.files import Joining
from podnet.model.fields import check_dns_label
from podnet.model.meta import ObjectMeta
from podnet.model.node import HOSTNAME_LABEL, Node
from podnet.network import backends
from podnet.model.families import families_of, family_of, split_cidrs
from podnet.network.leases import NodeLeases
from podnet.proxy import modes as proxy_modes
from podnet.store import resources
from podnet.store.base import Store
from podnet.store.location import ETCD_SCHEME, open_store, with_tls
from podnet.store.tls import TlsFiles

DEFAULT_POD_SUBNET = "10.244.0.0/16"
DEFAULT_SERVICE_SUBNET = "10.96.0.0/12"


class JoinError(PodnetError):
    pass


@dataclass(frozen=True)
class Request:
    """What the operator asked for on join's command line."""

    store: str
    name: str
    root: Path = Path("/")
    backend: str | None = None
    address: str | None = None  # one per family, comma-separated, as kubelet's --node-ip
    tls: TlsFiles | None = None
    control_plane: bool = False
    pod_subnet: str = DEFAULT_POD_SUBNET  # one CIDR per family, comma-separated, the primary first
    service_subnet: str = DEFAULT_SERVICE_SUBNET
    ca_keyfile: str | None = None  # the cluster CA's key: a control plane with it serves the Kubernetes API


def open_cluster_store(location: str, tls: TlsFiles | None) -> Store:
    if not location.startswith(ETCD_SCHEME):
        raise JoinError(f"{location}: a real node's store is etcd (etcd://HOST:PORT[,HOST:PORT...])")
    return open_store(with_tls(location, tls))


def source_address(location: str) -> str:
    """This machine's address towards the store's first member, as flannel picks
    its public IP from the route it would use. A UDP connect sends nothing."""
    host = urlsplit(location).netloc.split(",")[0].rpartition(":")[0].strip("[]")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((host, 9))
        except OSError as err:
            raise JoinError(f"no route to the store's member {host} ({err.strerror}); give --address") from None
        return str(probe.getsockname()[0])


def _settings(store: Store, request: Request, founding: bool) -> cluster.ClusterConfig:
    """The cluster's settings; the first control-plane node writes them."""
    if founding:
        if not request.control_plane:
            raise JoinError("the store holds no cluster yet: join the first node with --control-plane")
        _check_subnets(request)
        settings = cluster.ClusterConfig(request.pod_subnet, request.service_subnet,
                                         backend=request.backend or backends.ACROSS_SUBNETS,
                                         proxy_mode=proxy_modes.DEFAULT, iptables_backend=iptables.DEFAULT_BACKEND)
        cluster.save(store, settings)
        cluster.bootstrap(store)
        return settings
    settings = cluster.load(store)
    if request.backend and request.backend != settings.backend:
        raise JoinError(f"the cluster's backend is {settings.backend}; a node on {request.backend} "
                        "could not reach the others")
    return settings


def _check_subnets(request: Request) -> None:
    """A CIDR per family in each, the same families in the same order (the first is the primary)."""
    families = []
    for flag, text in (("--pod-subnet", request.pod_subnet), ("--service-subnet", request.service_subnet)):
        found = []
        for cidr in split_cidrs(text):
            try:
                ipaddress.ip_network(cidr)
            except ValueError as err:
                raise JoinError(f"{flag} {cidr!r} is not a network in CIDR form ({err})") from None
            found.append(family_of(cidr))
        if not found or len(set(found)) != len(found):
            raise JoinError(f"{flag} {text!r}: give one CIDR per family, comma-separated")
        families.append(found)
    if families[0] != families[1]:
        raise JoinError(f"--pod-subnet is {'/'.join(families[0])} and --service-subnet is {'/'.join(families[1])}: "
                        "give both the same families in the same order")


def _check(request: Request) -> tuple[str, ...]:
    try:
        check_dns_label(request.name, "--name")
    except ManifestError as err:
        raise JoinError(str(err)) from None
    addresses = split_cidrs(request.address) if request.address else (source_address(request.store),)
    for address in addresses:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise JoinError(f"--address {address!r} is not an IP address") from None
    if len(addresses) > 2 or len(families_of(addresses)) != len(addresses):
        raise JoinError(f"--address {request.address!r}: give at most one address per family, comma-separated")
    if request.tls is not None:
        request.tls.check()
    if request.ca_keyfile is not None:
        if not request.control_plane or request.tls is None:
            raise JoinError("--ca-keyfile is for a control plane (--control-plane) over etcd with TLS "
                            "(--etcd-cafile, the CA it signs for)")
        from podnet.lab.certificates import load_authority

        try:
            load_authority(Path(request.tls.cafile), Path(request.ca_keyfile))
        except ValueError as err:
            raise JoinError(str(err)) from None
    if not os.access(_existing_parent(request.root), os.W_OK):
        raise JoinError(f"cannot write under {request.root}")
    return addresses


def _existing_parent(path: Path) -> Path:
    while not path.exists():
        path = path.parent
    return path


def join(request: Request) -> tuple[Joining, list[Path]]:
    """Lease, register, write. Returns what was written."""
    addresses = _check(request)
    address = addresses[0]
    store = open_cluster_store(request.store, request.tls)
    try:
        founding = store.get(cluster.KEY) is None  # this join writes the cluster's settings
        settings = _settings(store, request, founding)
        existing = resources.get(store, Node, "", request.name)
        if isinstance(existing, Node) and existing.internal_ip != address:
            raise JoinError(f"node {request.name} is already in the cluster at {existing.internal_ip}: "
                            f"choose another --name, or run `podnet node leave` there first")
        leases = NodeLeases(store, [ipaddress.ip_network(s) for s in settings.pod_subnets], settings.node_mask)
        pod_cidrs = leases.acquire(request.name, address)
        joining = Joining(request.root, request.name, addresses, request.store, request.tls, settings, pod_cidrs,
                          request.control_plane, apiserver=request.ca_keyfile is not None)
        rendered = files.rendered(joining)
        plugins = joining.path(files.PLUGIN_DIR)
        record = joining.path(files.RECORD)
        issued = apiserver.paths(joining) if joining.apiserver else []
        made = sorted({d for path in (*rendered, *issued, plugins / FALLBACK_DIR / "x", record)
                       for d in _missing(request.root, path)})  # directories join makes, for leave to take back
        written: list[Path] = []
        try:
            resources.put(store, Node(ObjectMeta(request.name, namespace="", labels={HOSTNAME_LABEL: request.name}),
                                      pod_cidrs, addresses))
            written += install(plugins)
            written += [plugins / FALLBACK_DIR / p.name for p in written]
            for path, text in rendered.items():
                _write(path, text)
                written.append(path)
            if request.ca_keyfile is not None:
                written += issued
                apiserver.issue(joining, request.ca_keyfile)
            _write(record, files.record(joining, written, made))
        except BaseException:
            _remove(written + [record], made)
            if existing is None:
                resources.delete(store, Node(ObjectMeta(request.name, namespace="")))
            leases.release(request.name, pod_cidrs)
            if founding:
                store.delete(cluster.KEY)
            raise
        return joining, written + [record]
    finally:
        store.close()


@dataclass(frozen=True)
class Joined:
    """A node as join recorded it."""

    name: str
    address: str
    store: str
    tls: TlsFiles | None
    pod_cidrs: tuple[str, ...]
    control_plane: bool
    apiserver: bool
    files: tuple[Path, ...]
    directories: tuple[Path, ...]  # the ones join made
    addresses: tuple[str, ...] = ()

    @property
    def pod_cidr(self) -> str:
        return self.pod_cidrs[0]


def joined(root: Path) -> Joined:
    path = root / files.RECORD
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise JoinError(f"{path} does not exist: this machine has not joined a cluster "
                        "(or give the --root it joined with)") from None
    except (OSError, ValueError) as err:
        raise JoinError(f"{path}: {err}") from None
    tls = TlsFiles(*data["tls"]) if data.get("tls") else None
    return Joined(data["name"], data["address"], data["store"], tls, tuple(data.get("podCIDRs") or [data["podCIDR"]]),
                  data.get("controlPlane", False), data.get("apiServer", False), tuple(Path(p) for p in data["files"]),
                  tuple(Path(p) for p in data.get("directories", ())), tuple(data.get("addresses") or [data["address"]]))


def leave(root: Path) -> Joined:
    """The Node and its lease gone from the store, then join's files from the
    machine. The agent should be stopped first: it would put nothing back, but it
    would keep routing for a node the others have forgotten."""
    node = joined(root)
    store = open_cluster_store(node.store, node.tls)
    try:
        settings = cluster.load(store)
        resources.delete(store, Node(ObjectMeta(node.name, namespace="")))
        NodeLeases(store, [ipaddress.ip_network(s) for s in settings.pod_subnets], settings.node_mask).release(
            node.name, node.pod_cidrs)
    finally:
        store.close()
    _remove([*node.files, root / files.RECORD], list(node.directories))
    return node


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _missing(root: Path, path: Path) -> list[Path]:
    return [d for d in path.parents if d.is_relative_to(root) and not d.exists()]


def _remove(paths: list[Path], directories: list[Path]) -> None:
    """The files, then the directories join made, if they are left empty."""
    for path in paths:
        path.unlink(missing_ok=True)
    for directory in sorted(directories, key=lambda p: len(p.parts), reverse=True):
        try:
            directory.rmdir()
        except OSError:
            pass  # something else is in it now
