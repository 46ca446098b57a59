"""What a running lab remembers about itself, under /run/podnet/labs/<name>/.

The record is written before the first namespace is made, so a lab that crashed
half-way up can still be found and torn down. /run is emptied at boot, as are
namespaces, so the two never disagree for long.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from podnet.kernel import netns
from podnet.lab import names
from podnet.store.location import etcd_location
from podnet.store.tls import TlsFiles


def labs_dir() -> Path:
    """Where lab records live; PODNET_RUN_DIR moves it (read at each call, so a
    test or a second podnet can point it elsewhere after import)."""
    return Path(os.environ.get("PODNET_RUN_DIR", "/run/podnet")) / "labs"


@dataclass
class LabRecord:
    name: str
    kind: str  # "Cluster" or "Topology"
    source: str
    members: dict[str, str] = field(default_factory=dict)  # exec target -> namespace
    etcd: list[str] = field(default_factory=list)  # "ip:port" of the lab's etcd members, when it has them
    etcd_namespace: str = ""  # where, from outside the lab, they are reached from
    etcd_tls: bool = False  # whether they ask for client certificates (the lab's CA's, in its pki/)
    apiserver: str = ""  # where, on the machine's 127.0.0.1, its Kubernetes API answers ("127.0.0.1:PORT")

    @property
    def directory(self) -> Path:
        return labs_dir() / self.name

    @property
    def store_path(self) -> Path:
        return self.directory / "store.db"

    @property
    def store(self) -> str:
        """The cluster's store, as seen from outside the lab (the CLI, `lab up`)."""
        if not self.etcd:
            return str(self.store_path)
        return etcd_location(self.etcd, str(netns.path(self.etcd_namespace)), self.client_tls)

    @property
    def store_inside(self) -> str:
        """The same store, as the lab's agents and pods reach it."""
        return etcd_location(self.etcd, tls=self.client_tls) if self.etcd else str(self.store_path)

    @property
    def pki(self) -> Path:
        return self.directory / "pki"

    @property
    def client_tls(self) -> TlsFiles | None:
        """The certificate podnet's processes present to the lab's etcd."""
        if not self.etcd_tls:
            return None
        return TlsFiles(str(self.pki / "ca.crt"), str(self.pki / "podnet.crt"), str(self.pki / "podnet.key"))

    def log_path(self, name: str) -> Path:
        return self.directory / "logs" / f"{name}.log"

    def save(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / "lab.json.tmp"
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(self.directory / "lab.json")

    def remove(self) -> None:
        forget(self.name)


def forget(name: str) -> None:
    """Remove a lab's record, whether or not it is readable."""
    shutil.rmtree(labs_dir() / name, ignore_errors=True)


def load(name: str) -> LabRecord | None:
    try:
        data = json.loads((labs_dir() / name / "lab.json").read_text())
    except (OSError, ValueError):
        return None
    return LabRecord(**data)


def recorded_names() -> list[str]:
    """The labs of this process's scope (outside a scope, every lab)."""
    directory = labs_dir()
    return sorted(name for name in os.listdir(directory) if names.in_scope(name)) if directory.is_dir() else []


def running() -> list[LabRecord]:
    return [record for name in recorded_names() if (record := load(name))]
