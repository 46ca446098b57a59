"""A whole reconcile of a node agent, on fakes: its controllers take the store's
snapshot to the node's network and service table, repair drift, and one failing
controller does not stop the others."""

from __future__ import annotations

from pathlib import Path

import pytest

from podnet.store.snapshot import Snapshot
from podnet.agent.node_agent import NodeAgent
from podnet.controller.manager import ControlPlane
from podnet.errors import KernelError
from podnet.kernel.nftables.tracer import Packet, Tracer, targets
from podnet.kernel.route import Route
from podnet.model.manifest import parse_resource
from podnet.model.meta import ObjectMeta
from podnet.model.node import Node
from podnet.network.controller import NetworkController
from podnet.network.node import EGRESS_TABLE
from podnet.proxy.proxier import Proxier
from podnet.proxy.ruleset import TABLE as PROXY_TABLE
from podnet.store import resources
from podnet.store.sqlite import SqliteStore
from tests.fakes import FakeNodeKernel

CLUSTER = "10.244.0.0/16"


@pytest.fixture
def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    store = SqliteStore(tmp_path / "store.db")
    for i, name in enumerate(("n1", "n2", "n3")):
        resources.put(store, Node(ObjectMeta(name, namespace=""), (f"10.244.{i}.0/24",), (f"172.18.0.{i + 2}",)))
    resources.put(store, parse_resource({"kind": "Service", "metadata": {"name": "web"}, "spec": {
        "selector": {"app": "web"}, "clusterIP": "10.96.0.2", "ports": [{"port": 80, "targetPort": 8080}]}}))
    for i, node in enumerate(("n2", "n3")):
        resources.put(store, parse_resource({"kind": "Pod", "metadata": {"name": f"web-{i}", "labels": {"app": "web"}},
                                             "spec": {"nodeName": node}, "status": {
                                                 "podIP": f"10.244.{i + 1}.2",
                                                 "conditions": [{"type": "Ready", "status": "True"}]}}))
    ControlPlane(store).reconcile()  # the service's EndpointSlices, which the proxy reads
    yield store
    store.close()


def agent_on(kernel: FakeNodeKernel, store: SqliteStore, backend: str = "host-gw") -> NodeAgent:
    controllers = [NetworkController(kernel, store, "n1", CLUSTER, backend), Proxier(kernel, "n1", CLUSTER)]
    return NodeAgent(store, "n1", controllers)


def test_one_pass_programs_the_node(store: SqliteStore) -> None:
    kernel = FakeNodeKernel()
    agent_on(kernel, store).reconcile()
    assert kernel.links.links == {"cni0": "bridge"}
    assert kernel.links.addresses["cni0"] == {"10.244.0.1/24"}
    assert kernel.links.routes == {Route("10.244.1.0/24", "172.18.0.3"), Route("10.244.2.0/24", "172.18.0.4")}
    assert kernel.sysctls == {"net.ipv4.ip_forward": "1"}
    tracer = Tracer(kernel.nft, frozenset({"172.18.0.2"}))
    assert targets(tracer.trace(Packet("10.244.0.5", "10.96.0.2", "tcp", 80))) == {"10.244.1.2:8080", "10.244.2.2:8080"}
    (leaving,) = tracer.trace(Packet("10.244.0.5", "203.0.113.10", "tcp", 80))
    assert leaving.masqueraded  # egress, in its own table
    (staying,) = tracer.trace(Packet("10.244.0.5", "10.244.1.2", "tcp", 80))
    assert not staying.masqueraded
    assert set(t.name for t in kernel.nft.tables) == {PROXY_TABLE.name, EGRESS_TABLE.name}


def test_a_second_pass_repairs_drift_and_follows_the_store(store: SqliteStore) -> None:
    kernel = FakeNodeKernel()
    agent = agent_on(kernel, store)
    agent.reconcile()
    kernel.links.routes.discard(Route("10.244.1.0/24", "172.18.0.3"))  # deleted by hand
    kernel.links.routes.add(Route("10.99.0.0/24", "172.18.0.99"))  # a stale one of ours
    resources.delete(store, resources.get(store, Node, "", "n3"))  # type: ignore[arg-type]
    agent.reconcile()
    assert kernel.links.routes == {Route("10.244.1.0/24", "172.18.0.3")}


