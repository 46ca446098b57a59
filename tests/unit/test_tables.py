"""Listings and small renderers."""

from __future__ import annotations

import ipaddress

from podnet.cli.tables import format_endpoints, jsonpath, pod_rows, service_rows
from podnet.lab.spec import HostSpec
from podnet.lab.topology import render_masquerade
from podnet.model.manifest import parse_resource


def test_jsonpath_subset() -> None:
    doc = {"status": {"podIP": "10.244.1.2"}, "spec": {"ports": [{"port": 80}, {"port": 81}]}}
    assert jsonpath(doc, "{.status.podIP}") == "10.244.1.2"
    assert jsonpath(doc, "{.spec.ports[1].port}") == "81"
    assert jsonpath(doc, "{.missing.field}") == ""
    assert jsonpath(doc, "{.spec.ports[5]}") == ""


def pod(name: str, ip: str, ready: bool = True):  # type: ignore[no-untyped-def]
    return parse_resource({"kind": "Pod", "metadata": {"name": name, "labels": {"app": "w"}}, "spec": {"nodeName": "n1"},
                           "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": str(ready)}]}})


def test_rows() -> None:
    pods = [pod(f"w{i}", f"10.244.0.{i + 2}") for i in range(5)] + [pod("down", "10.244.0.99", ready=False)]
    service = parse_resource({"kind": "Service", "metadata": {"name": "s"},
                              "spec": {"selector": {"app": "w"}, "clusterIP": "10.96.0.5", "ports": [{"port": 80}]}})
    assert pod_rows(pods[:1]) == [("default", "w0", "1/1", "10.244.0.2", "n1")]
    assert format_endpoints(service, pods) == "10.244.0.2:80,10.244.0.3:80,10.244.0.4:80 + 2 more..."  # type: ignore[arg-type]
    assert service_rows([service], pods)[0][:5] == ("default", "s", "ClusterIP", "10.96.0.5", "80/TCP")  # type: ignore[list-item]


def test_masquerade_renders_the_seed_rule() -> None:
    host = HostSpec("host", True, masquerade=((ipaddress.ip_network("192.168.15.0/24"), "eth0"),))
    body = render_masquerade(host)
    assert body is not None
    assert 'ip saddr 192.168.15.0/24 oifname "eth0" masquerade' in body
    assert "type nat hook postrouting priority srcnat" in body
    assert render_masquerade(HostSpec("plain")) is None
