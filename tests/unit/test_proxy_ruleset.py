"""The service table, loaded into the Fake and walked by the tracer: where a
packet to each kind of service ends, as kube-proxy's own tests ask."""

from __future__ import annotations

from dataclasses import replace

from podnet.kernel.nftables.fake import Fake
from podnet.kernel.nftables.tracer import Outcome, Packet, Tracer, targets, verdicts
from podnet.model.endpointslice import EndpointSlice
from podnet.model.families import FAMILIES, IPV4, IPV6, families_of, of_family
from podnet.model.manifest import parse_resource
from podnet.model.pod import Pod
from podnet.model.service import Service
from podnet.controller.endpointslices import desired
from podnet.proxy.endpoints import ServicePortView, pod_weights, service_ports
from podnet.proxy.ruleset import TABLE, TABLES, Ruleset, build

POD_NETWORK = "10.244.0.0/16"
NODE_IPS = {"n1": "172.18.0.2", "n2": "172.18.0.3", "n9": "172.18.0.9"}
CLIENT = "10.244.0.5"  # a pod on n1
OUTSIDE = "172.18.0.100"  # a machine on the nodes' network


def pod(name: str, ip: str, node: str, ready: bool = True, terminating: bool = False, app: str = "web",
        annotations: dict[str, str] | None = None) -> Pod:
    p = parse_resource({"kind": "Pod", "metadata": {"name": name, "labels": {"app": app}, "annotations": annotations or {}},
                        "spec": {"nodeName": node},
                        "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": str(ready)}]}})
    assert isinstance(p, Pod)
    return p.terminated() if terminating else p


def service(name: str = "web", cluster_ip: str = "10.96.0.2", **spec: object) -> Service:
    s = parse_resource({"kind": "Service", "metadata": {"name": name},
                        "spec": {"selector": {"app": "web"}, "clusterIP": cluster_ip, "ports": [{"port": 80}], **spec}})
    assert isinstance(s, Service)
    return s


def views(services: list[Service], pods: list[Pod], node: str) -> list[ServicePortView]:
    """As a node sees them: the controller's slices for these pods."""
    return service_ports(services, desired(services, pods), node, pod_weights(pods))


PODS = [pod("a", "10.244.0.2", "n1"), pod("b", "10.244.1.2", "n2"), pod("c", "10.244.2.2", "n3")]
EVERY_POD = {"10.244.0.2:80", "10.244.1.2:80", "10.244.2.2:80"}


class Node:
    """One node's service table in the Fake, and a tracer over it."""

    def __init__(self, services: list[Service], pods: list[Pod] = PODS, node: str = "n1") -> None:
        self.views: list[ServicePortView] = views(services, pods, node)
        self.ruleset: Ruleset = build(self.views, POD_NETWORK)
        self.nft = Fake()
        self.nft.run(self.ruleset.transaction())
        self.tracer = Tracer(self.nft, frozenset({NODE_IPS[node]}))
        self.ip = NODE_IPS[node]

    def send(self, source: str, destination: str, port: int = 80, protocol: str = "tcp",
             origin: str = "arriving") -> list[Outcome]:
        return self.tracer.trace(Packet(source, destination, protocol, port), origin)

    def chains(self) -> set[str]:
        return set(self.nft.tables[TABLE].chains)


def test_cluster_ip_is_dnatted_to_one_of_its_endpoints() -> None:
    node = Node([service()])
    outcomes = node.send(CLIENT, "10.96.0.2")
    assert targets(outcomes) == EVERY_POD and len(outcomes) == 3
    assert not any(o.masqueraded for o in outcomes)  # pod to pod keeps the client's address
    assert targets(node.send(node.ip, "10.96.0.2", origin="local")) == EVERY_POD  # the node itself too


def test_traffic_from_outside_the_pod_network_is_masqueraded() -> None:
    assert all(o.masqueraded for o in Node([service()]).send(OUTSIDE, "10.96.0.2"))


def test_a_pod_reaching_itself_through_its_service_is_masqueraded() -> None:
    outcomes = Node([service()]).send("10.244.0.2", "10.96.0.2")
    hairpin = next(o for o in outcomes if o.target == "10.244.0.2:80")
    assert hairpin.masqueraded and not any(o.masqueraded for o in outcomes if o is not hairpin)


