"""Listings and small renderers."""

from __future__ import annotations

import ipaddress

import pytest

from podnet.cli.columns import echo_row, print_table
from podnet.cli.tables import SERVICE_COLUMNS, format_endpoints, pod_rows, ready_endpoints, service_rows
from podnet.controller.endpointslices import desired
from podnet.kernel.nftables.fake import Fake
from podnet.kernel.nftables.tracer import Packet, Tracer
from podnet.lab.topology_spec import HostSpec
from podnet.lab.topology import render_masquerade
from podnet.model.manifest import parse_resource


def pod(name: str, ip: str, ready: bool = True):  # type: ignore[no-untyped-def]
    return parse_resource({"kind": "Pod", "metadata": {"name": name, "labels": {"app": "w"}}, "spec": {"nodeName": "n1"},
                           "status": {"phase": "Running", "podIP": ip, "conditions": [{"type": "Ready", "status": str(ready)}],
                                      "containerStatuses": [{"name": "echo", "ready": ready, "restartCount": 0,
                                                             "state": {"running": {}}}]}})


def test_rows() -> None:
    pods = [pod(f"w{i}", f"10.244.0.{i + 2}") for i in range(5)] + [pod("down", "10.244.0.99", ready=False)]
    service = parse_resource({"kind": "Service", "metadata": {"name": "s"},
                              "spec": {"selector": {"app": "w"}, "clusterIP": "10.96.0.5", "ports": [{"port": 80}]}})
    assert pod_rows(pods[:1]) == [("default", "w0", "1/1", "Running", "0", "10.244.0.2", "n1")]
    slices = desired([service], pods)  # type: ignore[list-item]
    assert format_endpoints(ready_endpoints(slices)) == "10.244.0.2:80,10.244.0.3:80,10.244.0.4:80 + 2 more..."
    assert service_rows([service], slices)[0] == ("default", "s", "ClusterIP", "10.96.0.5", "80/TCP",  # type: ignore[list-item]
                                                  "10.244.0.2:80,10.244.0.3:80,10.244.0.4:80 + 2 more...")


def test_list_columns_are_never_cut(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """kubectl prints whole endpoints, then "+ N more...", however narrow the terminal;
    rows printed later (a watch's) keep the first rows' widths."""
    monkeypatch.setenv("COLUMNS", "40")
    endpoints = format_endpoints([f"10.244.{i}.4:80" for i in range(5)])
    widths = print_table(SERVICE_COLUMNS, [("default", "web-service", "ClusterIP", "10.96.0.10", "80/TCP", endpoints)],
                         title="services")
    echo_row(("apps", "db", "ClusterIP", "10.96.0.11", "5432/TCP", "<none>"), widths)
    title, header, row, later = capsys.readouterr().out.splitlines()
    assert title == "services"
    assert row.split() == ["default", "web-service", "ClusterIP", "10.96.0.10", "80/TCP",
                           "10.244.0.4:80,10.244.1.4:80,10.244.2.4:80", "+", "2", "more..."]
    assert header.index("ENDPOINTS") == row.index("10.244.0.4:80") == later.index("<none>")
    assert header.index("PORT(S)") == row.index("80/TCP") == row.index("10.96.0.10") + len("10.96.0.10") + 3


def test_masquerade_is_the_seed_rule() -> None:
    """`iptables -t nat -A POSTROUTING -s 192.168.15.0/24 -o eth0 -j MASQUERADE`."""
    host = HostSpec("host", True, masquerade=((ipaddress.ip_network("192.168.15.0/24"), "eth0"),))
    nat = render_masquerade(host)
    assert nat is not None
    nft = Fake()
    nft.run(nat)
    tracer = Tracer(nft)

    def masqueraded(source: str, oifname: str) -> bool:
        (outcome,) = tracer.trace(Packet(source, "203.0.113.10", oifname=oifname))
        return outcome.masqueraded

    assert masqueraded("192.168.15.2", "eth0")
    assert not masqueraded("192.168.15.2", "eth1")  # another way out
    assert not masqueraded("10.0.0.2", "eth0")  # another source
    assert render_masquerade(HostSpec("plain")) is None
