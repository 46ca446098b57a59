"""A resource written back keeps what podnet's model never read (a container's
image and env, a port's appProtocol, annotations of other tools), loses what the
model removed, and is stamped with its identity (uid, creationTimestamp,
generation) as the API server stamps it."""

from __future__ import annotations

from dataclasses import replace

from podnet.api import writes
from podnet.model.deployment import Deployment
from podnet.model.identity import stamped
from podnet.model.manifest import parse_resource
from podnet.model.origin import document_of, overlay
from podnet.model.pod import Pod
from podnet.store.sqlite import SqliteStore

POD = {"apiVersion": "v1", "kind": "Pod",
       "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", "tier": "front"},
                    "annotations": {"other.tool/note": "kept"}},
       "spec": {"nodeName": "n1", "restartPolicy": "Always",
                "containers": [{"name": "echo", "image": "nginx:1.27", "env": [{"name": "A", "value": "1"}],
                                "ports": [{"containerPort": 80, "name": "http", "appProtocol": "http"}]}]}}
DEPLOYMENT = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
              "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                       "template": {"metadata": {"labels": {"app": "web"}},
                                    "spec": {"containers": [{"name": "echo", "image": "nginx:1.27",
                                                             "resources": {"limits": {"cpu": "1"}}}]}}}}


def test_a_status_write_keeps_what_the_model_never_read() -> None:
    pod = parse_resource(POD)
    assert isinstance(pod, Pod)
    document = document_of(pod.with_status(pod_ips=("10.244.1.5",), host_ip="172.18.0.3", ready=True))
    container = document["spec"]["containers"][0]
    assert (container["image"], container["env"], container["ports"][0]["appProtocol"]) == (
        "nginx:1.27", [{"name": "A", "value": "1"}], "http")
    assert container["ports"][0]["protocol"] == "TCP"  # the model's default is written in
    assert document["spec"]["restartPolicy"] == "Always"
    assert document["metadata"]["annotations"] == {"other.tool/note": "kept"}
    assert document["status"]["podIP"] == "10.244.1.5"


def test_what_the_model_removes_goes() -> None:
    pod = parse_resource(POD)
    unlabelled = replace(pod, metadata=replace(pod.metadata, labels={"app": "web"}, annotations={}))
    document = document_of(unlabelled)
    assert document["metadata"]["labels"] == {"app": "web"} and "annotations" not in document["metadata"]


def test_an_unchanged_resource_is_its_document() -> None:
    document = document_of(parse_resource(POD))
    assert document_of(parse_resource(document)) == document


def test_a_deployments_pods_inherit_its_template_and_a_new_image_is_a_new_version() -> None:
    deployment = parse_resource(DEPLOYMENT)
    assert isinstance(deployment, Deployment)
    pod = document_of(deployment.pod("web-0"))
    assert pod["kind"] == "Pod" and pod["metadata"]["name"] == "web-0"
    assert pod["spec"]["containers"][0]["image"] == "nginx:1.27"
    assert pod["spec"]["containers"][0]["resources"] == {"limits": {"cpu": "1"}}
    assert pod["metadata"]["ownerReferences"][0]["name"] == "web"
    newer = {**DEPLOYMENT, "spec": {**DEPLOYMENT["spec"], "template": {
        **DEPLOYMENT["spec"]["template"], "spec": {"containers": [{"name": "echo", "image": "nginx:1.28"}]}}}}
    assert parse_resource(newer).template_hash != deployment.template_hash


def test_lists_that_do_not_line_up_are_the_models() -> None:
    document = {"ports": [{"port": 80, "appProtocol": "http"}]}
    read = {"ports": [{"port": 80, "protocol": "TCP"}]}  # what a model that knows no appProtocol made of it
    assert overlay(document, read, {"ports": [{"port": 81}]}) == {"ports": [{"port": 81}]}
    assert overlay(document, read, read) == {"ports": [{"port": 80, "appProtocol": "http", "protocol": "TCP"}]}


def test_identity_is_made_once_and_generation_follows_the_spec() -> None:
    first = stamped({"metadata": {"name": "x"}, "spec": {"a": 1}})
    meta = first["metadata"]
    assert meta["uid"] and meta["creationTimestamp"].endswith("Z") and meta["generation"] == 1
    relabelled = stamped({"metadata": {"name": "x", "labels": {"b": "c"}}, "spec": {"a": 1}}, first)
    assert (relabelled["metadata"]["uid"], relabelled["metadata"]["generation"]) == (meta["uid"], 1)
    respecced = stamped({"metadata": {"name": "x"}, "spec": {"a": 2}}, relabelled)
    assert respecced["metadata"]["generation"] == 2
    assert "generation" not in stamped({"metadata": {"name": "ns"}})["metadata"]  # no spec, no generation


def test_the_store_keeps_the_whole_object_across_writes(store: SqliteStore) -> None:
    assert writes.create(store, parse_resource(POD))
    writes.modify(store, Pod, "default", "web", lambda p: p.with_status(pod_ips=("10.244.1.5",), host_ip=None, ready=True))
    entry = store.get("/registry/pods/default/web")
    assert entry is not None
    assert entry.value["spec"]["containers"][0]["image"] == "nginx:1.27"
    assert entry.value["status"]["podIP"] == "10.244.1.5" and entry.value["metadata"]["uid"]