def test_no_endpoints_is_rejected_at_once() -> None:
    node = Node([service()], pods=[])
    assert verdicts(node.send(CLIENT, "10.96.0.2")) == {"reject with tcp reset"}
    assert verdicts(node.send(CLIENT, "10.96.0.2", protocol="udp")) == {"reject"}  # ICMP unreachable
    assert verdicts(node.send(node.ip, "10.96.0.2", origin="local")) == {"reject with tcp reset"}


def test_undefined_ports_of_a_service_are_rejected() -> None:
    node = Node([service()])
    assert verdicts(node.send(CLIENT, "10.96.0.2", port=81)) == {"reject with tcp reset"}
    assert verdicts(node.send(CLIENT, "10.96.0.2", protocol="udp")) == {"reject"}


def test_other_traffic_is_left_alone() -> None:
    (outcome,) = Node([service()]).send(CLIENT, "10.244.1.2", port=80)
    assert (outcome.verdict, outcome.target, outcome.masqueraded) == ("accept", "10.244.1.2:80", False)


def test_chains_do_not_grow_with_services() -> None:
    many = [service(f"s{i}", f"10.96.{i // 250}.{i % 250 + 2}") for i in range(300)]
    assert Node(many).chains() == Node(many[:2]).chains()


def test_terminating_endpoints_only_when_none_is_ready() -> None:
    pods = [pod("a", "10.244.0.2", "n1"), pod("old", "10.244.0.9", "n1", terminating=True)]
    assert targets(Node([service()], pods).send(CLIENT, "10.96.0.2")) == {"10.244.0.2:80"}
    assert targets(Node([service()], [pods[1]]).send(CLIENT, "10.96.0.2")) == {"10.244.0.9:80"}
    unready = Node([service()], [pod("x", "10.244.0.3", "n1", ready=False)])
    assert verdicts(unready.send(CLIENT, "10.96.0.2")) == {"reject with tcp reset"}


def test_node_port_with_the_cluster_policy() -> None:
    node = Node([service(type="NodePort", ports=[{"port": 80, "nodePort": 30080}])])
    outcomes = node.send(OUTSIDE, node.ip, port=30080)
    assert targets(outcomes) == EVERY_POD and all(o.masqueraded for o in outcomes)
    assert targets(node.send(node.ip, "127.0.0.1", port=30080, origin="local")) == {"127.0.0.1:30080"}  # not on lo
    assert targets(node.send(OUTSIDE, node.ip, port=30081)) == {f"{node.ip}:30081"}  # not a node port


def test_node_port_with_the_local_policy_keeps_the_client_address() -> None:
    local = service(type="NodePort", externalTrafficPolicy="Local", ports=[{"port": 80, "nodePort": 30081}])
    node = Node([local], node="n2")
    (outcome,) = node.send(OUTSIDE, node.ip, port=30081)
    assert outcome.target == "10.244.1.2:80" and not outcome.masqueraded
    elsewhere = Node([local], node="n9")  # no endpoint on this node: dropped, not rejected
    assert verdicts(elsewhere.send(OUTSIDE, elsewhere.ip, port=30081)) == {"drop"}
    assert targets(elsewhere.send(CLIENT, "10.96.0.2")) == EVERY_POD  # the ClusterIP still reaches them all


def test_affinity_chains_pick_any_endpoint_and_remember_the_client() -> None:
    node = Node([service(sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}})])
    outcomes = node.send(CLIENT, "10.96.0.2")
    assert targets(outcomes) == EVERY_POD
    assert all(any("update @aff_" in hit for hit in o.hits) for o in outcomes)
    timed = [s for s in node.nft.tables[TABLE].sets.values() if s.name.startswith("aff_")]
    assert len(timed) == 3 and all(s.timeout == 60 and "timeout" in s.flags for s in timed)


def test_headless_and_external_name_get_no_rules() -> None:
    headless = service(clusterIP="None")
    external = parse_resource({"kind": "Service", "metadata": {"name": "ext"},
                               "spec": {"type": "ExternalName", "externalName": "example.com"}})
    node = Node([headless, external])  # type: ignore[list-item]
    assert node.views == [] and all(not e for e in node.ruleset.elements.values())


