"""ClusterIPs and node ports come from the store, and never twice."""

from __future__ import annotations

import ipaddress
import threading
from pathlib import Path

import pytest

from podnet.api import services as service_addresses
from podnet.lab.cluster import cluster_config
from podnet.lab.spec import parse_lab
from podnet.store.allocator import AllocationError, cluster_ips
from podnet.store.sqlite import SqliteStore


def test_services_get_addresses_and_ports(tmp_path: Path) -> None:
    services = [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": n}, "spec": {"ports": [{"port": 80}], **extra}}
                for n, extra in (("a", {}), ("b", {"clusterIP": "10.96.0.2"}), ("c", {"type": "NodePort"}),
                                 ("d", {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30000}]}),
                                 ("h", {"clusterIP": "None"}))]
    spec = parse_lab([{"kind": "Cluster", "metadata": {"name": "t"}, "nodes": [{"name": "n"}], "workloads": services}])
    store = SqliteStore(tmp_path / "store.db")
    got = service_addresses.allocate(store, cluster_config(spec), spec.services)  # type: ignore[arg-type,union-attr]
    assert [(s.metadata.name, s.cluster_ip) for s in got] == [
        ("a", "10.96.0.3"), ("b", "10.96.0.2"), ("c", "10.96.0.4"), ("d", "10.96.0.5"), ("h", "None")]
    assert [p.node_port for s in got for p in s.ports] == [None, None, 30001, 30000, None]


def test_an_address_is_never_handed_out_twice(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    SqliteStore(path).close()
    got: list[str] = []

    def allocate(owner: int) -> None:
        store = SqliteStore(path)  # each its own connection, as separate processes would be
        pool = cluster_ips(store, ipaddress.ip_network("10.96.0.0/24"), (1, 10))
        got.extend(pool.allocate(f"svc{owner}-{i}") for i in range(5))
        store.close()

    threads = [threading.Thread(target=allocate, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(got) == 40 and len(set(got)) == 40
    assert not {"10.96.0.1", "10.96.0.10"} & set(got)


def test_claiming_a_taken_address_names_its_owner(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "store.db")
    pool = cluster_ips(store, ipaddress.ip_network("10.96.0.0/24"), ())
    pool.claim("10.96.0.7", "default/a")
    pool.claim("10.96.0.7", "default/a")  # the same owner again is fine
    with pytest.raises(AllocationError, match="10.96.0.7 is already allocated to default/a"):
        pool.claim("10.96.0.7", "default/b")
    pool.release("10.96.0.7")
    pool.claim("10.96.0.7", "default/b")
