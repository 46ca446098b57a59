"""The computed trace over a two-node cluster, host-gw and VXLAN: a pod to a pod,
through a ClusterIP and a NodePort, to the internet, to a service without
endpoints, and into a policy that drops it. The walk runs the agents' own
renders through the nftables tracer, so these test its words and the order of
its steps, and the e2e suite tests that the kernel agrees."""

from __future__ import annotations

import pytest

from podnet.store.snapshot import Snapshot
from podnet.api.cluster import ClusterConfig
from podnet.controller.endpointslices import desired
from podnet.model.meta import ObjectMeta
from podnet.model.namespace import Namespace
from podnet.model.node import Node
from podnet.model.pod import Container, ContainerPort, Pod
from podnet.model.service import Service, ServicePort
from podnet.trace.path import End, PathTracer, Trace
from tests.policy_model import policy

NODES = [Node(ObjectMeta("n1", namespace=""), ("10.244.0.0/24",), ("172.18.0.2",)),
         Node(ObjectMeta("n2", namespace=""), ("10.244.1.0/24",), ("172.18.0.3",))]


def pod(name: str, namespace: str, node: str, ip: str, **labels: str) -> Pod:
    return Pod(ObjectMeta(name, namespace, labels=labels),
               (Container("serve", ports=(ContainerPort(8080, "http", "TCP"),)),), node_name=node, pod_ips=(ip,),
               ready=True)


PODS = [pod("client", "default", "n1", "10.244.0.2"), pod("web-1", "apps", "n1", "10.244.0.3", app="web"),
        pod("web-2", "apps", "n2", "10.244.1.2", app="web"), pod("db", "apps", "n2", "10.244.1.3", app="db")]
SERVICES = [Service(ObjectMeta("web", "apps"), "NodePort", {"app": "web"}, (ServicePort(80, 8080, node_port=30080),),
                    ("10.96.0.20",)),
            Service(ObjectMeta("empty", "apps"), "ClusterIP", {"app": "none"}, (ServicePort(80, 8080),), ("10.96.0.21",))]
DENY_DB = policy("kind: NetworkPolicy\nmetadata: {name: db-from-web, namespace: apps}\n"
                 "spec: {podSelector: {matchLabels: {app: db}}, ingress: [{from: [{podSelector: {matchLabels: "
                 "{app: web}}}]}]}\n")


def tracer(backend: str = "host-gw") -> PathTracer:
    namespaces = [Namespace(ObjectMeta(n, namespace="")).labelled() for n in ("default", "apps")]
    snapshot = Snapshot(1, NODES, PODS, SERVICES, desired(SERVICES, PODS, NODES), namespaces, [DENY_DB])
    return PathTracer(snapshot, ClusterConfig("10.244.0.0/16", "10.96.0.0/12", backend=backend, proxy_mode="nftables",
                                                    iptables_backend="nft"))


def actions(trace: Trace, path: int | None = None) -> list[str]:
    return [s.action for s in trace.steps if path is None or s.path in (0, path)]


def test_pod_to_pod_on_another_node_host_gw() -> None:
    t = tracer()
    trace = t.trace(t.end_of("10.244.0.2"), t.end_of("10.244.1.2"), 8080)
    assert actions(trace) == ["send", "route", "deliver"]
    route = trace.steps[1]
    assert route.node == "n1" and route.decided_by == "route 10.244.1.0/24 via 172.18.0.3"
    assert trace.steps[-1].node == "n2" and "pod apps/web-2" in trace.steps[-1].text and trace.delivered


def test_vxlan_adds_the_tunnel() -> None:
    t = tracer("vxlan")
    trace = t.trace(t.end_of("10.244.0.2"), t.end_of("10.244.1.2"), 8080)
    assert actions(trace) == ["send", "route", "tunnel", "deliver"]
    assert "dev podnet.1 onlink" in trace.steps[1].decided_by and "172.18.0.3" in trace.steps[2].text


def test_a_cluster_ip_forks_to_every_endpoint() -> None:
    t = tracer()
    trace = t.trace(t.end_of("10.244.0.2"), t.end_of("10.96.0.20"), 80)
    services = [s for s in trace.steps if s.action == "service"]
    assert {s.text.split("DNAT to ")[1].split(" ")[0] for s in services} == {"10.244.0.3:8080", "10.244.1.2:8080"}
    assert all("one of 2 endpoints" in s.text and s.decided_by.startswith("podnet-proxy/") for s in services)
    assert all("element backends[10.96.0.20 . tcp . 80 . " in s.decided_by for s in services)
    endings = {s.path: s for s in trace.endings()}
    assert set(endings) == {1, 2} and all(s.action == "deliver" for s in endings.values())
    local = next(s for s in services if "10.244.0.3" in s.text)
    assert actions(trace, local.path) == ["send", "service", "deliver"]  # same node: across the bridge


def test_a_node_port_from_outside_is_masqueraded_when_it_crosses_nodes() -> None:
    t = tracer()
    trace = t.trace(t.end_of("203.0.113.10"), t.end_of("172.18.0.2"), 30080)
    assert trace.steps[0].text.endswith("it reaches node n1 on eth0")
    remote = [s for s in trace.steps if s.path and "10.244.1.2" in s.text]
    path = remote[0].path
    assert "masquerade" in actions(trace, path)
    assert trace.delivered


def test_the_internet_is_reached_masqueraded() -> None:
    t = tracer()
    trace = t.trace(t.end_of("10.244.0.2"), t.end_of("203.0.113.10"), 80)
    assert actions(trace) == ["send", "route", "masquerade", "leave"]
    assert "172.18.0.2" in trace.steps[2].text and trace.steps[2].decided_by.startswith("podnet-egress/")


def test_a_service_without_endpoints_rejects() -> None:
    t = tracer()
    trace = t.trace(t.end_of("10.244.0.2"), t.end_of("10.96.0.21"), 80)
    assert actions(trace) == ["send", "reject"]
    assert "apps/empty:80" in trace.steps[-1].text or "has no endpoints" in trace.steps[-1].text
    assert not trace.delivered


def test_a_policy_drop_names_the_policy() -> None:
    t = tracer()
    trace = t.trace(t.end_of("10.244.0.2"), t.end_of("10.244.1.3"), 8080)
    assert actions(trace) == ["send", "route", "policy", "drop"]
    assert "apps/db-from-web" in trace.steps[2].text and trace.steps[2].node == "n2"
    assert trace.steps[-1].decided_by.startswith("podnet-policy/")
    allowed = t.trace(t.end_of("10.244.1.2"), t.end_of("10.244.1.3"), 8080)
    assert actions(allowed) == ["send", "policy", "deliver"] and "apps/db-from-web ingress[0]" in allowed.steps[1].text


def test_the_outside_reaches_only_node_addresses() -> None:
    t = tracer()
    trace = t.trace(End("203.0.113.10", "the internet"), t.end_of("10.244.1.2"), 8080)
    assert actions(trace) == ["send", "drop"]


@pytest.mark.parametrize("backend", ["host-gw", "vxlan"])
def test_a_node_reaches_a_pod_on_another_node(backend: str) -> None:
    t = tracer(backend)
    trace = t.trace(t.end_of("172.18.0.2"), t.end_of("10.244.1.2"), 8080)
    assert trace.steps[0].node == "n1" and trace.delivered and trace.steps[-1].node == "n2"
