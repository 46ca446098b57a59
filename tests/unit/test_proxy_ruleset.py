"""The service table, rendered without root: what each kind of service becomes."""

from __future__ import annotations

from podnet.model.manifest import parse_resource
from podnet.model.pod import Pod
from podnet.model.service import Service
from podnet.proxy.endpoints import service_ports
from podnet.proxy.ruleset import endpoint_chain, render


def pod(name: str, ip: str, node: str, ready: bool = True, terminating: bool = False, app: str = "web") -> Pod:
    p = parse_resource({"kind": "Pod", "metadata": {"name": name, "labels": {"app": app}}, "spec": {"nodeName": node},
                        "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": str(ready)}]}})
    assert isinstance(p, Pod)
    return p.terminated() if terminating else p


def service(**spec: object) -> Service:
    s = parse_resource({"kind": "Service", "metadata": {"name": "web"},
                        "spec": {"selector": {"app": "web"}, "clusterIP": "10.96.0.2", "ports": [{"port": 80}], **spec}})
    assert isinstance(s, Service)
    return s


PODS = [pod("a", "10.244.0.2", "n1"), pod("b", "10.244.1.2", "n2"), pod("c", "10.244.2.2", "n3")]


def table(services: list[Service], pods: list[Pod] = PODS, node: str = "n1") -> tuple[str, list]:  # type: ignore[type-arg]
    views = service_ports(services, pods, node)
    return render(views, "10.244.0.0/16"), views


def test_cluster_ip_is_map_elements_and_a_shared_random_pick() -> None:
    body, (view,) = table([service()])
    assert "10.96.0.2 . tcp . 80 : goto pick_3" in body
    for i, endpoint in enumerate(view.endpoints):
        assert f"10.96.0.2 . tcp . 80 . {i} : {endpoint.ip} . 80" in body
        assert f"{endpoint.ip} . {endpoint.ip}" in body  # hairpin pair, masqueraded
    assert "dnat ip to ip daddr . meta l4proto . th dport . numgen random mod 3 map @backends" in body
    assert "ip saddr != 10.244.0.0/16 ip daddr @cluster_ips jump mark_for_masquerade" in body


def test_chains_do_not_grow_with_services() -> None:
    many = [parse_resource({"kind": "Service", "metadata": {"name": f"s{i}"},
                            "spec": {"selector": {"app": "web"}, "clusterIP": f"10.96.{i // 250}.{i % 250 + 2}",
                                     "ports": [{"port": 80}]}}) for i in range(300)]
    few, _ = table(many[:2])  # type: ignore[arg-type]
    body, _ = table(many)  # type: ignore[arg-type]
    assert body.count("chain ") == few.count("chain ")


def test_no_endpoints_and_unknown_ports_are_rejected() -> None:
    body, _ = table([service()], pods=[])
    assert "10.96.0.2 . tcp . 80 : goto reject_service" in body
    assert "ip daddr @cluster_ips goto reject_service" in body
    assert "reject with tcp reset" in body


def test_terminating_endpoints_only_when_none_is_ready() -> None:
    pods = [pod("a", "10.244.0.2", "n1"), pod("old", "10.244.0.9", "n1", terminating=True)]
    _, (view,) = table([service()], pods)
    assert [e.pod for e in view.endpoints] == ["a"]
    _, (view,) = table([service()], [pods[1]])
    assert [e.pod for e in view.endpoints] == ["old"]
    _, (view,) = table([service()], [pod("x", "10.244.0.3", "n1", ready=False)])
    assert view.endpoints == ()


def test_node_port_policies() -> None:
    cluster = service(type="NodePort", ports=[{"port": 80, "nodePort": 30080}])
    body, (view,) = table([cluster])
    assert "tcp . 30080 : goto np_cluster_3" in body
    assert "fib daddr type local ip daddr != 127.0.0.0/8" in body
    assert "chain np_cluster_3 {\n\t\tjump mark_for_masquerade" in body
    local = service(type="NodePort", externalTrafficPolicy="Local", ports=[{"port": 80, "nodePort": 30081}])
    body, (view,) = table([local], node="n2")
    assert [e.pod for e in view.external_endpoints] == ["b"]
    assert "tcp . 30081 : goto np_local_1" in body and "tcp . 30081 . 0 : 10.244.1.2 . 80" in body
    assert "mark_for_masquerade" not in body[body.index("chain np_local_1"):].split("}")[0]  # keeps the client
    body, _ = table([local], node="n9")
    assert "tcp . 30081 : drop" in body  # no local endpoint: dropped


def test_affinity_pins_clients_with_a_timeout() -> None:
    body, (view,) = table([service(sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}})])
    first = view.endpoints[0]
    assert "flags dynamic,timeout; timeout 60s;" in body
    assert f"goto {endpoint_chain(view, first)}" in body and "update @aff_" in body


