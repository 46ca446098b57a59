"""Unknown fields as kube-apiserver finds and judges them: paths as Go's strict
decoder writes them, Strict refused in its words, Warn warned, Ignore silent."""

from __future__ import annotations

from typing import Any

import pytest

from podnet.apiserver.fieldvalidation import check, unknown_fields
from podnet.apiserver.resources import find
from podnet.apiserver.status import ApiError
from podnet.model import kinds
from podnet.model.kinds import Kind


def deployment(**template_spec: Any) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web", "image": "nginx"}], **template_spec}}}}


def kind(name: str) -> Kind:
    found = kinds.named(name)
    assert found is not None
    return found


@pytest.mark.parametrize("name, document, unknown", [
    ("Pod", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
             "spec": {"contianers": [{"name": "c", "image": "x"}]}}, ["spec.contianers"]),
    ("Pod", {"metadata": {"name": "p", "lables": {"a": "b"}}, "spec": {"containers": []}}, ["metadata.lables"]),
    ("Pod", {"metadata": {"name": "p"}, "spec": {}, "bogus": 1}, ["bogus"]),
    ("Pod", {"metadata": {"name": "p", "labels": {"any key": "v", "x/y": "z"},
                          "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}}}, []),
    ("Deployment", deployment(), []),
    ("Deployment", deployment(containers=[{"name": "web", "imagee": "nginx"}]),
     ["spec.template.spec.containers[0].imagee"]),
    ("Deployment", deployment(containers=[{"name": "a", "image": "x"},
                                          {"name": "b", "image": "y", "ports": [{"containerPort": 80, "prot": "TCP"}],
                                           "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]),
     ["spec.template.spec.containers[1].ports[0].prot"]),
    ("Deployment", deployment(initContainers=[{"name": "i", "image": "x", "volumeMounts": [
        {"name": "v", "mountPath": "/v", "hostPath": "/x"}]}]),
     ["spec.template.spec.initContainers[0].volumeMounts[0].hostPath"]),
    ("Service", {"metadata": {"name": "s"}, "spec": {"selector": {"app": "web"}, "sessionAfinity": "None",
                                                     "ports": [{"port": 80, "targetPort": "http"}]}},
     ["spec.sessionAfinity"]),
    ("Service", {"metadata": {"name": "s"}, "status": {"loadBalancer": {}, "phase": "x"}}, ["status.phase"]),
    ("Pod", {"metadata": {"name": "p", "managedFields": [{"manager": "m", "fieldsV1": {"f:spec": {"f:x": {}}}}]}},
     []),  # FieldsV1 is free-form
    ("ClusterNetworkPolicy", {"metadata": {"name": "c", "nmae": "x"}, "spec": {"anything": {"goes": 1}}},
     ["metadata.nmae"]),
])
def test_unknown_fields(name: str, document: dict[str, Any], unknown: list[str]) -> None:
    assert unknown_fields(kind(name), document) == unknown


def test_accepted_unknown_fields_are_dropped_as_kube_apiservers_decoder_drops_them() -> None:
    pod = {"metadata": {"name": "p", "lables": {}}, "spec": {"containers": [{"name": "c", "imagee": "x"}]}}
    assert check("Warn", kind("Pod"), pod) == ['unknown field "metadata.lables"',
                                                'unknown field "spec.containers[0].imagee"']
    assert pod == {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}}
    ignored = {"metadata": {"name": "p"}, "spec": {"x": 1}}
    assert check("Ignore", kind("Pod"), ignored) == [] and ignored == {"metadata": {"name": "p"}, "spec": {}}


def test_a_patch_answers_for_its_own_unknown_fields_only() -> None:
    before = {"metadata": {"name": "p"}, "spec": {"old": 1, "containers": [{"name": "c"}]}}
    after = {"metadata": {"name": "p", "labels": {"a": "b"}}, "spec": {"old": 1, "containers": [{"name": "c"}]}}
    assert check("Strict", kind("Pod"), after, before) == [] and "old" not in after["spec"]
    worse = {"metadata": {"name": "p"}, "spec": {"old": 1, "new": 2}}
    with pytest.raises(ApiError) as refused:
        check("Strict", kind("Pod"), worse, before)
    assert refused.value.message.endswith('strict decoding error: unknown field "spec.new"')


def test_each_path_is_reported_once_in_document_order() -> None:
    pod = {"metadata": {"name": "p"}, "spec": {"b": 1, "containers": [{"name": "c", "x": 1}, {"name": "d", "x": 2}],
                                               "a": 2}}
    assert unknown_fields(kind("Pod"), pod) == ["spec.b", "spec.containers[0].x", "spec.containers[1].x", "spec.a"]


def test_endpoints_which_podnet_derives_are_checked_too() -> None:
    endpoints = find("", "v1", "endpoints")
    assert endpoints is not None
    assert unknown_fields(endpoints.kind, {"metadata": {"name": "e"}, "subsets": [{"adresses": []}]}) == [
        "subsets[0].adresses"]


def test_strict_refuses_in_kube_apiservers_words() -> None:
    bad = deployment(contianers=[], containers=[{"name": "web", "imagee": "x"}])
    with pytest.raises(ApiError) as refused:
        check("Strict", kind("Deployment"), bad)
    assert (refused.value.code, refused.value.reason) == (400, "BadRequest")
    assert refused.value.message == (
        'Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: '
        'unknown field "spec.template.spec.containers[0].imagee", unknown field "spec.template.spec.contianers"')


@pytest.mark.parametrize("mode, warnings", [
    ("Warn", ['unknown field "spec.contianers"']),
    (None, ['unknown field "spec.contianers"']),  # absent: the server's default, Warn
    ("", ['unknown field "spec.contianers"']),
    ("Ignore", []),
])
def test_warn_and_ignore(mode: str | None, warnings: list[str]) -> None:
    assert check(mode, kind("Pod"), {"metadata": {"name": "p"}, "spec": {"contianers": []}}) == warnings


def test_a_clean_document_passes_strict() -> None:
    assert check("Strict", kind("Deployment"), deployment()) == []


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ApiError) as refused:
        check("strict", kind("Pod"), {})
    assert refused.value.code == 400 and '"Ignore", "Strict", "Warn"' in refused.value.message
