"""No manifest, however broken, ends in a traceback: `apply -f` of random bytes,
random YAML and JSON structures, and every kind's valid manifest with a wrong
value put anywhere in it is either applied or refused in one line naming the
file, the document and the field."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podnet.cli.manifests import read_manifests
from podnet.errors import ManifestError

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 70000), st.floats(allow_nan=False),
                    st.text(max_size=12), st.sampled_from(["10.244.0.2", "web", "TCP", "80", "http", "None", "5%"]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                      max_leaves=10)
VALID: list[dict[str, Any]] = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": {"team": "a"}}},
    {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"app": "web"}}, "spec": {
        "nodeName": "n1", "terminationGracePeriodSeconds": 5, "containers": [{
            "name": "c", "command": ["sleep", "9"], "ports": [{"name": "http", "containerPort": 80}],
            "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1}}]},
     "status": {"podIP": "10.244.0.2", "phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}},
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {
        "type": "NodePort", "selector": {"app": "web"}, "sessionAffinity": "ClientIP",
        "ports": [{"name": "http", "port": 80, "targetPort": "http", "nodePort": 30080}]}},
    {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {
        "replicas": 3, "selector": {"matchLabels": {"app": "web"}},
        "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c"}]}}}},
    {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {
        "name": "s-1", "labels": {"kubernetes.io/service-name": "s"}}, "addressType": "IPv4",
     "endpoints": [{"addresses": ["10.244.0.2"], "conditions": {"ready": True}, "nodeName": "n1"}],
     "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]},
    {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "n1", "namespace": "kube-node-lease"},
     "spec": {"holderIdentity": "n1", "renewTime": "2026-12-03T10:00:00.000000Z", "leaseDurationSeconds": 5}},
]


def read(data: bytes, suffix: str = ".yaml") -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / f"manifest{suffix}"
        path.write_bytes(data)
        try:
            read_manifests((str(path),), None)
        except ManifestError as err:
            assert "\n" not in str(err) and str(err).startswith(str(path)), str(err)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a manifest a value can be put."""
    found = [prefix]
    if isinstance(value, dict):
        for key, inner in value.items():
            found += paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            found += paths(inner, (*prefix, i))
    return found


def replaced(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    copy = json.loads(json.dumps(document))
    target = copy
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return copy


def test_the_valid_manifests_are_valid() -> None:
    read(yaml.safe_dump_all(VALID).encode())  # no error at all: the mutations below start from sense
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "all.yaml"
        path.write_text(yaml.safe_dump_all(VALID))
        assert [m.resource.kind for m in read_manifests((str(path),), None)] == [d["kind"] for d in VALID]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    read(data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(VALUES, max_size=3), st.booleans())
def test_random_documents(documents: list, as_json: bool) -> None:  # type: ignore[type-arg]
    if as_json:
        read(json.dumps(documents[0] if documents else None).encode(), ".json")
    else:
        read(yaml.safe_dump_all(documents).encode())


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_a_wrong_value_anywhere_in_any_kind(data: st.DataObject) -> None:
    document = data.draw(st.sampled_from(VALID))
    path = data.draw(st.sampled_from(paths(document)[1:]))
    read(yaml.safe_dump(replaced(document, path, data.draw(VALUES))).encode())
