"""The computed trace over a two-node cluster, host-gw and VXLAN: a pod to a pod,
through a ClusterIP and a NodePort, to the internet, to a service without
endpoints, and into a policy that drops it; and dual-stack: IPv6 between pods
across nodes (routed via the peer's IPv6 address, or tunnelled to its VTEP over
the IPv4 underlay), the source's address picked by the destination's family,
IPv6 egress masqueraded by its own table, and ends written in either family.
The walk runs the agents' own renders through the nftables tracer, so these
test its words and the order of its steps, and the e2e suite tests that the
kernel agrees."""

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


# Dual stack: every node and pod has an address in each family, and the Service a ClusterIP in each.
V6 = {"n1": ("fd00:10:244::/64", "fc00:f853::2"), "n2": ("fd00:10:244:1::/64", "fc00:f853::3")}
DUAL_NODES = [Node(n.metadata, (n.pod_cidrs[0], V6[n.metadata.name][0]), (n.internal_ips[0], V6[n.metadata.name][1]))
              for n in NODES]
DUAL_PODS = [pod("client", "default", "n1", "10.244.0.2"), pod("web-1", "apps", "n1", "10.244.0.3", app="web"),
             pod("web-2", "apps", "n2", "10.244.1.2", app="web"), pod("legacy", "default", "n2", "10.244.1.9")]
DUAL_PODS = [p if p.metadata.name == "legacy" else
             Pod(p.metadata, p.containers, node_name=p.node_name, ready=True,
                 pod_ips=(p.pod_ips[0], p.pod_ips[0].replace("10.244.0.", "fd00:10:244::").replace(
                     "10.244.1.", "fd00:10:244:1::"))) for p in DUAL_PODS]
DUAL_SERVICES = [Service(ObjectMeta("web", "apps"), "ClusterIP", {"app": "web"}, (ServicePort(80, 8080),),
                         ("10.96.0.20", "fd00:10:96::20"), ip_families=("IPv4", "IPv6"),
                         ip_family_policy="PreferDualStack")]
CLIENT6, WEB2_6 = "fd00:10:244::2", "fd00:10:244:1::2"


def dual_tracer(backend: str = "host-gw") -> PathTracer:
    namespaces = [Namespace(ObjectMeta(n, namespace="")).labelled() for n in ("default", "apps")]
    snapshot = Snapshot(1, DUAL_NODES, DUAL_PODS, DUAL_SERVICES, desired(DUAL_SERVICES, DUAL_PODS, DUAL_NODES),
                        namespaces, [])
    return PathTracer(snapshot, ClusterConfig("10.244.0.0/16,fd00:10:244::/56", "10.96.0.0/12,fd00:10:96::/112",
                                              backend=backend, proxy_mode="nftables", iptables_backend="nft"))


def test_an_ipv6_packet_between_pods_on_two_nodes_host_gw() -> None:
    t = dual_tracer()
    trace = t.trace(t.end_of(CLIENT6), t.end_of(WEB2_6), 8080)
    assert actions(trace) == ["send", "route", "deliver"] and trace.delivered
    assert f"({CLIENT6})" in trace.steps[0].text and "via fd00:10:244::1 dev eth0" in trace.steps[0].decided_by
    assert trace.steps[1].decided_by == "route fd00:10:244:1::/64 via fc00:f853::3"  # the peer's IPv6 address
    assert trace.steps[-1].text.endswith(f"pod apps/web-2: delivered to [{WEB2_6}]:8080")
    assert trace.steps[-1].decided_by == "fd00:10:244:1::/64 dev cni0 (the node's pod subnet)"
    assert [(p.node, p.destination, p.verdict) for p in trace.passes] == [("n1", WEB2_6, "accept"),
                                                                          ("n2", WEB2_6, "accept")]


