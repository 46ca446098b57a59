"""CNI spec types without root: requests, versions, results, errors, ranges."""

from __future__ import annotations

import ipaddress
import json

import pytest

from podnet.cni import version as versions
from podnet.cni.dispatch import handle
from podnet.cni.errors import CniError
from podnet.cni.request import parse_cni_args, parse_request
from podnet.cni.result import DNS, Interface, IPConfig, Result, Route
from podnet.cni.runtime import NetworkConfigList
from podnet.ipam.ranges import Range, RangeError, RangeSet

CONFIG = json.dumps({"cniVersion": "1.0.0", "name": "net", "type": "podnet-bridge"}).encode()
ENV = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "abc", "CNI_NETNS": "/run/netns/x", "CNI_IFNAME": "eth0",
       "CNI_PATH": "/opt/cni/bin"}

BAD_REQUESTS = {
    "no command": ({**ENV, "CNI_COMMAND": ""}, CONFIG, 4, "CNI_COMMAND"),
    "unknown command": ({**ENV, "CNI_COMMAND": "FROB"}, CONFIG, 4, "unknown CNI_COMMAND"),
    "missing netns on ADD": ({k: v for k, v in ENV.items() if k != "CNI_NETNS"}, CONFIG, 4, "[CNI_NETNS]"),
    "container id with a slash": ({**ENV, "CNI_CONTAINERID": "a/b"}, CONFIG, 4, "invalid characters in containerID"),
    "container id starting with a dot": ({**ENV, "CNI_CONTAINERID": ".a"}, CONFIG, 4, "containerID"),
    "interface name too long": ({**ENV, "CNI_IFNAME": "x" * 16}, CONFIG, 4, "too long"),
    "interface name with a colon": ({**ENV, "CNI_IFNAME": "eth:0"}, CONFIG, 4, "contains / or :"),
    "interface name dot dot": ({**ENV, "CNI_IFNAME": ".."}, CONFIG, 4, ". or .."),
    "interface name with a space": ({**ENV, "CNI_IFNAME": "eth 0"}, CONFIG, 4, "whitespace"),
    "malformed JSON": (ENV, b"{", 6, "error unmarshall network config"),
    "JSON that is not an object": (ENV, b"[1]", 6, "JSON object"),
    "no network name": (ENV, b'{"cniVersion": "1.0.0"}', 7, "missing network name"),
    "bad network name": (ENV, b'{"cniVersion": "1.0.0", "name": "a b"}', 7, "network name"),
    "unsupported version": (ENV, b'{"cniVersion": "0.2.0", "name": "n"}', 1, "incompatible CNI versions"),
    "no version is 0.1.0": (ENV, b'{"name": "n"}', 1, "incompatible CNI versions"),
}


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=list(BAD_REQUESTS))
def test_invalid_requests_get_the_spec_code(case: str) -> None:
    env, stdin, code, text = BAD_REQUESTS[case]
    with pytest.raises(CniError) as caught:
        parse_request(env, stdin)
    assert caught.value.code == code
    assert text in str(caught.value)


def test_del_needs_no_netns_and_version_needs_nothing() -> None:
    assert parse_request({k: v for k, v in ENV.items() if k != "CNI_NETNS"} | {"CNI_COMMAND": "DEL"}, CONFIG).netns == ""
    assert parse_request({"CNI_COMMAND": "VERSION"}, b"").command == "VERSION"
    assert parse_request({"CNI_COMMAND": "GC"}, CONFIG).command == "GC"


def test_cni_args() -> None:
    assert parse_cni_args("IgnoreUnknown=1;IP=10.0.0.5;K8S_POD_NAME=web-0") == {
        "IgnoreUnknown": "1", "IP": "10.0.0.5", "K8S_POD_NAME": "web-0"}
    with pytest.raises(CniError):
        parse_cni_args("justakey")


def test_errors_are_printed_as_the_spec_says() -> None:
    code, out = handle("podnet-bridge", {**ENV, "CNI_CONTAINERID": "a/b"}, CONFIG)
    assert code == 1
    assert json.loads(out) == {"cniVersion": "1.0.0", "code": 4, "msg": "invalid characters in containerID",
                               "details": "a/b"}


def test_version_command() -> None:
    code, out = handle("podnet-bridge", {"CNI_COMMAND": "VERSION"}, b'{"cniVersion": "1.0.0"}')
    assert code == 0 and json.loads(out) == {"cniVersion": "1.1.0", "supportedVersions": list(versions.SUPPORTED_VERSIONS)}


RESULT = Result(
    interfaces=(Interface("cni0", "aa:aa:aa:aa:aa:aa"), Interface("eth0", "bb:bb:bb:bb:bb:bb", "/run/netns/x", mtu=1400)),
    ips=(IPConfig("10.0.0.5/24", "10.0.0.1", 1), IPConfig("fd00::5/64", None, 1)),
    routes=(Route("0.0.0.0/0", "10.0.0.1", mtu=1400),),
    dns=DNS(("10.96.0.10",), search=("default.svc.cluster.local",)),
)


