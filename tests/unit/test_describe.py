"""`describe` as text, from objects: what kubectl shows of a pod and a service."""

from __future__ import annotations

from podnet.cli.describe import Surroundings, describe_object
from podnet.controller.endpointslices import desired
from podnet.model.event import Event
from podnet.model.manifest import parse_resource
from podnet.model.meta import ObjectMeta


def test_a_pod_and_a_service_described_with_endpoints_and_events() -> None:
    pod = parse_resource({"kind": "Pod", "metadata": {"name": "web-0", "labels": {"app": "web"}},
                          "spec": {"nodeName": "n1", "containers": [{"name": "echo"}]},
                          "status": {"podIP": "10.244.1.2", "hostIP": "172.18.0.3", "phase": "Running",
                                     "conditions": [{"type": "Ready", "status": "True"}]}})
    service = parse_resource({"kind": "Service", "metadata": {"name": "web"}, "spec": {
        "selector": {"app": "web"}, "clusterIP": "10.96.0.5", "ports": [{"port": 80}]}})
    scheduled = Event(ObjectMeta("web-0.1"), ("Pod", "web-0"), "Scheduled", "Successfully assigned default/web-0 to n1",
                      "default-scheduler", 1000.0)
    around = Surroundings([pod], desired([service], [pod]), [scheduled], 1012.0)  # type: ignore[list-item]
    text = describe_object(pod, around)
    assert "Node:                   n1/172.18.0.3" in text and "IP:                     10.244.1.2" in text
    assert "Normal  Scheduled  12s   default-scheduler  Successfully assigned default/web-0 to n1" in text
    served = describe_object(service, around)
    assert "Endpoints:              10.244.1.2:80" in served and "Events:                 <none>" in served