def test_an_ipv6_packet_between_pods_on_two_nodes_vxlan() -> None:
    t = dual_tracer("vxlan")
    trace = t.trace(t.end_of(CLIENT6), t.end_of(WEB2_6), 8080)
    assert actions(trace) == ["send", "route", "tunnel", "deliver"] and trace.delivered
    assert trace.steps[1].decided_by == "route fd00:10:244:1::/64 via fd00:10:244:1:: dev podnet.1 onlink"
    tunnel = trace.steps[2]  # the peer's VTEP of the family, over the primary (IPv4) underlay
    assert "to 172.18.0.3, node n2" in tunnel.text and tunnel.decided_by.startswith("neighbour fd00:10:244:1:: ")
    assert trace.steps[-1].node == "n2" and WEB2_6 in trace.steps[-1].text


def test_a_pod_sends_from_its_address_of_the_destinations_family() -> None:
    t = dual_tracer()
    trace = t.trace(t.end_of("10.244.0.2"), t.end_of(WEB2_6), 8080)
    assert trace.source.address == CLIENT6 and trace.delivered
    legacy = t.trace(t.end_of("10.244.1.9"), t.end_of(CLIENT6), 8080)
    assert actions(legacy) == ["send", "drop"] and "has no IPv6 address" in legacy.steps[-1].text


def test_the_ipv6_internet_is_reached_masqueraded_by_the_ip6_egress_table() -> None:
    t = dual_tracer()
    trace = t.trace(t.end_of(CLIENT6), t.end_of("2001:db8::10"), 80)
    assert actions(trace) == ["send", "route", "masquerade", "leave"]
    assert "fc00:f853::2" in trace.steps[2].text  # the node's IPv6 address
    assert trace.steps[2].decided_by.startswith("podnet-egress/postrouting: ip6 saddr fd00:10:244::/64")
    ipv4 = t.trace(t.end_of("10.244.0.2"), t.end_of("203.0.113.10"), 80)  # and IPv4 as before, by its own table
    assert "172.18.0.2" in ipv4.steps[2].text and "ip saddr 10.244.0.0/24" in ipv4.steps[2].decided_by


@pytest.mark.parametrize("backend", ["host-gw", "vxlan"])
def test_a_node_reaches_a_pod_on_another_node_over_ipv6(backend: str) -> None:
    t = dual_tracer(backend)
    trace = t.trace(t.end_of("fc00:f853::2"), t.end_of(WEB2_6), 8080)
    assert trace.steps[0].text.startswith("node n1 (fc00:f853::2)") and trace.delivered
    back = t.trace(t.end_of(WEB2_6), t.end_of("fc00:f853::2"), 22)
    assert back.steps[-1].text == "delivered to node n1 itself ([fc00:f853::2]:22)"


def test_an_ipv6_service_is_walked_through_the_ip6_proxy_table() -> None:
    """The walk asks each family's table of its own packets: the proxy's ip6 table
    (it writes one per family) takes an IPv6 packet to the Service's IPv6
    ClusterIP to its IPv6 endpoints, and never an IPv4 one, which the ip table
    serves as before."""
    t = dual_tracer()
    trace = t.trace(t.end_of(CLIENT6), End("fd00:10:96::20", "service apps/web"), 80)
    services = [s for s in trace.steps if s.action == "service"]
    assert services and all(s.decided_by.startswith("podnet-proxy/") for s in services)
    assert all("element backends[fd00:10:96::20 . tcp . 80 . " in s.decided_by for s in services)
    assert {p.port for p in trace.passes} == {8080} and WEB2_6 in {p.destination for p in trace.passes}
    assert all(":" in p.destination for p in trace.passes) and trace.delivered
    ipv4 = t.trace(t.end_of("10.244.0.2"), End("10.96.0.20", "service apps/web"), 80)
    assert ipv4.passes and not any("ip6" in hit for p in ipv4.passes for hit in p.hits)


@pytest.mark.parametrize(("word", "found"), [
    ("10.244.0.2:80", ("10.244.0.2", 80)),
    ("web:80", ("web", 80)),
    ("fd00::5", ("fd00::5", None)),  # a bare IPv6 address has no port
    ("[fd00::5]:80", ("fd00::5", 80)),
    ("[fd00::5]", ("fd00::5", None)),
])
def test_an_end_may_carry_a_port(word: str, found: tuple[str, int | None]) -> None:
    from podnet.trace.ends import split_port

    assert split_port(word) == found