def test_headless_and_external_name_get_no_rules() -> None:
    headless = service(clusterIP="None")
    external = parse_resource({"kind": "Service", "metadata": {"name": "ext"},
                               "spec": {"type": "ExternalName", "externalName": "example.com"}})
    body, views = table([headless, external])  # type: ignore[list-item]
    assert views == [] and "elements" not in body


def test_cost_per_packet_does_not_grow_with_services() -> None:
    """Whatever the number of services, the dispatch chain is two map lookups."""
    many = [parse_resource({"kind": "Service", "metadata": {"name": f"s{i}"},
                            "spec": {"selector": {"app": "web"}, "clusterIP": f"10.96.{i // 250}.{i % 250 + 2}",
                                     "ports": [{"port": 80}]}}) for i in range(500)]
    body, _ = table(many)  # type: ignore[arg-type]
    dispatch = body[body.index("chain services_dispatch"):].split("}")[0]
    assert dispatch.count("vmap") == 2


def test_changing_one_endpoint_changes_a_few_elements() -> None:
    from podnet.proxy.ruleset import build

    services = [parse_resource({"kind": "Service", "metadata": {"name": f"s{i}"},
                                "spec": {"selector": {"app": f"a{i}"}, "clusterIP": f"10.96.{i // 250}.{i % 250 + 2}",
                                         "ports": [{"port": 80}]}}) for i in range(200)]
    pods = [pod(f"p{i}-{j}", f"10.{100 + i // 250}.{i % 250}.{j + 2}", "n1", app=f"a{i}") for i in range(200) for j in range(3)]
    before = build(service_ports(services, pods, "n1"), "10.0.0.0/8")  # type: ignore[arg-type]
    moved = [p if p.metadata.name != "p7-1" else pod("p7-1", "10.100.7.99", "n1", app="a7") for p in pods]
    after = build(service_ports(services, moved, "n1"), "10.0.0.0/8")  # type: ignore[arg-type]
    script = after.changes_from(before)
    assert script is not None
    lines = script.splitlines()
    # only that service's backends (at most all of them) and the endpoint's hairpin pair
    assert 2 < len(lines) <= 2 * 3 + 2
    assert all("10.96.0.9 . tcp . 80" in line or "hairpin" in line for line in lines)
    gone = [p for p in pods if p.metadata.name != "p7-1"]
    fewer = build(service_ports(services, gone, "n1"), "10.0.0.0/8")  # type: ignore[arg-type]
    assert fewer.changes_from(before) is None or "goto pick_2" in fewer.changes_from(before)  # type: ignore[operator]


def test_external_and_load_balancer_ips() -> None:
    lb = service(type="LoadBalancer", externalIPs=["203.0.113.50"], loadBalancerIP="203.0.113.60",
                 loadBalancerSourceRanges=["172.18.0.0/24"], ports=[{"port": 80, "nodePort": 30090}])
    assert parse_resource(lb.to_manifest()) == lb
    body, _ = table([lb])
    assert "203.0.113.50 . tcp . 80 : goto pick_masq_3" in body
    assert "203.0.113.50 . tcp . 80 . 0 : 10.244.0.2 . 80" in body
    assert "ip saddr { 172.18.0.0/24 } goto pick_masq_3" in body and "\t\tdrop\n" in body
    local = service(externalIPs=["203.0.113.50"], externalTrafficPolicy="Local")
    body, _ = table([local])
    assert "203.0.113.50 . tcp . 80 : goto pick_1" in body  # only n1's endpoint, and no masquerade


def test_weights_share_the_random_pick() -> None:
    heavy = parse_resource({"kind": "Pod", "metadata": {"name": "h", "labels": {"app": "web"},
                                                        "annotations": {"podnet.dev/weight": "2"}},
                            "spec": {"nodeName": "n1"},
                            "status": {"podIP": "10.244.0.9", "conditions": [{"type": "Ready", "status": "True"}]}})
    quiet = parse_resource({"kind": "Pod", "metadata": {"name": "q", "labels": {"app": "web"},
                                                        "annotations": {"podnet.dev/weight": "0"}},
                            "spec": {"nodeName": "n1"},
                            "status": {"podIP": "10.244.0.8", "conditions": [{"type": "Ready", "status": "True"}]}})
    body, _ = table([service()], [PODS[0], heavy, quiet])  # type: ignore[list-item]
    assert "goto pick_3" in body  # weights 1 + 2, and 0 for the quiescent pod
    assert body.count(": 10.244.0.9 . 80") == 2 and ": 10.244.0.8 . 80" not in body