def test_vxlan_programs_a_device_and_its_peers(store: SqliteStore) -> None:
    kernel = FakeNodeKernel()
    agent_on(kernel, store, backend="vxlan").reconcile()
    assert kernel.links.links == {"cni0": "bridge", "podnet.1": "vxlan"}
    assert {n.ip for n in kernel.links.neighbours["podnet.1"]} == {"10.244.1.0", "10.244.2.0"}
    assert {f.dst for f in kernel.links.forwarding["podnet.1"]} == {"172.18.0.3", "172.18.0.4"}
    assert all(r.onlink and r.dev == "podnet.1" for r in kernel.links.routes)


def test_a_failing_controller_does_not_stop_the_others(store: SqliteStore) -> None:
    class Broken:
        name = "broken"

        def sync(self, snapshot: Snapshot) -> None:
            raise KernelError("nft: the kernel said no")

    kernel = FakeNodeKernel()
    agent = NodeAgent(store, "n1", [Broken(), Proxier(kernel, "n1", CLUSTER)])
    assert agent.reconcile() > 0
    assert PROXY_TABLE in kernel.nft.tables


def test_a_node_not_yet_in_the_store_is_waited_for(store: SqliteStore) -> None:
    kernel = FakeNodeKernel()
    NodeAgent(store, "n9", [NetworkController(kernel, store, "n9", CLUSTER)]).reconcile()
    assert kernel.links.links == {} and kernel.nft.tables == {}


def test_readiness_probes_ask_as_kubelet_does() -> None:
    """A TCP connect and an HTTP GET (2xx and 3xx pass) to the pod's address."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from podnet.agent.prober import answers
    from podnet.model.probe import Probe

    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/ok" else 503)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    pod = parse_resource({"kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [
        {"name": "c", "ports": [{"name": "web", "containerPort": port}]}]}, "status": {"podIP": "127.0.0.1"}})
    try:
        assert answers(pod, Probe("tcpSocket", "web"), "pn-unused")  # type: ignore[arg-type]
        assert answers(pod, Probe("httpGet", port, "/ok"), "pn-unused")  # type: ignore[arg-type]
        assert not answers(pod, Probe("httpGet", port, "/broken"), "pn-unused")  # type: ignore[arg-type]
        assert not answers(pod, Probe("tcpSocket", "nope"), "pn-unused")  # type: ignore[arg-type]  # no such port
    finally:
        server.shutdown()
        server.server_close()
    assert not answers(pod, Probe("tcpSocket", port), "pn-unused")  # type: ignore[arg-type]  # nothing listens now


def test_a_dual_stack_node_gets_both_gateways_forwarding_and_egress_tables_and_a_bridge_without_dad(
        tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "dual.db")
    for i, name in enumerate(("n1", "n2")):
        resources.put(store, Node(ObjectMeta(name, namespace=""), (f"10.244.{i}.0/24", f"fd00:10:244:{i}::/64"),
                                  (f"172.18.0.{i + 2}", f"fd00:172:18::{i + 2}")))
    kernel = FakeNodeKernel()
    NodeAgent(store, "n1", [NetworkController(kernel, store, "n1", "10.244.0.0/16,fd00:10:244::/56")]).reconcile()
    assert kernel.links.addresses["cni0"] == {"10.244.0.1/24", "fd00:10:244::1/64"}
    assert kernel.links.routes == {Route("10.244.1.0/24", "172.18.0.3"), Route("fd00:10:244:1::/64", "fd00:172:18::3")}
    assert kernel.sysctls == {"net/ipv6/conf/cni0/accept_dad": "0", "net.ipv4.ip_forward": "1",
                              "net.ipv6.conf.all.forwarding": "1"}
    assert {(t.family, t.name) for t in kernel.nft.tables} == {("ip", EGRESS_TABLE.name), ("ip6", EGRESS_TABLE.name)}
    (leaving,) = Tracer(kernel.nft, frozenset({"fd00:172:18::2"})).trace(Packet("fd00:10:244::5", "2001:db8::10", "tcp", 80))
    assert leaving.masqueraded
    store.close()