def test_result_in_each_version() -> None:
    old = RESULT.render("0.3.1")
    assert old["ips"][0] == {"version": "4", "interface": 1, "address": "10.0.0.5/24", "gateway": "10.0.0.1"}
    assert old["ips"][1]["version"] == "6"
    assert "mtu" not in old["interfaces"][1] and old["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}]
    v1 = RESULT.render("1.0.0")
    assert "version" not in v1["ips"][0] and "mtu" not in v1["routes"][0]
    latest = RESULT.render("1.1.0")
    assert latest["interfaces"][1]["mtu"] == 1400 and latest["routes"][0]["mtu"] == 1400
    assert latest["dns"] == {"nameservers": ["10.96.0.10"], "search": ["default.svc.cluster.local"]}


@pytest.mark.parametrize("cni_version", versions.SUPPORTED_VERSIONS)
def test_result_round_trips_through_prev_result(cni_version: str) -> None:
    rendered = RESULT.render(cni_version)
    assert Result.parse(json.loads(json.dumps(rendered))).render(cni_version) == rendered


def test_conflist_version_negotiation() -> None:
    plugins = [{"type": "podnet-bridge"}]
    assert NetworkConfigList.parse({"name": "n", "cniVersion": "1.0.0", "cniVersions": ["1.0.0", "1.1.0", "9.0.0"],
                                    "plugins": plugins}).cni_version == "1.1.0"
    assert NetworkConfigList.parse({"name": "n", "cniVersion": "0.4.0", "plugins": plugins}).cni_version == "0.4.0"
    with pytest.raises(CniError):
        NetworkConfigList.parse({"name": "n", "cniVersion": "1.0.0", "plugins": []})


def test_ranges_follow_host_local() -> None:
    r = Range.build("10.0.0.0/29")
    assert (str(r.start), str(r.end), str(r.gateway)) == ("10.0.0.1", "10.0.0.6", "10.0.0.1")
    assert [str(a) for a in r.addresses()] == ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]
    custom = Range.build("10.0.0.0/24", "10.0.0.100", "10.0.0.102", "10.0.0.254")
    assert [str(a) for a in custom.addresses()] == ["10.0.0.100", "10.0.0.101", "10.0.0.102"]
    for bad in (("10.0.0.0/31",), ("10.0.0.0/24", "10.0.1.5"), ("10.0.0.0/24", None, None, "10.9.9.9"), ("nope",)):
        with pytest.raises(RangeError):
            Range.build(*bad)  # type: ignore[arg-type]


def test_round_robin_wraps_across_ranges() -> None:
    ranges = RangeSet((Range.build("10.0.0.0/29", "10.0.0.5"), Range.build("10.0.1.0/30")))
    after = [str(a) for a, _ in ranges.iterate_after(ipaddress.ip_address("10.0.0.5"))]
    assert after == ["10.0.0.6", "10.0.1.2", "10.0.0.5"]
    assert [str(a) for a, _ in ranges.iterate_after(None)][:2] == ["10.0.0.5", "10.0.0.6"]
    with pytest.raises(RangeError, match="overlap"):
        RangeSet((Range.build("10.0.0.0/24"), Range.build("10.0.0.0/25")))


def test_ipv6_ranges_have_no_broadcast_address() -> None:
    """As the reference's host-local: an IPv6 subnet's last address is handed out."""
    r = Range.build("fd00::/126")
    assert (str(r.start), str(r.end), str(r.gateway)) == ("fd00::1", "fd00::3", "fd00::1")
    assert [str(a) for a in r.addresses()] == ["fd00::2", "fd00::3"]
    assert Range.build("fd00:1::/64").size == 2**64 - 2  # all but the network address and the gateway
    with pytest.raises(RangeError, match="too small"):
        Range.build("fd00::/127")
    with pytest.raises(RangeError, match="mixes IPv4 and IPv6"):
        RangeSet((Range.build("10.0.0.0/24"), Range.build("fd00::/64")))


DUAL = {"type": "podnet-host-local", "ranges": [[{"subnet": "10.1.0.0/24"}], [{"subnet": "fd00:1::/64"}]]}


@pytest.mark.parametrize(("ipam", "families"), [
    ({"type": "podnet-host-local", "subnet": "10.1.0.0/24"}, {4}),
    ({"type": "podnet-host-local", "ranges": [[{"subnet": "fd00:1::/64"}]]}, {6}),
    (DUAL, {4, 6}),
    ({"type": "podnet-dhcp"}, {4}),
    ({"type": "some-other-ipam"}, set()),  # cannot be known before ADD
], ids=["ipv4", "ipv6", "dual-stack", "dhcp", "delegated"])
def test_families_a_network_hands_out(ipam: dict, families: set[int]) -> None:  # type: ignore[type-arg]
    from podnet.cni.plugins import ipam as ipams

    assert ipams.families(ipam) == families


@pytest.mark.parametrize(("env", "ipam", "ips", "where"), [
    ({}, {"type": "podnet-dhcp"}, [], None),
    ({"CNI_ARGS": "IgnoreUnknown=1;IP=fd00::5"}, {"type": "podnet-dhcp"}, [], "CNI_ARGS IP asks for fd00::5"),
    ({}, {"type": "podnet-dhcp"}, ["fd00::7/64"], "runtimeConfig.ips asks for fd00::7/64"),
    ({}, {"type": "podnet-dhcp", "ranges": [[{"subnet": "fd00::/64"}]]}, [],
     "ipam.ranges[0][0].subnet asks for fd00::/64"),
    ({}, {"type": "podnet-dhcp", "subnet": "10.0.0.0/24"}, ["10.0.0.7"], None),
], ids=["ipv4", "requested-ipv6", "runtime-ipv6", "ipv6-range", "ipv4-subnet"])
def test_dhcp_refuses_ipv6_naming_where_it_was_asked(env: dict, ipam: dict, ips: list[str],  # type: ignore[type-arg]
                                                     where: str | None) -> None:
    from podnet.cni.plugins import dhcp

    config = {"cniVersion": "1.0.0", "name": "net", "type": "podnet-bridge", "ipam": ipam, "runtimeConfig": {"ips": ips}}
    request = parse_request({**ENV, **env}, json.dumps(config).encode())
    assert dhcp.ipv6_asked(request, ipam) == where
    if where:
        with pytest.raises(CniError, match="DHCP IPAM is IPv4 only") as raised:
            dhcp.add(request, ipam)
        assert raised.value.code == 7 and where in raised.value.details
