"""JSON patch (RFC 6902) and JSON merge patch (RFC 7386) as kube-apiserver applies
them, and its refusals: their codes, reasons and messages."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from podnet.apiserver.patch import REJECTED, PatchError, json_patch, merge_patch

DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "apps", "labels": {"app": "web", "tier": "front"}},
    "spec": {"replicas": 2, "template": {"spec": {"containers": [
        {"name": "web", "image": "nginx:1", "ports": [{"containerPort": 80}]},
        {"name": "log", "image": "busybox"}]}}},
}
CONTAINERS = "/spec/template/spec/containers"

JSON_PATCHES = {
    "replace a scalar (kubectl patch --type json, scale)": (
        [{"op": "replace", "path": "/spec/replicas", "value": 5}],
        lambda d: d["spec"].update(replicas=5)),
    "add a label": (
        [{"op": "add", "path": "/metadata/labels/env", "value": "prod"}],
        lambda d: d["metadata"]["labels"].update(env="prod")),
    "add a key with a slash, escaped as ~1": (
        [{"op": "add", "path": "/metadata/labels/example.com~1team", "value": "net"}],
        lambda d: d["metadata"]["labels"].update({"example.com/team": "net"})),
    "remove a label": (
        [{"op": "remove", "path": "/metadata/labels/tier"}],
        lambda d: d["metadata"]["labels"].pop("tier")),
    "append to a list with -": (
        [{"op": "add", "path": f"{CONTAINERS}/-", "value": {"name": "side", "image": "envoy"}}],
        lambda d: d["spec"]["template"]["spec"]["containers"].append({"name": "side", "image": "envoy"})),
    "insert into a list by index": (
        [{"op": "add", "path": f"{CONTAINERS}/0/ports/0", "value": {"containerPort": 443}}],
        lambda d: d["spec"]["template"]["spec"]["containers"][0]["ports"].insert(0, {"containerPort": 443})),
    "replace an item's field by index": (
        [{"op": "replace", "path": f"{CONTAINERS}/0/image", "value": "nginx:2"}],
        lambda d: d["spec"]["template"]["spec"]["containers"][0].update(image="nginx:2")),
    "a passing test, then a change": (
        [{"op": "test", "path": "/spec/replicas", "value": 2}, {"op": "replace", "path": "/spec/replicas", "value": 3}],
        lambda d: d["spec"].update(replicas=3)),
    "move": (
        [{"op": "move", "from": "/metadata/labels/tier", "path": "/metadata/labels/layer"}],
        lambda d: d["metadata"]["labels"].update(layer=d["metadata"]["labels"].pop("tier"))),
    "copy": (
        [{"op": "copy", "from": "/metadata/labels/app", "path": "/metadata/labels/name"}],
        lambda d: d["metadata"]["labels"].update(name="web")),
    "an empty patch": ([], lambda d: None),
    "null decodes to an empty patch": (None, lambda d: None),
}

JSON_PATCH_REFUSALS = {
    "a failed test refuses the whole patch": (
        [{"op": "replace", "path": "/spec/replicas", "value": 9}, {"op": "test", "path": "/spec/replicas", "value": 3}],
        422, REJECTED, "is not equal to tested value 3"),
    "remove a missing key": ([{"op": "remove", "path": "/metadata/labels/nope"}], 422, REJECTED, "nope"),
    "replace a missing key": ([{"op": "replace", "path": "/spec/paused", "value": True}], 422, REJECTED, "paused"),
    "add under a missing parent": ([{"op": "add", "path": "/spec/strategy/type", "value": "Recreate"}],
                                   422, REJECTED, "strategy"),
    "an index past the end": ([{"op": "add", "path": f"{CONTAINERS}/7", "value": {}}], 422, REJECTED, "list"),
    "an unknown op": ([{"op": "merge", "path": "/spec"}], 422, REJECTED, "Unknown operation 'merge'"),
    "an op without a path": ([{"op": "add", "value": 1}], 422, REJECTED, "'path'"),
    "a path without its leading /": ([{"op": "add", "path": "spec", "value": 1}], 422, REJECTED, "start with /"),
    "replacing the document by a list": ([{"op": "replace", "path": "", "value": []}], 422, REJECTED,
                                         "not an object"),
    "an object, not a list": ({"op": "add"}, 400,
                              "json: cannot unmarshal object into Go value of type jsonpatch.Patch", ""),
    "a number among the operations": ([1], 400,
                                      "json: cannot unmarshal number into Go value of type jsonpatch.Operation", ""),
    "more operations than kube-apiserver takes": (
        [{"op": "test", "path": "/kind", "value": "Deployment"}] * 10001, 413,
        "Request entity too large: The allowed maximum operations in a JSON patch is 10000, got 10001", ""),
}

MERGE_PATCHES = {
    "objects merge": ({"metadata": {"labels": {"env": "prod"}}},
                      lambda d: d["metadata"]["labels"].update(env="prod")),
    "null deletes": ({"metadata": {"labels": {"tier": None}}}, lambda d: d["metadata"]["labels"].pop("tier")),
    "null of a missing key does nothing": ({"spec": {"paused": None}}, lambda d: None),
    "a scalar replaces": ({"spec": {"replicas": 0}}, lambda d: d["spec"].update(replicas=0)),
    "a list replaces whole (no merge keys here)": (
        {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:2"}]}}}},
        lambda d: d["spec"]["template"]["spec"].update(containers=[{"name": "web", "image": "nginx:2"}])),
    "an object replaces a scalar, its nulls dropped": (
        {"spec": {"replicas": {"min": 1, "max": None}}}, lambda d: d["spec"].update(replicas={"min": 1})),
    "a scalar replaces an object": ({"metadata": {"labels": "x"}}, lambda d: d["metadata"].update(labels="x")),
    "a new nested object": ({"spec": {"strategy": {"type": "Recreate"}}},
                            lambda d: d["spec"].update(strategy={"type": "Recreate"})),
    "an empty patch": ({}, lambda d: None),
}


def _expected(change: Any) -> dict[str, Any]:
    document = copy.deepcopy(DEPLOYMENT)
    change(document)
    return document


@pytest.mark.parametrize("ops, change", JSON_PATCHES.values(), ids=JSON_PATCHES.keys())
def test_json_patch(ops: Any, change: Any) -> None:
    before = copy.deepcopy(DEPLOYMENT)
    assert json_patch(DEPLOYMENT, ops) == _expected(change)
    assert DEPLOYMENT == before  # never in place


@pytest.mark.parametrize("ops, code, message, detail", JSON_PATCH_REFUSALS.values(), ids=JSON_PATCH_REFUSALS.keys())
def test_json_patch_refused(ops: Any, code: int, message: str, detail: str) -> None:
    with pytest.raises(PatchError) as refused:
        json_patch(DEPLOYMENT, ops)
    assert (refused.value.code, refused.value.message) == (code, message)
    assert detail in refused.value.detail
    assert "\n" not in str(refused.value)


def test_json_patch_refusal_names_its_reason() -> None:
    with pytest.raises(PatchError) as refused:
        json_patch(DEPLOYMENT, [{"op": "test", "path": "/spec/replicas", "value": 3}])
    assert refused.value.reason == "Invalid"
    assert refused.value.heading == "Error from server (Invalid)"
    assert str(refused.value) == f"{REJECTED}: 2 (<class 'int'>) is not equal to tested value 3 (<class 'int'>)"


@pytest.mark.parametrize("patch, change", MERGE_PATCHES.values(), ids=MERGE_PATCHES.keys())
def test_merge_patch(patch: dict[str, Any], change: Any) -> None:
    before = copy.deepcopy(DEPLOYMENT)
    assert merge_patch(DEPLOYMENT, patch) == _expected(change)
    assert DEPLOYMENT == before


@pytest.mark.parametrize("patch", [[{"op": "add"}], "x", 3, None], ids=["a list", "a string", "a number", "null"])
def test_merge_patch_must_be_an_object(patch: Any) -> None:
    with pytest.raises(PatchError) as refused:
        merge_patch(DEPLOYMENT, patch)
    assert (refused.value.code, refused.value.reason, refused.value.message) == (400, "BadRequest",
                                                                                 "Invalid JSON Patch")


RFC_7386_EXAMPLES = [  # the RFC's appendix A, one row each
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize("target, patch, result", RFC_7386_EXAMPLES)
def test_merge_patch_rfc_examples(target: dict[str, Any], patch: dict[str, Any], result: dict[str, Any]) -> None:
    assert merge_patch(target, patch) == result
