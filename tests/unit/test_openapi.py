"""OpenAPI v3 as kubectl reads it: an index of one document per group-version,
each operation's kind and action, fieldValidation on every PATCH (kubectl's query
parameter verifier takes the first PATCH path of a kind and gives up server-side
validation if it lacks it), schemas named as kube-apiserver names them and the
merge keys kubectl >= 1.32 computes apply's patches from."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from podnet.apiserver import openapi, schemas
from podnet.apiserver.resources import SERVED
from podnet.store.sqlite import SqliteStore
from tests.unit.test_apiserver import served

REF = "#/components/schemas/"


def doc(name: str) -> dict[str, Any]:
    return json.loads(openapi.documents()[name].body)


def schema_of(name: str, document: dict[str, Any]) -> dict[str, Any]:
    return document["components"]["schemas"][name]


def test_the_index_names_every_group_version_served_by_its_hash() -> None:
    index = json.loads(openapi.index().body)["paths"]
    wanted = {openapi.gv_path(r.group, r.version) for r in SERVED}
    assert set(index) == wanted and {"api/v1", "apis/apps/v1", "apis/networking.k8s.io/v1"} <= wanted
    for name, entry in index.items():
        document = openapi.documents()[name]
        assert entry["serverRelativeURL"] == f"/openapi/v3/{name}?hash={document.hash}"
        assert len(document.hash) == 128 and document.hash == document.hash.upper()


def test_documents_are_the_same_bytes_when_built_again() -> None:
    first = openapi.documents()["apis/apps/v1"]
    again = openapi._encoded(openapi.document("apps", "v1"))
    assert (again.body, again.hash) == (first.body, first.hash)


def test_every_patch_operation_names_its_kind_and_takes_field_validation() -> None:
    patches = 0
    for name in openapi.documents():
        for path, operations in doc(name)["paths"].items():
            for method, operation in operations.items():
                if method == "parameters":
                    continue
                assert operation["x-kubernetes-action"] in openapi._VERB_OF
                assert set(operation["x-kubernetes-group-version-kind"]) == {"group", "version", "kind"}
                if method == "patch":
                    patches += 1
                    assert {p["name"] for p in operation["parameters"]} >= {
                        "dryRun", "fieldManager", "fieldValidation", "force"}, path
    assert patches == sum(1 + len(set(r.kind.subresources) - openapi.CONNECT_SUBRESOURCES)
                          for r in SERVED if "patch" in r.verbs)


@pytest.mark.parametrize("path, method, action, gvk", [
    ("/api/v1/namespaces/{namespace}/pods", "get", "list", ("", "v1", "Pod")),
    ("/api/v1/namespaces/{namespace}/pods", "post", "post", ("", "v1", "Pod")),
    ("/api/v1/namespaces/{namespace}/pods", "delete", "deletecollection", ("", "v1", "Pod")),
    ("/api/v1/namespaces/{namespace}/pods/{name}", "patch", "patch", ("", "v1", "Pod")),
    ("/api/v1/namespaces/{namespace}/pods/{name}/status", "patch", "patch", ("", "v1", "Pod")),
    ("/api/v1/nodes/{name}", "put", "put", ("", "v1", "Node")),
    ("/api/v1/pods", "get", "list", ("", "v1", "Pod")),
    ("/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale", "patch", "patch", ("autoscaling", "v1", "Scale")),
    ("/apis/apps/v1/namespaces/{namespace}/deployments/{name}/status", "get", "get", ("apps", "v1", "Deployment")),
])
def test_operations(path: str, method: str, action: str, gvk: tuple[str, str, str]) -> None:
    name = "api/v1" if path.startswith("/api/") else "apis/apps/v1"
    operation = doc(name)["paths"][path][method]
    assert operation["x-kubernetes-action"] == action
    assert tuple(operation["x-kubernetes-group-version-kind"].values()) == gvk


def test_a_read_only_resource_has_its_reads_only() -> None:
    paths = doc("api/v1")["paths"]
    assert set(paths["/api/v1/namespaces/{namespace}/endpoints/{name}"]) == {"parameters", "get"}
    assert set(paths["/api/v1/namespaces/{namespace}/endpoints"]) == {"parameters", "get"}


def test_kinds_carry_their_group_version_kind_and_reach_their_schemas() -> None:
    core = doc("api/v1")
    pod = schema_of("io.k8s.api.core.v1.Pod", core)
    assert pod["x-kubernetes-group-version-kind"] == [{"group": "", "version": "v1", "kind": "Pod"}]
    assert pod["properties"]["spec"]["allOf"] == [{"$ref": REF + "io.k8s.api.core.v1.PodSpec"}]
    assert core["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"]["x-kubernetes-action"] == "patch"
    pod_spec = schema_of("io.k8s.api.core.v1.PodSpec", core)
    assert pod_spec["properties"]["containers"]["description"].startswith("List of containers belonging to the pod")
    assert pod_spec["description"] == "PodSpec is a description of a pod."
    assert pod["properties"]["metadata"]["allOf"] == [
        {"$ref": REF + "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}]
    container = schema_of("io.k8s.api.core.v1.Container", core)
    assert container["required"] == ["name"] and container["properties"]["image"]["type"] == "string"
    for document in map(doc, openapi.documents()):  # every $ref resolves inside its own document
        for target in schemas._refs(document):
            assert target in document["components"]["schemas"], target


@pytest.mark.parametrize("name, where", [
    ("io.k8s.api.core.v1.PodTemplateSpec", "apis/apps/v1"),  # a core type, reached from apps
    ("io.k8s.api.apps.v1.DeploymentSpec", "apis/apps/v1"),
    ("io.k8s.api.apps.v1.RollingUpdateDeployment", "apis/apps/v1"),
    ("io.k8s.api.autoscaling.v1.Scale", "apis/apps/v1"),
    ("io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector", "apis/apps/v1"),
    ("io.k8s.api.discovery.v1.EndpointPort", "apis/discovery.k8s.io/v1"),
    ("io.k8s.api.core.v1.ObjectReference", "apis/discovery.k8s.io/v1"),
    ("io.k8s.api.networking.v1.IPBlock", "apis/networking.k8s.io/v1"),
    ("io.k8s.api.coordination.v1.LeaseSpec", "apis/coordination.k8s.io/v1"),
    ("io.k8s.api.core.v1.Event", "api/v1"),
    ("io.k8s.apimachinery.pkg.apis.meta.v1.Status", "api/v1"),
])
def test_types_are_named_by_their_go_package(name: str, where: str) -> None:
    assert name in doc(where)["components"]["schemas"]


def test_the_apps_package_holds_the_deployment_and_replicaset_types_only() -> None:
    apps = {n for n in doc("apis/apps/v1")["components"]["schemas"] if n.startswith("io.k8s.api.apps.")}
    assert {n.rsplit(".", 1)[1] for n in apps} == {"Deployment", "DeploymentList", "DeploymentSpec",
                                                    "DeploymentStatus", "DeploymentStrategy",
                                                    "DeploymentCondition", "RollingUpdateDeployment",
                                                    "ReplicaSet", "ReplicaSetList", "ReplicaSetSpec",
                                                    "ReplicaSetStatus", "ReplicaSetCondition"}


@pytest.mark.parametrize("owner, field, extensions", [
    ("io.k8s.api.core.v1.PodSpec", "containers",
     {"x-kubernetes-patch-strategy": "merge", "x-kubernetes-patch-merge-key": "name",
      "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]}),
    ("io.k8s.api.core.v1.Container", "ports",
     {"x-kubernetes-patch-strategy": "merge", "x-kubernetes-patch-merge-key": "containerPort",
      "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["containerPort", "protocol"]}),
    ("io.k8s.api.core.v1.Container", "env", {"x-kubernetes-patch-merge-key": "name"}),
    ("io.k8s.api.core.v1.ServiceSpec", "ports",
     {"x-kubernetes-patch-strategy": "merge", "x-kubernetes-patch-merge-key": "port",
      "x-kubernetes-list-map-keys": ["port", "protocol"]}),
    ("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "finalizers",
     {"x-kubernetes-patch-strategy": "merge", "x-kubernetes-list-type": "set"}),
    ("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "ownerReferences", {"x-kubernetes-patch-merge-key": "uid"}),
    ("io.k8s.api.core.v1.PodStatus", "hostIPs",
     {"x-kubernetes-patch-merge-key": "ip", "x-kubernetes-list-type": "atomic"}),
    ("io.k8s.api.core.v1.PodSpec", "nodeSelector", {"x-kubernetes-map-type": "atomic"}),
])
def test_lists_carry_their_merge_keys(owner: str, field: str, extensions: dict[str, Any]) -> None:
    catalogue = schemas.catalogue()
    prop = catalogue.components[owner]["properties"][field]
    assert {key: prop.get(key) for key in extensions} == extensions


def test_a_list_without_a_rule_declares_no_merge() -> None:
    container = schemas.catalogue().components["io.k8s.api.core.v1.Container"]["properties"]
    assert not any(key.startswith("x-kubernetes-") for key in container["args"])
    assert not any(key.startswith("x-kubernetes-") for key in container["envFrom"])


@pytest.mark.parametrize("owner, field, wanted", [
    ("io.k8s.api.core.v1.ServicePort", "targetPort",
     {"type": "string", "format": "int-or-string", "x-kubernetes-int-or-string": True}),
    ("io.k8s.api.core.v1.ContainerPort", "containerPort", {"type": "integer", "format": "int32"}),
    ("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "generation", {"type": "integer", "format": "int64"}),
    ("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "creationTimestamp",
     {"type": "string", "format": "date-time"}),
    ("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "labels",
     {"type": "object", "additionalProperties": {"type": "string"}}),
    ("io.k8s.api.core.v1.ResourceRequirements", "limits",
     {"type": "object", "additionalProperties": {"type": "string"}}),  # quantities as strings
    ("io.k8s.api.core.v1.PodSpec", "hostNetwork", {"type": "boolean"}),
])
def test_field_types(owner: str, field: str, wanted: dict[str, Any]) -> None:
    prop = schemas.catalogue().components[owner]["properties"][field]
    assert {key: prop.get(key) for key in wanted} == wanted


def test_a_kind_the_client_lacks_keeps_its_fields_and_knows_its_metadata() -> None:
    document = doc("apis/policy.networking.k8s.io/v1alpha2")
    cnp = schema_of("io.k8s.networking.policy.v1alpha2.ClusterNetworkPolicy", document)
    assert cnp["x-kubernetes-preserve-unknown-fields"] is True
    assert cnp["x-kubernetes-group-version-kind"] == [
        {"group": "policy.networking.k8s.io", "version": "v1alpha2", "kind": "ClusterNetworkPolicy"}]
    assert cnp["properties"]["metadata"]["allOf"] == [
        {"$ref": REF + "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}]


def test_served_with_its_hash_it_is_kept_for_good(store: SqliteStore) -> None:
    async def check(client: TestClient) -> None:
        index = await client.get("/openapi/v3")
        assert index.status == 200 and index.headers["Cache-Control"] == "no-cache, private"
        url = (await index.json())["paths"]["apis/apps/v1"]["serverRelativeURL"]
        answer = await client.get(url)
        assert answer.status == 200 and answer.headers["Cache-Control"] == "public, immutable"
        assert answer.headers["ETag"] == f'"{url.rsplit("=", 1)[1]}"' and "Expires" in answer.headers
        assert "io.k8s.api.apps.v1.Deployment" in (await answer.json())["components"]["schemas"]
        plain = await client.get("/openapi/v3/apis/apps/v1")
        assert plain.status == 200 and plain.headers["Cache-Control"] == "no-cache, private"
        same = await client.get("/openapi/v3/apis/apps/v1", headers={"If-None-Match": answer.headers["ETag"]})
        assert same.status == 304
        stale = await client.get("/openapi/v3/apis/apps/v1?hash=0BAD", allow_redirects=False)
        assert stale.status == 301 and stale.headers["Location"] == url
        missing = await client.get("/openapi/v3/apis/nope/v1")
        assert (missing.status, (await missing.json())["reason"]) == (404, "NotFound")

    served(store, check)
