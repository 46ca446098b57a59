"""Every seed scenario written as a lab file works with real packets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import curl_json, in_netns, podnet, renamed_example


def ping(lab: str, host: str, address: str) -> str:
    return in_netns(f"pn-{lab}.{host}", "ping", "-c1", "-W2", address).stdout


def check_veth_pair(lab: str) -> None:
    assert "1 received" in ping(lab, "red", "192.168.15.2")
    assert "1 received" in ping(lab, "blue", "192.168.15.1")


def check_bridge(lab: str) -> None:
    for address in ("192.168.15.1", "192.168.15.2", "192.168.15.3"):
        assert "1 received" in ping(lab, "host", address)  # the host through the bridge's address
    assert "1 received" in ping(lab, "red", "192.168.15.3")  # and the namespaces with each other


def check_router(lab: str) -> None:
    out = ping(lab, "a", "192.168.2.5")
    assert "1 received" in out and "ttl=63" in out  # one hop through the router
    assert in_netns(f"pn-{lab}.r1", "sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "1"
    assert in_netns(f"pn-{lab}.a", "sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "0"


def check_masquerade(lab: str) -> None:
    answer = curl_json(f"pn-{lab}.red", "http://203.0.113.10/get")
    assert answer["origin"] == "203.0.113.1"  # the host's address, not red's 192.168.15.1
    # The internet has no route back to the private subnet: only NAT makes replies arrive.
    assert in_netns(f"pn-{lab}.internet", "ping", "-c1", "-W1", "192.168.15.1", check=False).returncode != 0


def check_two_subnets(lab: str) -> None:
    assert "1 received" in ping(lab, "sleep", "10.13.37.129")
    assert "1 received" in ping(lab, "webapp", "10.13.37.1")


SCENARIOS: dict[str, Callable[[str], None]] = {
    "veth-pair.yaml": check_veth_pair,
    "bridge.yaml": check_bridge,
    "router.yaml": check_router,
    "masquerade.yaml": check_masquerade,
    "two-subnets.yaml": check_two_subnets,
}


@pytest.mark.parametrize("example", SCENARIOS)
def test_seed_scenario(example: str, tmp_path: Path) -> None:
    lab = "test_" + example.removesuffix(".yaml")
    podnet("lab", "up", str(renamed_example(example, lab, tmp_path)))
    try:
        SCENARIOS[example](lab)
    finally:
        podnet("lab", "down", lab)
    assert not [ns for ns in in_netns_list() if ns.startswith(f"pn-{lab}")]


def in_netns_list() -> list[str]:
    import subprocess

    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()


KIND_WORDS = """\
apiVersion: podnet.dev/v1alpha1
kind: Topology
metadata: {name: test_kindwords}
hosts: [{name: host}, {name: node}]
switches: [{name: switch}]
links:
  - {endpoints: ["host:eth0", "switch:p-host"], addresses: [192.168.15.1/24]}
  - {endpoints: ["node:eth0", "switch:p-node"], addresses: [192.168.15.2/24]}
"""


def test_members_named_like_kind_words_are_reached(tmp_path: Path) -> None:
    """The workshop's machine is called `host`: a bare name is a name, only KIND/NAME a prefix."""
    path = tmp_path / "kindwords.yaml"
    path.write_text(KIND_WORDS)
    podnet("lab", "up", str(path))
    try:
        for target in ("host", "node", "switch", "host/host", "host/node", "switch/switch"):
            name = target.rpartition("/")[2]
            assert podnet("exec", target, "--", "ip", "netns", "identify").stdout.split() == [f"pn-test_kindwords.{name}"]
        assert "1 received" in podnet("exec", "host", "--", "ping", "-c1", "-W2", "192.168.15.2").stdout
        missing = podnet("exec", "node/host", "--", "true", check=False)
        assert missing.returncode == 1 and missing.stderr.startswith("error: no node/host in any running lab")
    finally:
        podnet("lab", "down", "test_kindwords")
