"""The service table, rendered without root: what each kind of service becomes."""

from __future__ import annotations

from podnet.model.manifest import parse_resource
from podnet.model.pod import Pod
from podnet.model.service import Service
from podnet.proxy.endpoints import service_ports
from podnet.proxy.ruleset import endpoint_chain, external_chain, port_chain, render


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


def test_cluster_ip_is_one_map_element_and_a_random_pick() -> None:
    body, (view,) = table([service()])
    assert f"10.96.0.2 . tcp . 80 : goto {port_chain(view)}" in body
    assert "numgen random mod 3 vmap" in body
    for endpoint in view.endpoints:
        assert f"dnat ip to {endpoint.ip}:80" in body
        assert f"ip saddr {endpoint.ip} jump mark_for_masquerade" in body  # hairpin
    assert "ip saddr != 10.244.0.0/16 jump mark_for_masquerade" in body  # from outside the pod network


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
    assert f"tcp . 30080 : goto {external_chain(view)}" in body
    assert "fib daddr type local ip daddr != 127.0.0.0/8" in body
    local = service(type="NodePort", externalTrafficPolicy="Local", ports=[{"port": 80, "nodePort": 30081}])
    body, (view,) = table([local], node="n2")
    assert [e.pod for e in view.external_endpoints] == ["b"]
    chain = body[body.index(f"chain {external_chain(view)}"):]
    assert "mark_for_masquerade" not in chain.split("}")[0]  # the client's address is kept
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