def test_cost_per_packet_does_not_grow_with_services() -> None:
    """Whatever the number of services, a packet meets the same rules: map lookups."""
    many = [service(f"s{i}", f"10.96.{i // 250}.{i % 250 + 2}") for i in range(500)]
    few, lots = Node(many[:1]), Node(many)
    assert len(few.send(CLIENT, "10.96.0.2")[0].hits) == len(lots.send(CLIENT, "10.96.1.251")[0].hits)


def test_changing_one_endpoint_changes_a_few_elements() -> None:
    services = [parse_resource({"kind": "Service", "metadata": {"name": f"s{i}"},
                                "spec": {"selector": {"app": f"a{i}"}, "clusterIP": f"10.96.{i // 250}.{i % 250 + 2}",
                                         "ports": [{"port": 80}]}}) for i in range(200)]
    pods = [pod(f"p{i}-{j}", f"10.{100 + i // 250}.{i % 250}.{j + 2}", "n1", app=f"a{i}") for i in range(200) for j in range(3)]
    before = build(views(services, pods, "n1"), "10.0.0.0/8")  # type: ignore[arg-type]
    moved = [p if p.metadata.name != "p7-1" else pod("p7-1", "10.100.7.99", "n1", app="a7") for p in pods]
    after = build(views(services, moved, "n1"), "10.0.0.0/8")  # type: ignore[arg-type]
    changes = after.changes_from(before)
    assert changes is not None
    # only that service's backends (at most all of them) and the endpoint's hairpin pair
    assert 2 < len(changes) <= 2 * 3 + 2
    assert all(e.key[0] == "10.96.0.9" or e.set == "hairpin" for _, e in changes.elements())
    nft = Fake()
    nft.run(before.transaction())
    nft.run(changes)
    reference = Fake()
    reference.run(after.transaction())
    assert nft.dump() == reference.dump()  # the small change leaves what a whole rewrite would
    gone = [p for p in pods if p.metadata.name != "p7-1"]
    fewer = build(views(services, gone, "n1"), "10.0.0.0/8")  # type: ignore[arg-type]
    assert fewer.changes_from(before) is None  # two endpoints: a new pick chain, so the table is rewritten


def test_external_and_load_balancer_ips() -> None:
    lb = service(type="LoadBalancer", externalIPs=["203.0.113.50"], loadBalancerIP="203.0.113.60",
                 loadBalancerSourceRanges=["172.18.0.0/24"], ports=[{"port": 80, "nodePort": 30090}])
    assert parse_resource(lb.to_manifest()) == lb
    node = Node([lb])
    outside = node.send(OUTSIDE, "203.0.113.50")
    assert targets(outside) == EVERY_POD and all(o.masqueraded for o in outside)
    assert targets(node.send(OUTSIDE, "203.0.113.60")) == EVERY_POD  # from an allowed range
    assert verdicts(node.send("198.51.100.7", "203.0.113.60")) == {"drop"}  # from elsewhere
    assert verdicts(node.send(OUTSIDE, "203.0.113.50", port=81)) == {"reject with tcp reset"}
    local = Node([service(externalIPs=["203.0.113.50"], externalTrafficPolicy="Local")])
    (only,) = local.send(OUTSIDE, "203.0.113.50")
    assert only.target == "10.244.0.2:80"  # only n1's endpoint: Local keeps the client's address
    assert not only.masqueraded


def test_weights_share_the_random_pick() -> None:
    heavy = pod("h", "10.244.0.9", "n1", annotations={"podnet.dev/weight": "2"})
    quiet = pod("q", "10.244.0.8", "n1", annotations={"podnet.dev/weight": "0"})
    outcomes = Node([service()], [PODS[0], heavy, quiet]).send(CLIENT, "10.96.0.2")
    picks = sorted(o.target for o in outcomes)  # one outcome per slot of the random pick
    assert picks == ["10.244.0.2:80", "10.244.0.9:80", "10.244.0.9:80"]  # weights 1 + 2; 0 gets no new flows


# Dual-stack: a table per family, each from the views of its family.

