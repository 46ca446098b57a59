"""`-o jsonpath` as kubectl prints it, one row per form users copy from kubectl's docs."""

from __future__ import annotations

import pytest

from podnet.cli.jsonpath import JsonPathError, jsonpath

POD = {"metadata": {"name": "web-0", "labels": {"app.kubernetes.io/name": "web"}},
       "spec": {"ports": [{"port": 80}, {"port": 81}]},
       "status": {"podIP": "10.244.1.2", "addresses": [{"address": "10.244.1.2"}],
                  "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False"}]}}
LIST = {"kind": "List", "items": [POD, {"metadata": {"name": "web-1"}, "status": {"podIP": "10.244.2.2",
                                                                                  "addresses": [{"address": "10.244.2.2"}]}}]}


@pytest.mark.parametrize("document, template, printed", [
    (POD, "{.status.podIP}", "10.244.1.2"),
    (POD, "{.spec.ports[1].port}", "81"),
    (POD, "{.spec.ports[-1].port}", "81"),
    (POD, "{.spec.ports[*].port}", "80 81"),
    (POD, "{.spec.ports[0:1]}", '{"port": 80}'),
    (POD, "{.missing.field}", ""),
    (POD, "{.spec.ports[5]}", ""),
    (POD, "{.metadata.labels['app.kubernetes.io/name']}", "web"),
    (POD, '{.status.conditions[?(@.type=="Ready")].status}', "False"),
    (POD, "{.status.conditions[?(@.status!='True')].type}", "Ready"),
    (POD, "{..port}", "80 81"),
    (POD, "ip={.status.podIP}", "ip=10.244.1.2"),
    (LIST, "{.items[*].metadata.name}", "web-0 web-1"),
    (LIST, "{.items[0].status.addresses[0].address}", "10.244.1.2"),
    (LIST, '{range .items[*]}{.metadata.name}{"\\t"}{.status.podIP}{"\\n"}{end}',
     "web-0\t10.244.1.2\nweb-1\t10.244.2.2\n"),
    (LIST, "{range .items[*]}[{@.metadata.name}]{end}", "[web-0][web-1]"),
    (LIST, "{$.kind}", "List"),
])
def test_kubectl_forms(document: object, template: str, printed: str) -> None:
    assert jsonpath(document, template) == printed


@pytest.mark.parametrize("template, problem", [
    ("{.status.podIP", "never closed"),
    ("{range .items[*]}{.metadata.name}", "without {end}"),
    ("{end}", "without {range"),
    ("{.items[x]}", "cannot read"),
])
def test_bad_templates_are_named(template: str, problem: str) -> None:
    with pytest.raises(JsonPathError, match=problem):
        jsonpath(LIST, template)
