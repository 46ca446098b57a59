"""Which services the userspace proxy serves, and with what."""

from __future__ import annotations

from podnet.errors import ManifestError
from podnet.model.manifest import parse_resource
from podnet.controller.endpointslices import desired
from podnet.proxy.endpoints import pod_weights, service_ports
from podnet.proxy.userspace_manager import desired_ports

import pytest


def test_userspace_services_leave_nftables_for_their_own_proxy() -> None:
    service = parse_resource({"kind": "Service", "metadata": {
        "name": "web", "annotations": {"podnet.dev/proxy-mode": "userspace", "podnet.dev/scheduler": "wlc"}},
        "spec": {"selector": {"app": "web"}, "clusterIP": "10.96.0.3", "ports": [{"port": 80}]}})
    pod = parse_resource({"kind": "Pod", "metadata": {"name": "a", "labels": {"app": "web"},
                                                       "annotations": {"podnet.dev/weight": "98"}},
                          "spec": {}, "status": {"podIP": "10.244.0.2", "conditions": [{"type": "Ready", "status": "True"}]}})
    slices = desired([service], [pod])  # type: ignore[list-item]
    assert service_ports([service], slices, "n1") == []  # type: ignore[list-item]
    (spec,) = desired_ports([service], slices, pod_weights([pod])).values()  # type: ignore[list-item]
    assert (spec.address, spec.port, spec.protocol, spec.scheduler) == ("10.96.0.3", 80, "tcp", "wlc")
    assert [(e.ip, e.weight) for e in spec.endpoints] == [("10.244.0.2", 98)]


def test_bad_mode_or_scheduler_is_named() -> None:
    for annotations, message in (({"podnet.dev/proxy-mode": "ipvs"}, "'ipvs' is not nftables or userspace"),
                                 ({"podnet.dev/scheduler": "fifo"}, "'fifo' is not one of rr, wrr")):
        with pytest.raises(ManifestError, match=message):
            parse_resource({"kind": "Service", "metadata": {"name": "s", "annotations": annotations},
                            "spec": {"ports": [{"port": 80}]}})


def test_the_userspace_mode_proxies_every_service_where_kube_proxy_held_it() -> None:
    service = parse_resource({"kind": "Service", "metadata": {"name": "web"}, "spec": {
        "type": "LoadBalancer", "selector": {"app": "web"}, "clusterIP": "10.96.0.3", "externalIPs": ["203.0.113.5"],
        "externalTrafficPolicy": "Local", "sessionAffinity": "ClientIP", "loadBalancerSourceRanges": ["192.0.2.0/24"],
        "ports": [{"port": 80, "nodePort": 30080}]}, "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}]}}})
    pods = [parse_resource({"kind": "Pod", "metadata": {"name": name, "labels": {"app": "web"}},
                            "spec": {"nodeName": node}, "status": {
                                "podIP": ip, "conditions": [{"type": "Ready", "status": "True"}]}})
            for name, node, ip in (("a", "n1", "10.244.0.2"), ("b", "n2", "10.244.1.2"))]
    slices = desired([service], pods)  # type: ignore[list-item]
    assert desired_ports([service], slices, {}, "n1") == {}  # not annotated: the nftables mode's  # type: ignore[list-item]
    specs = desired_ports([service], slices, {}, "n1", every_service=True)  # type: ignore[list-item]
    by_address = {(s.address, s.port): s for s in specs.values()}
    assert set(by_address) == {("10.96.0.3", 80), ("203.0.113.5", 80), ("203.0.113.9", 80), ("0.0.0.0", 30080)}
    assert {e.ip for e in by_address["10.96.0.3", 80].endpoints} == {"10.244.0.2", "10.244.1.2"}
    for outside in (("203.0.113.5", 80), ("203.0.113.9", 80), ("0.0.0.0", 30080)):  # Local: this node's only
        assert [e.ip for e in by_address[outside].endpoints] == ["10.244.0.2"]
    assert by_address["203.0.113.9", 80].sources == ("192.0.2.0/24",) and not by_address["203.0.113.5", 80].sources
    assert all(s.affinity_seconds == 10800 for s in specs.values())  # ClientIP's default timeout


def test_client_ip_affinity_and_source_ranges_in_the_proxy() -> None:
    from podnet.proxy.endpoints import Endpoint
    from podnet.proxy.userspace import PortProxy, PortSpec

    endpoints = tuple(Endpoint(f"10.244.0.{i}", 80, f"p{i}", "n1", True) for i in (2, 3, 4))
    sticky = PortProxy(PortSpec("s", "10.96.0.3", 80, "tcp", "rr", endpoints, affinity_seconds=60))
    first = sticky.pick("192.0.2.7")
    assert first is not None and all(sticky.pick("192.0.2.7") is first for _ in range(5))
    assert sticky.pick("192.0.2.8") is not first  # round robin goes on for the next client
    sticky.update(PortSpec("s", "10.96.0.3", 80, "tcp", "rr", tuple(e for e in endpoints
                                                                    if f"{e.ip}:80" != first.address), 60))
    assert sticky.pick("192.0.2.7") is not first  # its server left: a new one, kept from now on
    ranged = PortProxy(PortSpec("r", "203.0.113.9", 80, "tcp", "rr", endpoints, sources=("192.0.2.0/24",)))
    assert ranged.pick("192.0.2.7") is not None and ranged.pick("198.51.100.1") is None


def test_each_family_of_a_dual_stack_service_gets_its_listeners_and_its_endpoints() -> None:
    from tests.unit.test_proxy_ruleset import DUAL_PODS, dual_service, family_slices

    service = dual_service(type="LoadBalancer", externalIPs=["203.0.113.5", "2001:db8::5"],
                           ports=[{"port": 80, "nodePort": 30080}])
    single = dual_service("v6", ("fd00:10:96::7",))
    slices = family_slices([service, single], DUAL_PODS)
    specs = desired_ports([service, single], slices, {}, "n1", every_service=True)
    by_address = {(s.address, s.port): s for s in specs.values()}
    assert set(by_address) == {("10.96.0.2", 80), ("fd00:10:96::2", 80), ("203.0.113.5", 80), ("2001:db8::5", 80),
                               ("0.0.0.0", 30080), ("::", 30080), ("fd00:10:96::7", 80)}
    assert specs["default/web:80"].address == "10.96.0.2"  # the primary family's keep their names
    for address in ("fd00:10:96::2", "2001:db8::5", "::", "fd00:10:96::7"):
        assert {e.ip for e in by_address[address, 80 if address != "::" else 30080].endpoints} == \
            {"fd00:10:244::2", "fd00:10:244:1::2", "fd00:10:244:2::2"}
    for address in ("10.96.0.2", "203.0.113.5", "0.0.0.0"):
        assert all(":" not in e.ip for e in by_address[address, 80 if address != "0.0.0.0" else 30080].endpoints)
