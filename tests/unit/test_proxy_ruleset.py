"""The service table, loaded into the Fake and walked by the tracer: where a
packet to each kind of service ends, as kube-proxy's own tests ask."""

from __future__ import annotations

from podnet.kernel.nftables.fake import Fake
from podnet.kernel.nftables.tracer import Outcome, Packet, Tracer, targets, verdicts
from podnet.model.manifest import parse_resource
from podnet.model.pod import Pod
from podnet.model.service import Service
from podnet.controller.endpointslices import desired
from podnet.proxy.endpoints import ServicePortView, pod_weights, service_ports
from podnet.proxy.ruleset import TABLE, Ruleset, build

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
