"""A running cluster lab, as the commands and the web view reach it: its record,
its Kubernetes API, its store, and every node's flows.

`podnet get`, `apply`, `trace`, `policy`, `observe` and `ui` all start here, so a
lab is found, and a wrong name refused, in one way. The kubectl verbs go through
the lab's API server, with the credentials its kubeconfig carries, so podnet's
verbs and kubectl meet one front door.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from podnet.apiserver.client import ApiClient, Endpoint
from podnet.errors import LabError
from podnet.lab import state
from podnet.lab.names import member_namespace
from podnet.lab.state import LabRecord
from podnet.model.endpointslice import EndpointSlice
from podnet.model.node import Node
from podnet.model.pod import Pod
from podnet.model.service import Service
from podnet.store import resources
from podnet.store.base import Store
from podnet.store.location import open_store

if TYPE_CHECKING:  # imported when flows are asked for: get, apply and trace do without it
    from podnet.observe.client import Merger


def cluster_record(lab_name: str | None) -> LabRecord:
    """The cluster lab named, or the only one up."""
    running = state.running()
    clusters = [r for r in running if r.kind == "Cluster" and (lab_name is None or r.name == lab_name)]
    if not clusters:
        other = next((r for r in running if r.name == lab_name), None)
        if other is not None:
            raise LabError(f"{lab_name} is a {other.kind} lab, with no cluster to read: give a cluster lab")
        raise LabError(f"no cluster lab named {lab_name} is up" if lab_name else "no cluster lab is up")
    if len(clusters) > 1:
        raise LabError(f"several cluster labs are up ({', '.join(r.name for r in clusters)}); choose one with --lab")
    return clusters[0]


def api_endpoint(record: LabRecord, user: str = "admin") -> Endpoint:
    """The lab's API server, reached as its kubeconfig for `user` reaches it
    (the same certificate, read from the lab's PKI directory)."""
    if not record.apiserver:
        raise LabError(f"lab {record.name} has no API server (an older podnet brought it up): "
                       f"bring it down and up again")
    pki = record.pki
    return Endpoint(record.apiserver, str(pki / "ca.crt"), str(pki / f"{user}.crt"), str(pki / f"{user}.key"))


@contextmanager
def cluster_api(lab_name: str | None) -> Iterator[ApiClient]:
    """A client of the API of the cluster lab named (or of the only one up), as its admin."""
    client = ApiClient(api_endpoint(cluster_record(lab_name)))
    try:
        yield client
    finally:
        client.close()


@contextmanager
def cluster_store(lab_name: str | None) -> Iterator[Store]:
    """The store of the cluster lab named (or of the only one up), closed after use."""
    store = open_store(cluster_record(lab_name).store)
    try:
        yield store
    finally:
        store.close()


def read_cluster(record: LabRecord) -> tuple[list[Node], list[Pod], list[Service], list[EndpointSlice]]:
    store = open_store(record.store)
    try:
        return (resources.list_kind(store, Node)[0], resources.list_kind(store, Pod)[0],
                resources.list_kind(store, Service)[0], resources.list_kind(store, EndpointSlice)[0])
    finally:
        store.close()


def flow_merger(lab_name: str | None) -> Merger:
    """Every node of the cluster lab named (or of the only one up), asked for its flows."""
    from podnet.observe.client import Merger

    record = cluster_record(lab_name)
    with cluster_store(lab_name) as store:
        nodes = [n.metadata.name for n in resources.list_kind(store, Node)[0]]
    return Merger({node: member_namespace(record.name, node) for node in nodes})