POD_NETWORKS = "10.244.0.0/16,fd00:10:244::/56"
NODE_IPS6 = {"n1": "fd00:172:18::2", "n2": "fd00:172:18::3", "n9": "fd00:172:18::9"}
CLIENT6 = "fd00:10:244::5"  # a pod on n1
OUTSIDE6 = "fd00:172:18::100"  # a machine on the nodes' network


def dual_pod(name: str, ip: str, ip6: str, node: str, app: str = "web") -> Pod:
    p = parse_resource({"kind": "Pod", "metadata": {"name": name, "labels": {"app": app}}, "spec": {"nodeName": node},
                        "status": {"podIPs": [{"ip": ip}, {"ip": ip6}],
                                   "conditions": [{"type": "Ready", "status": "True"}]}})
    assert isinstance(p, Pod)
    return p


def family_slices(services: list[Service], pods: list[Pod]) -> list[EndpointSlice]:
    """As the EndpointSlice controller writes them: for each family of a Service, a
    slice set of addressType that family, holding its pods' addresses of it."""
    found = []
    for family in FAMILIES:
        wanted = [s for s in services if family in families_of(s.addresses)]
        alone = [replace(p, pod_ips=tuple(of_family(p.pod_ips, family))) for p in pods]
        found += [s for s in desired(wanted, alone) if s.address_type == family]
    return found


def dual_service(name: str = "web", cluster_ips: tuple[str, ...] = ("10.96.0.2", "fd00:10:96::2"),
                 **spec: object) -> Service:
    s = parse_resource({"kind": "Service", "metadata": {"name": name}, "spec": {
        "selector": {"app": "web"}, "clusterIPs": list(cluster_ips), "ports": [{"port": 80}], **spec}})
    assert isinstance(s, Service)
    return s


DUAL_PODS = [dual_pod("a", "10.244.0.2", "fd00:10:244::2", "n1"), dual_pod("b", "10.244.1.2", "fd00:10:244:1::2", "n2"),
             dual_pod("c", "10.244.2.2", "fd00:10:244:2::2", "n3")]
EVERY_POD6 = {"[fd00:10:244::2]:80", "[fd00:10:244:1::2]:80", "[fd00:10:244:2::2]:80"}


class DualNode(Node):
    """Both tables of one node in the Fake, as the proxier writes them."""

    def __init__(self, services: list[Service], pods: list[Pod] = DUAL_PODS, node: str = "n1") -> None:
        self.views = service_ports(services, family_slices(services, pods), node, pod_weights(pods))
        self.rulesets = {family: build(self.views, POD_NETWORKS, family) for family in FAMILIES}
        self.ruleset = self.rulesets[IPV4]
        self.nft = Fake()
        for ruleset in self.rulesets.values():
            self.nft.run(ruleset.transaction())
        self.ip, self.ip6 = NODE_IPS[node], NODE_IPS6[node]
        self.tracer = Tracer(self.nft, frozenset({self.ip, self.ip6}))

    def elements(self, family: str) -> int:
        return sum(len(items) for items in self.rulesets[family].elements.values())


def test_a_dual_stack_cluster_ip_of_each_family_reaches_the_endpoints_of_that_family() -> None:
    node = DualNode([dual_service()])
    assert {v.family: v.cluster_ip for v in node.views} == {IPV4: "10.96.0.2", IPV6: "fd00:10:96::2"}
    outcomes = node.send(CLIENT6, "fd00:10:96::2")
    assert targets(outcomes) == EVERY_POD6 and len(outcomes) == 3
    assert not any(o.masqueraded for o in outcomes)  # pod to pod keeps the client's address
    assert targets(node.send(node.ip6, "fd00:10:96::2", origin="local")) == EVERY_POD6  # the node itself too
    assert targets(node.send(CLIENT, "10.96.0.2")) == EVERY_POD  # IPv4's table is untouched by IPv6's
    assert node.nft.tables[TABLES[IPV6]].sets["backends"].value == "ip6 daddr . th dport"


