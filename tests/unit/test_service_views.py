"""The proxy's service views are rebuilt only for services whose objects changed."""

from __future__ import annotations

from podnet.controller.endpointslices import desired
from podnet.model.meta import ObjectMeta
from podnet.model.pod import Container, Pod
from podnet.model.service import Service, ServicePort
from podnet.proxy.endpoints import ViewMemo, service_ports


def _cluster(ip: str) -> tuple[list[Service], list[Pod]]:
    services = [Service(ObjectMeta(f"s{i}", "default"), "ClusterIP", {"app": f"a{i}"}, (ServicePort(80, 8080),),
                        (f"10.96.0.{i + 2}",)) for i in range(2)]
    pods = [Pod(ObjectMeta(f"p{i}", "default", {"app": f"a{i}"}), (Container("c"),), "n1", pod_ips=(ip if i else
                f"10.244.0.{i + 2}",), ready=True) for i in range(2)]
    return services, pods


def test_the_same_objects_keep_their_views_and_changed_ones_get_new() -> None:
    services, pods = _cluster("10.244.0.9")
    slices = desired(services, pods)
    memo = ViewMemo()
    first = service_ports(services, slices, "n1", memo=memo)
    again = service_ports(services, slices, "n1", memo=memo)
    assert [a is b for a, b in zip(first, again)] == [True, True]
    moved = desired(services, _cluster("10.244.0.7")[1])  # s1's endpoint moved: new slice objects
    changed = service_ports(services, [slices[0], *moved[1:]], "n1", memo=memo)
    assert changed[0] is first[0] and changed[1] is not first[1]
    assert [e.ip for e in changed[1].endpoints] == ["10.244.0.7"]
    weighted = service_ports(services, [slices[0], *moved[1:]], "n1", {("default", "p1"): 3}, memo)
    assert weighted[1].endpoints[0].weight == 3
    elsewhere = service_ports(services, [slices[0], *moved[1:]], "n2", memo=memo)
    assert elsewhere[0].local_endpoints == () and first[0].local_endpoints != ()


def test_memos_are_their_owners_own() -> None:
    services, pods = _cluster("10.244.0.9")
    slices = desired(services, pods)
    mine, theirs = ViewMemo(), ViewMemo()
    first = service_ports(services, slices, "n1", memo=mine)
    service_ports(services, slices, "n2", memo=theirs)  # another node's proxy (or trace) does not replace mine
    assert all(a is b for a, b in zip(first, service_ports(services, slices, "n1", memo=mine)))
    assert not any(a is b for a, b in zip(first, service_ports(services, slices, "n1")))  # no memo: made afresh
