"""Resources load from Kubernetes manifests, validate with named fields, and round-trip."""

from __future__ import annotations

import pytest

from podnet.errors import ManifestError
from podnet.model.manifest import parse_resource
from podnet.model.pod import Pod

POD = {"apiVersion": "v1", "kind": "Pod",
       "metadata": {"name": "web-0", "namespace": "apps", "labels": {"app": "web"}},
       "spec": {"nodeName": "n1", "containers": [{"name": "web", "image": "nginx", "command": ["nginx"],
                                                    "ports": [{"name": "http", "containerPort": 8080}]}]},
       "status": {"podIP": "10.244.1.5", "hostIP": "172.18.0.3", "conditions": [{"type": "Ready", "status": "True"}]}}

SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "apps"},
           "spec": {"selector": {"app": "web"}, "clusterIP": "10.96.0.20",
                    "ports": [{"name": "http", "port": 80, "targetPort": "http"},
                              {"name": "metrics", "port": 9090, "targetPort": 9090}]}}


@pytest.mark.parametrize("manifest", [POD, SERVICE], ids=["pod", "service"])
def test_round_trip(manifest: dict) -> None:  # type: ignore[type-arg]
    resource = parse_resource(manifest)
    assert parse_resource(resource.to_manifest()) == resource


def test_pod_fields() -> None:
    pod = parse_resource(POD)
    assert isinstance(pod, Pod)
    assert (pod.metadata.key, pod.node_name, pod.pod_ip, pod.ready) == ("apps/web-0", "n1", "10.244.1.5", True)
    assert pod.command == ("nginx",)


def test_pod_without_containers_runs_the_echo_server() -> None:
    pod = parse_resource({"kind": "Pod", "metadata": {"name": "p"}, "spec": {}})
    assert isinstance(pod, Pod) and pod.command == ()


BAD = {
    "no name": ({"kind": "Pod", "metadata": {}, "spec": {}}, "Pod metadata.name: is required"),
    "bad port": ({**SERVICE, "spec": {"ports": [{"port": 70000}]}}, "Service spec.ports[0].port: 70000 is out of range"),
    "port as text": ({**SERVICE, "spec": {"ports": [{"port": "80"}]}}, "Service spec.ports[0].port: must be a number, not a string"),
    "unnamed ports": ({**SERVICE, "spec": {"ports": [{"port": 80}, {"port": 81}]}},
                      "spec.ports[0].name: is required when a service has several ports"),
    "bad protocol": ({**SERVICE, "spec": {"ports": [{"port": 80, "protocol": "ICMP"}]}}, "'ICMP' is not TCP, UDP or SCTP"),
    "bad type": ({**SERVICE, "spec": {"type": "Magic"}}, "Service spec.type: 'Magic' is not one of"),
    "bad clusterIP": ({**SERVICE, "spec": {"clusterIP": "10.96.0.300"}}, "spec.clusterIP: '10.96.0.300' is not an IP address"),
    "labels not text": ({**POD, "metadata": {"name": "p", "labels": {"a": 1}}}, "metadata.labels.a: must be a string"),
    "selector mismatch": ({"kind": "Deployment", "metadata": {"name": "d"},
                           "spec": {"selector": {"matchLabels": {"a": "1"}}, "template": {"metadata": {"labels": {"a": "2"}}, "spec": {}}}},
                          "Deployment spec.selector: does not match the template's labels"),
    "not a mapping": (["kind", "Pod"], "document: must be a mapping, not a list"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_invalid_manifests(case: str) -> None:
    manifest, message = BAD[case]
    with pytest.raises(ManifestError) as caught:
        parse_resource(manifest)
    assert message in str(caught.value)


def test_readiness_probes_round_trip_and_bad_ones_are_named() -> None:
    import pytest

    from podnet.errors import ManifestError as Refused

    probe = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 2, "failureThreshold": 1}
    pod = parse_resource({"kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [
        {"name": "c", "ports": [{"name": "http", "containerPort": 8080}], "readinessProbe": probe}]}})
    assert isinstance(pod, Pod) and pod.readiness is not None
    assert (pod.readiness.action, pod.port_number(pod.readiness.port or 0), pod.readiness.period) == ("httpGet", 8080, 2.0)
    assert parse_resource(pod.to_manifest()) == pod
    for bad, message in (({"periodSeconds": 1}, "needs exactly one of httpGet, tcpSocket, exec"),
                         ({"tcpSocket": {"port": 70000}}, "70000 is out of range"),
                         ({"exec": {}}, "command: is required")):
        with pytest.raises(Refused, match=message):
            parse_resource({"kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [
                {"name": "c", "readinessProbe": bad}]}})
