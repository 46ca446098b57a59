"""A cluster lab with DHCP IPAM (examples/dhcp.yaml): pods lease their addresses
from dnsmasq on their node's bridge through podnet-dhcp and its daemon, reach
each other across nodes, and give their leases back when deleted."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import in_netns, podnet, renamed_example, within

LAB = "test_dhcp"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    podnet("lab", "up", str(renamed_example("dhcp.yaml", LAB, tmp_path_factory.mktemp("dhcp"))), timeout=120)
    from podnet.lab.state import load

    record = load(LAB)
    assert record is not None
    try:
        yield record.directory / "dhcp"
    finally:
        podnet("lab", "down", LAB)


def pods() -> dict[str, dict]:  # type: ignore[type-arg]
    items = json.loads(podnet("get", "pods", "-A", "--lab", LAB, "-o", "json").stdout)["items"]
    return {p["metadata"]["name"]: p for p in items}


def nodes() -> dict[str, str]:
    items = json.loads(podnet("get", "nodes", "--lab", LAB, "-o", "json").stdout)["items"]
    return {n["metadata"]["name"]: n["spec"]["podCIDR"] for n in items}


def leased(leases: Path, node: str) -> dict[str, str]:
    """dnsmasq's leases on the node's bridge: address -> client identifier, decoded."""
    path = leases / f"{node}.leases"
    lines = path.read_text().splitlines() if path.exists() else []
    return {f[2]: bytes.fromhex(f[4].replace(":", ""))[1:].decode() for f in (line.split() for line in lines)}


def test_every_pod_holds_a_lease_from_its_nodes_server(lab: Path) -> None:
    cidrs = nodes()
    for name, pod in pods().items():
        ip, node = pod["status"]["podIP"], pod["spec"]["nodeName"]
        assert ipaddress.ip_address(ip) in ipaddress.ip_network(cidrs[node]), (name, ip)
        assert int(ip.rsplit(".", 1)[1]) >= 10  # dnsmasq's range, not host-local's .2, .3, ...
        client = leased(lab, node)[ip]  # under the reference's client id: container/network/ifname
        assert client.endswith("/podnet/eth0") and name in client
    route = in_netns(f"pn-{LAB}.default.client", "ip", "route", "show", "default").stdout
    assert f"via {ipaddress.ip_network(cidrs['node1']).network_address + 1}" in route  # the lease's router


def test_pods_reach_each_other_across_nodes(lab: Path) -> None:
    web = next(p for n, p in pods().items() if n.startswith("web-"))
    out = in_netns(f"pn-{LAB}.default.client", "curl", "-s", "-m", "3", f"http://{web['status']['podIP']}/").stdout
    assert json.loads(out)["pod"] == web["metadata"]["name"]
    service = json.loads(in_netns(f"pn-{LAB}.default.client", "curl", "-s", "-m", "3", "http://web/").stdout)
    assert service["pod"].startswith("web-")


def test_a_deleted_pod_gives_its_lease_back(lab: Path) -> None:
    web = next(p for n, p in pods().items() if n.startswith("web-"))
    ip, node = web["status"]["podIP"], web["spec"]["nodeName"]
    podnet("delete", "pod", web["metadata"]["name"], "--lab", LAB)
    assert within(10, lambda: ip not in leased(lab, node)), f"{ip} is still leased on {node}"
    # its replacement leases an address of its own
    assert within(15, lambda: sum(1 for n, p in pods().items() if n.startswith("web-")
                                  and p["status"].get("podIP") and p["status"]["podIP"] in
                                  leased(lab, p["spec"]["nodeName"])) == 2)
