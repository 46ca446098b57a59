"""OpenAPI v2 as kubectl up to 1.28 reads it: one Swagger 2.0 document, and the
same in gnostic's protobuf form, checked field by field against gnostic's
numbers."""

from __future__ import annotations

import yaml

from podnet.apiserver import swagger
from podnet.apiserver.protobuf.wire import fields


def test_definitions_paths_and_the_dry_run_kubectl_120_looks_for() -> None:
    doc = swagger.swagger()
    assert doc["swagger"] == "2.0"
    pod = doc["definitions"]["io.k8s.api.core.v1.Pod"]
    assert pod["x-kubernetes-group-version-kind"] == [{"group": "", "kind": "Pod", "version": "v1"}]
    assert pod["properties"]["spec"]["$ref"] == "#/definitions/io.k8s.api.core.v1.PodSpec"  # v3's allOf, undone
    patch = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert {"name": "dryRun", "in": "query"}.items() <= patch["parameters"][0].items()
    assert patch["parameters"][-1]["in"] == "body" and "application/strategic-merge-patch+json" in patch["consumes"]
    assert "#/components/" not in str(doc)


def message(data: bytes) -> dict[int, list[int | bytes]]:
    found: dict[int, list[int | bytes]] = {}
    for number, _, value in fields(data):
        found.setdefault(number, []).append(value)
    return found


def test_the_protobuf_form_holds_the_same_document_in_gnostics_fields() -> None:
    body, etag = swagger.encoded(True)
    document = message(body)
    assert document[1] == [b"2.0"] and etag.startswith('"')  # Document.swagger
    definitions = [message(named) for named in message(document[9][0])[1]]  # Definitions.additional_properties
    by_name = {d[1][0]: message(d[2][0]) for d in definitions}  # NamedSchema: name, value
    deployment = by_name[b"io.k8s.api.apps.v1.Deployment"]
    extension = message(deployment[31][0])  # Schema.vendor_extension: NamedAny
    assert extension[1] == [b"x-kubernetes-group-version-kind"]
    assert yaml.safe_load(message(extension[2][0])[2][0]) == [{"group": "apps", "kind": "Deployment", "version": "v1"}]
    properties = {message(p)[1][0]: message(message(p)[2][0]) for p in message(deployment[25][0])[1]}
    assert properties[b"spec"][1] == [b"#/definitions/io.k8s.api.apps.v1.DeploymentSpec"]  # Schema._ref
    assert message(properties[b"kind"][22][0])[1] == [b"string"]  # Schema.type: TypeItem
