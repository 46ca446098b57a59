"""The API server's semantics over a real SQLite store: apply's three answers,
all-or-nothing checks, immutable fields, namespaces, deletion and CAS retries."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from podnet.api import cluster, services, verbs, writes
from podnet.api.apply import apply
from podnet.api.delete import delete
from podnet.errors import ManifestError, PodnetError
from podnet.model.deployment import Deployment
from podnet.model.manifest import Resource, parse_resource
from podnet.model.namespace import Namespace
from podnet.model.pod import Pod
from podnet.model.service import Service
from podnet.store import resources
from podnet.store.allocator import AllocationError
from podnet.store.sqlite import SqliteStore


def pod(name: str, namespace: str = "default", **spec: Any) -> Resource:
    return parse_resource({"kind": "Pod", "metadata": {"name": name, "namespace": namespace, "labels": {"app": "web"}},
                           "spec": spec})


def service(name: str, **spec: Any) -> Resource:
    return parse_resource({"kind": "Service", "metadata": {"name": name},
                           "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}], **spec}})


def deployment(replicas: int = 3, image: str = "echo") -> Resource:
    return parse_resource({"kind": "Deployment", "metadata": {"name": "web"}, "spec": {
        "replicas": replicas, "template": {"metadata": {"labels": {"app": "web"}},
                                           "spec": {"containers": [{"name": "c", "image": image}]}}}})


def test_apply_answers_created_configured_unchanged(store: SqliteStore) -> None:
    assert [a.line() for a in apply(store, [pod("a"), service("web")])] == ["pod/a created", "service/web created"]
    assert [a.line() for a in apply(store, [pod("a"), service("web")])] == ["pod/a unchanged", "service/web unchanged"]
    relabelled = parse_resource({**pod("a").to_manifest(), "metadata": {"name": "a", "labels": {"app": "db"}}})
    assert [a.line() for a in apply(store, [relabelled])] == ["pod/a configured"]
    assert resources.get(store, Pod, "default", "a").metadata.labels == {"app": "db"}  # type: ignore[union-attr]


def test_a_service_keeps_its_allocated_addresses_across_applies(store: SqliteStore) -> None:
    (first,) = apply(store, [service("web", type="NodePort")])
    created: Service = first.resource  # type: ignore[assignment]
    assert created.cluster_ip and created.ports[0].node_port
    (again,) = apply(store, [service("web", type="NodePort")])
    assert again.action == "unchanged" and again.resource == created
    (other,) = apply(store, [service("other", type="NodePort")])
    assert other.resource.cluster_ip != created.cluster_ip  # type: ignore[union-attr]
    assert other.resource.ports[0].node_port != created.ports[0].node_port  # type: ignore[union-attr]


def test_a_refused_service_holds_no_address_or_port(store: SqliteStore) -> None:
    """Its free clusterIP is not kept when its node port is taken: the store is as it was, revision and all."""
    apply(store, [service("web", type="NodePort", ports=[{"port": 80, "nodePort": 30080}])])
    before = store.revision(), store.list("")[0]
    taken = service("other", type="NodePort", clusterIP="10.96.5.5", ports=[{"port": 80, "nodePort": 30080}])
    for door in (lambda: verbs.create(store, taken), lambda: apply(store, [taken])):
        with pytest.raises(AllocationError, match="node-ports 30080 is already allocated to default/web"):
            door()
        assert (store.revision(), store.list("")[0]) == before


def test_addresses_taken_before_a_racing_refusal_are_given_back(store: SqliteStore) -> None:
    """Two services asking for one address pass the check; the second's claim fails and the first's is undone."""
    twins = [service(name, clusterIP="10.96.5.5") for name in ("a", "b")]
    before = store.list("")[0]
    with pytest.raises(AllocationError, match="cluster-ips 10.96.5.5 is already allocated to default/a"):
        services.claim(store, cluster.load(store), twins)  # type: ignore[arg-type]
    assert store.list("")[0] == before


def test_immutable_fields_are_refused_and_nothing_is_written(store: SqliteStore) -> None:
    apply(store, [service("web", clusterIP="10.96.0.50"), pod("a", nodeName="n1")])
    before = store.revision()
    with pytest.raises(ManifestError, match=r"document 2 \(service/web\): spec.clusterIP: field is immutable"):
        apply(store, [pod("b"), service("web", clusterIP="10.96.0.51")])
    with pytest.raises(ManifestError, match="spec.nodeName: field is immutable"):
        apply(store, [pod("a", nodeName="n2")])
    with pytest.raises(ManifestError, match="may not change fields other than labels"):
        apply(store, [pod("a", nodeName="n1", hostname="other")])
    assert store.revision() == before and resources.get(store, Pod, "default", "b") is None


def test_a_namespace_must_exist_or_come_in_the_same_apply(store: SqliteStore) -> None:
    with pytest.raises(ManifestError, match='namespaces "apps" not found'):
        apply(store, [pod("a", "apps")])
    apps = parse_resource({"kind": "Namespace", "metadata": {"name": "apps", "labels": {"team": "x"}}})
    assert [a.line() for a in apply(store, [pod("a", "apps"), apps])] == ["namespace/apps created", "pod/a created"]
    stored = resources.get(store, Namespace, "", "apps")
    assert stored is not None and stored.metadata.labels == {"team": "x", "kubernetes.io/metadata.name": "apps"}
    assert {n.metadata.name for n in resources.list_kind(store, Namespace)[0]} == {"apps", "default", "kube-node-lease", "kube-system"}


def test_deleting_a_namespace_takes_everything_in_it(store: SqliteStore) -> None:
    apps = parse_resource({"kind": "Namespace", "metadata": {"name": "apps"}})
    apply(store, [apps, pod("bound", "apps", nodeName="n1"), pod("pending", "apps")])
    delete(store, "Namespace", "", "apps")
    bound = resources.get(store, Pod, "apps", "bound")
    assert bound is not None and bound.terminating  # its kubelet finishes it
    assert resources.get(store, Pod, "apps", "pending") is None
    with pytest.raises(ManifestError, match="being deleted"):
        apply(store, [pod("new", "apps")])
    store.delete(resources.key_of(bound))  # what the kubelet does last
    from podnet.api.delete import finish_namespace
    assert finish_namespace(store, "apps") and resources.get(store, Namespace, "", "apps") is None
    with pytest.raises(PodnetError, match="may not be deleted"):
        delete(store, "Namespace", "", "default")


def test_deleting_a_service_gives_its_address_back(store: SqliteStore) -> None:
    (applied,) = apply(store, [service("web", clusterIP="10.96.0.50")])
    delete(store, "Service", "default", "web")
    with pytest.raises(writes.NotFound, match='^services "web" not found$'):
        delete(store, "Service", "default", "web")
    (again,) = apply(store, [service("other", clusterIP="10.96.0.50")])
    assert again.action == "created"


def test_concurrent_scales_lose_no_update(store: SqliteStore, tmp_path: Path) -> None:
    """Twenty writers, each adding one replica from its own connection, as twenty
    `podnet scale` processes would: every increment lands."""
    apply(store, [deployment(replicas=0)])

    def bump() -> None:
        own = SqliteStore(tmp_path / "store.db")
        try:
            writes.modify(own, Deployment, "default", "web", lambda d: d.scaled(d.replicas + 1))
        finally:
            own.close()

    threads = [threading.Thread(target=bump) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert resources.get(store, Deployment, "default", "web").replicas == 20  # type: ignore[union-attr]


def test_a_deployments_selector_is_immutable_and_its_template_versioned(store: SqliteStore) -> None:
    apply(store, [deployment()])
    changed = deployment(image="other")
    assert changed.template_hash != deployment().template_hash  # type: ignore[union-attr]
    assert [a.action for a in apply(store, [changed])] == ["configured"]
    other = parse_resource({**deployment().to_manifest(), "spec": {**deployment().to_manifest()["spec"],
                            "selector": {"matchLabels": {"app": "web", "x": "y"}},
                            "template": {"metadata": {"labels": {"app": "web", "x": "y"}}, "spec": {}}}})
    with pytest.raises(ManifestError, match="spec.selector: field is immutable"):
        apply(store, [other])


def test_an_object_the_model_cannot_read_is_left_out_of_lists_not_fatal(store: SqliteStore,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    """As a podnet of another version may have written it: every controller's pass
    goes on without it, and it is logged once, not on every pass."""
    unreadable = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "odd", "namespace": "default"},
                  "spec": {"ports": [{"port": 80, "nodePort": 5}]}}
    store.put(resources.key("Service", "default", "odd"), unreadable)
    apply(store, [parse_resource({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "fine"},
                                  "spec": {"ports": [{"port": 80}]}})])
    for _ in range(2):
        assert [s.metadata.name for s in resources.list_kind(store, Service)[0]] == ["fine"]
    said = "left out, unreadable: /registry/services/default/odd.spec.ports[0].nodePort: 5 is out of range 30000..32767"
    assert [r.message for r in caplog.records].count(said) == 1
