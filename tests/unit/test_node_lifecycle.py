"""Heartbeats and the node lifecycle controller over a real SQLite store: a node
whose Lease lapses turns NotReady and its pods not ready (so their endpoints
leave), and it comes back Ready when the heartbeats do."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from podnet.agent.heartbeat import Heartbeat
from podnet.controller.manager import ControlPlane
from podnet.model.endpointslice import EndpointSlice
from podnet.model.lease import Lease
from podnet.model.manifest import parse_resource
from podnet.model.meta import ObjectMeta
from podnet.model.node import Node
from podnet.model.pod import Pod
from podnet.store import resources
from podnet.store.sqlite import SqliteStore


@pytest.fixture
def store(store: SqliteStore) -> Iterator[SqliteStore]:
    """Two nodes, a service, and a ready pod on each node."""
    backend = store
    for name in ("n1", "n2"):
        resources.put(backend, Node(ObjectMeta(name, ""), internal_ips=("172.18.0.2",)))
    resources.put(backend, parse_resource({"kind": "Service", "metadata": {"name": "web"}, "spec": {
        "selector": {"app": "web"}, "clusterIP": "10.96.0.2", "ports": [{"port": 80}]}}))
    for name, node in (("a", "n1"), ("b", "n2")):
        resources.put(backend, parse_resource({
            "kind": "Pod", "metadata": {"name": name, "labels": {"app": "web"}}, "spec": {"nodeName": node},
            "status": {"podIP": f"10.244.0.{ord(name)}", "conditions": [{"type": "Ready", "status": "True"}]}}))
    yield backend


def ready_endpoints(store: SqliteStore) -> set[str]:
    return {e.pod or "" for s in resources.list_kind(store, EndpointSlice)[0] for e in s.endpoints if e.ready}


def test_a_lapsed_lease_makes_the_node_not_ready_and_its_pods_leave(store: SqliteStore) -> None:
    plane = ControlPlane(store, node_grace=5.0)
    for name in ("n1", "n2"):
        Heartbeat(store, name).beat()
    plane.reconcile()
    plane.reconcile()
    assert ready_endpoints(store) == {"a", "b"}
    resources.put(store, Lease.of_node("n2", time.time() - 6, 5))  # n2's agent stopped 6 s ago
    plane.reconcile()
    plane.reconcile()  # the slices follow the pods' readiness on the next pass
    nodes = {n.metadata.name: n.ready for n in resources.list_kind(store, Node)[0]}
    assert nodes == {"n1": True, "n2": False}
    pod_b = resources.get(store, Pod, "default", "b")
    assert pod_b is not None and not pod_b.ready and pod_b.pod_ip  # not ready, still there
    assert ready_endpoints(store) == {"a"}
    Heartbeat(store, "n2").beat()
    plane.reconcile()
    assert all(n.ready for n in resources.list_kind(store, Node)[0])


def test_a_node_never_heard_from_gets_the_grace_period(store: SqliteStore) -> None:
    plane = ControlPlane(store, node_grace=0.2)
    plane.reconcile()
    assert all(n.ready for n in resources.list_kind(store, Node)[0])
    time.sleep(0.3)
    plane.reconcile()
    assert not any(n.ready for n in resources.list_kind(store, Node)[0])


def test_the_agent_publishes_its_restarts(store: SqliteStore) -> None:
    Heartbeat(store, "n1").publish_restarts(3)
    node = resources.get(store, Node, "", "n1")
    assert node is not None and node.agent_restarts == 3
    lease = resources.get(store, Lease, "kube-node-lease", "n1")
    assert lease is None  # a heartbeat writes the lease; publishing restarts does not


def test_pods_bound_to_a_node_that_is_gone_are_collected(store: SqliteStore) -> None:
    resources.delete(store, Node(ObjectMeta("n2", "")))
    ControlPlane(store).reconcile()
    assert resources.get(store, Pod, "default", "b") is None  # its kubelet is gone with the node
    assert resources.get(store, Pod, "default", "a") is not None
