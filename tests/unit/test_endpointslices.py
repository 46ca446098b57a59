"""The EndpointSlice controller: which pods become endpoints, with which
conditions and ports, and the control plane writing exactly those slices."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from podnet.controller.endpointslices import desired
from podnet.controller.manager import ControlPlane
from podnet.model.endpointslice import MANAGED_BY, SERVICE_NAME, EndpointSlice
from podnet.model.manifest import parse_resource
from podnet.model.meta import ObjectMeta
from podnet.model.node import Node
from podnet.model.pod import Pod
from podnet.model.service import Service
from podnet.store import resources
from podnet.store.sqlite import SqliteStore


def pod(name: str, ip: str | None, ready: bool = True, node: str = "n1", namespace: str = "default",
        app: str = "web", port_name: str = "http", port: int = 8080, **status: Any) -> Pod:
    return parse_resource({  # type: ignore[return-value]
        "kind": "Pod", "metadata": {"name": name, "namespace": namespace, "labels": {"app": app}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "ports": [{"name": port_name, "containerPort": port}]}]},
        "status": {**({"podIP": ip} if ip else {}), "conditions": [{"type": "Ready", "status": str(ready)}], **status}})


def service(name: str = "web", **spec: Any) -> Service:
    return parse_resource({"kind": "Service", "metadata": {"name": name}, "spec": {  # type: ignore[return-value]
        "selector": {"app": "web"}, "clusterIP": "10.96.0.2",
        "ports": [{"name": "http", "port": 80, "targetPort": "http"}], **spec}})


def conditions(slices: list[EndpointSlice]) -> dict[str, tuple[bool, bool, bool]]:
    return {e.pod or "": (e.ready, e.serving, e.terminating) for s in slices for e in s.endpoints}


def test_selected_pods_with_an_address_become_endpoints_grouped_by_resolved_port() -> None:
    pods = [pod("a", "10.244.0.2"), pod("b", "10.244.1.2", port=9090), pod("none", None),
            pod("other-ns", "10.244.0.9", namespace="apps"), pod("other-app", "10.244.0.8", app="db"),
            pod("no-such-port", "10.244.0.7", port_name="metrics")]
    slices = desired([service()], pods)
    assert sorted((s.ports[0].port, [e.address for e in s.endpoints]) for s in slices) == [
        (8080, ["10.244.0.2"]), (9090, ["10.244.1.2"])]
    for s in slices:
        assert s.metadata.labels[SERVICE_NAME] == "web" and s.metadata.owner == ("Service", "web")
        assert s.metadata.name.startswith("web-") and s.ports[0].name == "http"
    assert desired([service()], pods) == slices  # names are stable: a pass rewrites in place


def test_conditions_as_kubernetes_sets_them() -> None:
    pods = [pod("up", "10.244.0.2"), pod("down", "10.244.0.3", ready=False), pod("leaving", "10.244.0.4").terminated(),
            pod("done", "10.244.0.5", phase="Succeeded")]
    assert conditions(desired([service()], pods)) == {
        "up": (True, True, False), "down": (False, False, False), "leaving": (False, True, True)}
    published = desired([service(publishNotReadyAddresses=True)], pods)
    assert conditions(published) == {"up": (True, True, False), "down": (True, False, False),
                                     "leaving": (True, True, True)}


def test_hostname_zone_and_node_come_from_the_pod_and_its_node() -> None:
    named = parse_resource({"kind": "Pod", "metadata": {"name": "db-0", "labels": {"app": "web"}},
                            "spec": {"nodeName": "n2", "hostname": "db-0", "subdomain": "web"},
                            "status": {"podIP": "10.244.1.7", "conditions": [{"type": "Ready", "status": "True"}]}})
    zoned = Node(ObjectMeta("n2", "", {"topology.kubernetes.io/zone": "z-b"}))
    (slice_,) = desired([service(ports=[])], [named], [zoned])  # type: ignore[list-item]
    (endpoint,) = slice_.endpoints
    assert (endpoint.hostname, endpoint.node_name, endpoint.zone, slice_.ports) == ("db-0", "n2", "z-b", ())


def test_a_hundred_endpoints_to_a_slice() -> None:
    pods = [pod(f"p{i}", f"10.244.{i // 200}.{i % 200 + 2}") for i in range(250)]
    slices = desired([service()], pods)
    assert sorted(len(s.endpoints) for s in slices) == [50, 100, 100]
    assert len({s.metadata.name for s in slices}) == 3
    assert slices[0].endpoints[0].address == "10.244.0.2" and slices[0].endpoints[1].address == "10.244.0.3"


def test_external_name_and_selectorless_services_get_none() -> None:
    external = service("ext", type="ExternalName", externalName="example.org", selector={})
    assert desired([external, service("manual", selector={})], [pod("a", "10.244.0.2")]) == []


def test_the_control_plane_writes_changes_and_deletes_the_slices(store: SqliteStore) -> None:
    mine = EndpointSlice(ObjectMeta("by-hand", labels={SERVICE_NAME: "web"}))  # a user's: never touched
    for resource in (Node(ObjectMeta("n1", "")), service(), pod("a", "10.244.0.2"), pod("b", "10.244.0.3", ready=False),
                     mine):
        resources.put(store, resource)
    plane = ControlPlane(store)
    plane.reconcile()

    def written() -> dict[str, tuple[bool, bool, bool]]:
        found = resources.list_kind(store, EndpointSlice)[0]
        assert mine in found
        return conditions([s for s in found if MANAGED_BY in s.metadata.labels])

    assert written() == {"a": (True, True, False), "b": (False, False, False)}
    revision = store.revision()
    plane.reconcile()
    assert store.revision() == revision  # nothing changed, nothing written
    resources.put(store, pod("b", "10.244.0.3"))
    plane.reconcile()
    assert written() == {"a": (True, True, False), "b": (True, True, False)}
    resources.delete(store, service())
    plane.reconcile()
    assert written() == {}


def test_a_dual_stack_service_gets_a_slice_per_family_and_a_single_stack_one_only_its_own() -> None:
    both = replace(service(), cluster_ips=("10.96.0.2", "fd00:10:96::2"), ip_families=("IPv4", "IPv6"),
                   ip_family_policy="PreferDualStack")
    v6_only = replace(service("web6"), cluster_ips=("fd00:10:96::3",), ip_families=("IPv6",),
                      ip_family_policy="SingleStack")
    pods = [replace(pod("a", "10.244.0.2"), pod_ips=("10.244.0.2", "fd00:10:244::2")),
            pod("b", "10.244.0.3")]  # a pod with no IPv6 address is in no IPv6 slice
    slices = desired([both, v6_only], pods)
    found = {(s.service, s.address_type): sorted(e.address for e in s.endpoints) for s in slices}
    assert found == {("web", "IPv4"): ["10.244.0.2", "10.244.0.3"], ("web", "IPv6"): ["fd00:10:244::2"],
                     ("web6", "IPv6"): ["fd00:10:244::2"]}