def test_the_ipv4_table_is_what_an_ipv4_only_cluster_gets() -> None:
    """Dual-stack adds a table; IPv4's is the same value, element for element."""
    dual = DualNode([dual_service()]).rulesets[IPV4]
    alone = build(views([service()], PODS, "n1"), POD_NETWORK)
    assert dual == alone and dual.transaction().operations == alone.transaction().operations


def test_a_single_stack_service_has_no_elements_in_the_other_family() -> None:
    for cluster_ips, empty in ((("10.96.0.2",), IPV6), (("fd00:10:96::2",), IPV4)):
        node = DualNode([dual_service(cluster_ips=cluster_ips, type="NodePort",
                                      ports=[{"port": 80, "nodePort": 30080}])])
        assert node.elements(empty) == 0 and node.elements(FAMILIES[1 - FAMILIES.index(empty)]) > 0
    v4_only = DualNode([dual_service(cluster_ips=("10.96.0.2",), type="NodePort",
                                     ports=[{"port": 80, "nodePort": 30080}])])
    (outcome,) = v4_only.send(OUTSIDE6, v4_only.ip6, port=30080)  # no IPv6 node port: left to the node
    assert (outcome.verdict, outcome.target) == ("accept", f"[{v4_only.ip6}]:30080")


def test_ipv6_no_endpoints_and_undefined_ports_are_rejected() -> None:
    node = DualNode([dual_service()], pods=[])
    assert verdicts(node.send(CLIENT6, "fd00:10:96::2")) == {"reject with tcp reset"}
    assert verdicts(node.send(CLIENT6, "fd00:10:96::2", protocol="udp")) == {"reject"}  # ICMPv6 port unreachable
    served = DualNode([dual_service()])
    assert verdicts(served.send(CLIENT6, "fd00:10:96::2", port=81)) == {"reject with tcp reset"}


def test_ipv6_traffic_from_outside_the_pod_network_and_hairpin_is_masqueraded() -> None:
    node = DualNode([dual_service()])
    assert all(o.masqueraded for o in node.send(OUTSIDE6, "fd00:10:96::2"))
    outcomes = node.send("fd00:10:244::2", "fd00:10:96::2")
    hairpin = next(o for o in outcomes if o.target == "[fd00:10:244::2]:80")
    assert hairpin.masqueraded and not any(o.masqueraded for o in outcomes if o is not hairpin)


def test_ipv6_node_ports_answer_on_the_nodes_ipv6_addresses_with_either_policy() -> None:
    cluster = DualNode([dual_service(type="NodePort", ports=[{"port": 80, "nodePort": 30080}])])
    outcomes = cluster.send(OUTSIDE6, cluster.ip6, port=30080)
    assert targets(outcomes) == EVERY_POD6 and all(o.masqueraded for o in outcomes)
    assert targets(cluster.send(OUTSIDE, cluster.ip, port=30080)) == EVERY_POD  # and on IPv4's, to IPv4's pods
    assert targets(cluster.send(cluster.ip6, "::1", port=30080, origin="local")) == {"[::1]:30080"}  # not on lo
    local = dual_service(type="NodePort", externalTrafficPolicy="Local", ports=[{"port": 80, "nodePort": 30081}])
    node = DualNode([local], node="n2")
    (outcome,) = node.send(OUTSIDE6, node.ip6, port=30081)
    assert outcome.target == "[fd00:10:244:1::2]:80" and not outcome.masqueraded
    elsewhere = DualNode([local], node="n9")
    assert verdicts(elsewhere.send(OUTSIDE6, elsewhere.ip6, port=30081)) == {"drop"}


def test_ipv6_external_and_load_balancer_ips_with_source_ranges() -> None:
    lb = dual_service(type="LoadBalancer", externalIPs=["203.0.113.50", "2001:db8::50"],
                      loadBalancerSourceRanges=["172.18.0.0/24", "fd00:172:18::/64"],
                      ports=[{"port": 80, "nodePort": 30090}])
    lb = replace(lb, load_balancer_ips=("203.0.113.60", "2001:db8::60"))
    node = DualNode([lb])
    (v4,) = [v for v in node.views if v.family == IPV4]
    assert v4.external_ips == ("203.0.113.50",) and v4.source_ranges == ("172.18.0.0/24",)
    outside = node.send(OUTSIDE6, "2001:db8::50")
    assert targets(outside) == EVERY_POD6 and all(o.masqueraded for o in outside)
    assert targets(node.send(OUTSIDE6, "2001:db8::60")) == EVERY_POD6  # from an allowed range
    assert verdicts(node.send("2001:db8:1::7", "2001:db8::60")) == {"drop"}  # from elsewhere
    assert verdicts(node.send(OUTSIDE6, "2001:db8::50", port=81)) == {"reject with tcp reset"}


