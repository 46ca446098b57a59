"""Node subnet leases: one subnet per node, never two nodes on one, even when
many claim at once (each through its own connection to the store)."""

from __future__ import annotations

import ipaddress
import threading
from pathlib import Path

import pytest

from podnet.network.controller import NetworkController
from podnet.network.leases import LeaseError, SubnetLeases
from podnet.store.sqlite import SqliteStore
from tests.fakes import FakeNodeKernel

POD_SUBNET = ipaddress.ip_network("10.244.0.0/16")


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_node_keeps_its_subnet_and_others_get_theirs(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    leases = SubnetLeases(store, POD_SUBNET, 24)
    first = leases.acquire("n1", "172.18.0.2")
    assert first == "10.244.0.0/24"
    assert leases.acquire("n1", "172.18.0.2") == first  # a restart gets the same one back
    assert leases.acquire("n2", "172.18.0.3") == "10.244.1.0/24"
    assert leases.held() == {"10.244.0.0/24": "n1", "10.244.1.0/24": "n2"}
    leases.release("n1", first)
    assert leases.acquire("n3", "172.18.0.4") == first  # released, so free again
    store.close()


def test_an_expired_lease_can_be_taken_over_and_renewing_keeps_it(tmp_path: Path) -> None:
    store, clock = SqliteStore(tmp_path / "s.db"), Clock()
    leases = SubnetLeases(store, ipaddress.ip_network("10.244.0.0/23"), 24, clock, lease_seconds=60)
    assert leases.acquire("n1", "a") == "10.244.0.0/24"
    assert leases.acquire("n2", "b") == "10.244.1.0/24"
    clock.now += 30
    assert leases.renew("n1", "a", "10.244.0.0/24")
    clock.now += 45  # n1 renewed (expires at 150 s), n2 did not (expired at 60 s)
    assert leases.acquire("n3", "c") == "10.244.1.0/24"
    assert not leases.renew("n2", "b", "10.244.1.0/24")  # n2 lost it
    with pytest.raises(LeaseError, match="no free /24 left"):
        leases.acquire("n4", "d")
    store.close()


def test_many_nodes_joining_at_once_never_share_a_subnet(tmp_path: Path) -> None:
    SqliteStore(tmp_path / "s.db").close()
    got: dict[str, str] = {}
    errors: list[BaseException] = []

    def join(node: str) -> None:
        store = SqliteStore(tmp_path / "s.db")
        try:
            got[node] = SubnetLeases(store, POD_SUBNET, 24).acquire(node, node)
        except BaseException as err:  # reported below
            errors.append(err)
        finally:
            store.close()

    threads = [threading.Thread(target=join, args=(f"n{i}",)) for i in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(got) == 24 and len(set(got.values())) == 24


def test_the_node_agent_renews_its_lease(tmp_path: Path) -> None:
    from podnet.model.meta import ObjectMeta
    from podnet.model.node import Node
    from podnet.network import leases as lease_module

    store = SqliteStore(tmp_path / "s.db")
    clock = Clock()
    cidr = SubnetLeases(store, POD_SUBNET, 24, clock, lease_seconds=60).acquire("n1", "172.18.0.2")
    before = store.get("/registry/subnets/10.244.0.0-24")
    NetworkController(FakeNodeKernel(), store, "n1").renew_lease(Node(ObjectMeta("n1", namespace=""), (cidr,), ("172.18.0.2",)))
    after = store.get("/registry/subnets/10.244.0.0-24")
    assert before is not None and after is not None and after.mod_revision > before.mod_revision
    assert after.value["expires"] > before.value["expires"] + lease_module.LEASE_SECONDS / 2
    store.close()
