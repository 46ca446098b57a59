"""Which services the userspace proxy serves, and with what."""

from __future__ import annotations

from podnet.errors import ManifestError
from podnet.model.manifest import parse_resource
from podnet.controller.endpointslices import desired
from podnet.proxy.endpoints import pod_weights, service_ports
from podnet.proxy.userspace_manager import desired_ports

import pytest


def test_userspace_services_leave_nftables_for_their_own_proxy() -> None:
    service = parse_resource({"kind": "Service", "metadata": {
        "name": "web", "annotations": {"podnet.dev/proxy-mode": "userspace", "podnet.dev/scheduler": "wlc"}},
        "spec": {"selector": {"app": "web"}, "clusterIP": "10.96.0.3", "ports": [{"port": 80}]}})
    pod = parse_resource({"kind": "Pod", "metadata": {"name": "a", "labels": {"app": "web"},
                                                       "annotations": {"podnet.dev/weight": "98"}},
                          "spec": {}, "status": {"podIP": "10.244.0.2", "conditions": [{"type": "Ready", "status": "True"}]}})
    slices = desired([service], [pod])  # type: ignore[list-item]
    assert service_ports([service], slices, "n1") == []  # type: ignore[list-item]
    (spec,) = desired_ports([service], slices, pod_weights([pod])).values()  # type: ignore[list-item]
    assert (spec.address, spec.port, spec.protocol, spec.scheduler) == ("10.96.0.3", 80, "tcp", "wlc")
    assert [(e.ip, e.weight) for e in spec.endpoints] == [("10.244.0.2", 98)]


def test_bad_mode_or_scheduler_is_named() -> None:
    for annotations, message in (({"podnet.dev/proxy-mode": "ipvs"}, "'ipvs' is not nftables or userspace"),
                                 ({"podnet.dev/scheduler": "fifo"}, "'fifo' is not one of rr, wrr")):
        with pytest.raises(ManifestError, match=message):
            parse_resource({"kind": "Service", "metadata": {"name": "s", "annotations": annotations},
                            "spec": {"ports": [{"port": 80}]}})