def test_ipv6_affinity_remembers_the_client_in_an_ipv6_set() -> None:
    node = DualNode([dual_service(sessionAffinity="ClientIP",
                                  sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}})])
    outcomes = node.send(CLIENT6, "fd00:10:96::2")
    assert targets(outcomes) == EVERY_POD6
    assert all(any("update @aff_" in hit and "ip6 saddr" in hit for hit in o.hits) for o in outcomes)
    timed = [s for s in node.nft.tables[TABLES[IPV6]].sets.values() if s.name.startswith("aff_")]
    assert len(timed) == 3 and all(s.key == "ipv6_addr" and s.timeout == 60 for s in timed)


def test_changing_one_ipv6_endpoint_changes_a_few_elements_of_the_ipv6_table_only() -> None:
    services = [dual_service(f"s{i}", (f"10.96.0.{i + 2}", f"fd00:10:96::{i + 2:x}"), selector={"app": f"a{i}"})
                for i in range(50)]
    pods = [dual_pod(f"p{i}-{j}", f"10.244.{i}.{j + 2}", f"fd00:10:244:{i:x}::{j + 2:x}", "n1", app=f"a{i}")
            for i in range(50) for j in range(3)]
    moved = [p if p.metadata.name != "p7-1" else replace(p, pod_ips=(p.pod_ips[0], "fd00:10:244:7::99"))
             for p in pods]
    before = {f: build(service_ports(services, family_slices(services, pods), "n1"), POD_NETWORKS, f)
              for f in FAMILIES}
    after = {f: build(service_ports(services, family_slices(services, moved), "n1"), POD_NETWORKS, f)
             for f in FAMILIES}
    assert after[IPV4] == before[IPV4]
    changes = after[IPV6].changes_from(before[IPV6])
    assert changes is not None and changes.table == TABLES[IPV6]
    assert 2 < len(changes) <= 2 * 3 + 2
    assert all(e.key[0] == "fd00:10:96::9" or e.set == "hairpin" for _, e in changes.elements())


def test_the_proxier_programs_each_family_from_one_snapshot_and_writes_only_what_changed() -> None:
    from podnet.proxy.proxier import Proxier
    from tests.fakes import FakeNodeKernel

    kernel = FakeNodeKernel()
    proxier = Proxier(kernel, "n1", POD_NETWORKS)
    services = [dual_service(), dual_service("db", ("10.96.0.3",))]
    assert proxier.sync_services(services, family_slices(services, DUAL_PODS)) == "table"
    assert set(kernel.nft.tables) == set(TABLES.values())
    assert proxier.sync_services(services, family_slices(services, DUAL_PODS)) == "none"
    fewer = DUAL_PODS[:2] + [replace(DUAL_PODS[2], pod_ips=DUAL_PODS[2].pod_ips[:1])]  # c loses its IPv6 address
    before = kernel.nft.dump()
    assert proxier.sync_services(services, family_slices(services, fewer)) in ("elements", "table")
    tracer = Tracer(kernel.nft, frozenset())
    assert targets(tracer.trace(Packet(CLIENT6, "fd00:10:96::2", "tcp", 80))) == EVERY_POD6 - {"[fd00:10:244:2::2]:80"}
    assert targets(tracer.trace(Packet(CLIENT, "10.96.0.3", "tcp", 80))) == EVERY_POD
    ipv4_lines = [line for line in before.splitlines() if " ip podnet-proxy " in line]
    assert ipv4_lines == [line for line in kernel.nft.dump().splitlines() if " ip podnet-proxy " in line]
    assert Proxier(FakeNodeKernel(), "n1", POD_NETWORK).families == (IPV4,)  # an IPv4 cluster: no IPv6 table