@pytest.mark.parametrize("word", ["[fd00::5]80", "[fd00::5]:http", "[fd00::5"])
def test_a_bracketed_address_with_anything_but_a_port_is_refused(word: str) -> None:
    from podnet.trace.ends import EndError, split_port

    with pytest.raises(EndError):
        split_port(word)


def test_ends_take_the_family_asked_for() -> None:
    from podnet.trace.ends import EndError, source_end, target

    t = dual_tracer()
    internet = ("203.0.113.10", "2001:db8::10")
    assert target(t, DUAL_SERVICES, "apps/svc/web", "default", "tcp").end.address == "10.96.0.20"
    v6 = target(t, DUAL_SERVICES, "apps/svc/web", "default", "tcp", family="IPv6")
    assert v6.end.address == "fd00:10:96::20" and v6.port == 80
    assert target(t, DUAL_SERVICES, "apps/web-2:8080", "default", "tcp", family="IPv6").end.address == WEB2_6
    assert target(t, DUAL_SERVICES, "internet:80", "default", "tcp", internet, "IPv6").end.address == "2001:db8::10"
    assert source_end(t, "node/n1", "default", internet, "IPv6").address == "fc00:f853::2"
    assert source_end(t, "client", "default", internet, "IPv6").address == CLIENT6
    with pytest.raises(EndError, match="has no IPv6 address"):
        source_end(t, "legacy", "default", internet, "IPv6")


def test_an_ipv6_packet_is_marked_for_the_live_trace_in_the_ip6_table() -> None:
    from podnet.trace.live import _marking

    t = dual_tracer()
    node_addresses = {a for n in ("n1", "n2") for a in t.local_addresses(n)}
    tx = _marking(t.trace(t.end_of(CLIENT6), t.end_of(WEB2_6), 8080), 41000, node_addresses)
    assert tx.table.text() == "ip6 podnet-trace"
    rules = [o.text() for verb, o in tx.operations if hasattr(o, "statements")]
    assert rules == [f"ip6 saddr {CLIENT6} meta l4proto tcp th sport 41000 meta nftrace set 1"] * 2
    out = _marking(t.trace(t.end_of(CLIENT6), t.end_of("2001:db8::10"), 80), 41000, node_addresses)
    masqueraded = [o.text() for verb, o in out.operations if hasattr(o, "statements")][-1]
    assert masqueraded.startswith("ip6 saddr { fc00:f853::2, ") and "10." not in masqueraded  # its family only
    ping = _marking(t.trace(t.end_of(CLIENT6), t.end_of(WEB2_6), None, "icmp"), 41000, node_addresses)
    assert "meta l4proto 58 " in [o.text() for verb, o in ping.operations if hasattr(o, "statements")][0]


def test_the_kernels_report_of_an_ipv6_packet_is_read() -> None:
    import socket
    import struct

    from podnet.kernel.nftrace import parse_event
    from podnet.kernel.nlmsg import attr, be32, be64, nest, string

    network = struct.pack(">IHBB", 6 << 28, 20, 6, 64) + socket.inet_pton(socket.AF_INET6, CLIENT6) + \
        socket.inet_pton(socket.AF_INET6, WEB2_6)
    body = string(1, "podnet-trace") + string(2, "prerouting") + be32(4, 3) + be64(3, 4) + \
        nest(5, be32(1, 1)) + attr(8, network) + attr(9, struct.pack(">HH", 41000, 8080) + bytes(16)) + be32(6, 77)
    event = parse_event(body, 10)  # NFPROTO_IPV6: an ip6 table reported
    assert (event.family, event.table, event.chain, event.kind, event.handle, event.verdict) == \
        ("ip6", "podnet-trace", "prerouting", "rule", 4, "accept")
    assert (event.source, event.destination, event.protocol, event.source_port, event.destination_port) == \
        (CLIENT6, WEB2_6, "tcp", 41000, 8080)
    assert event.where == ("ip6", "podnet-trace")
