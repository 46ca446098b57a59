"""IPv6 and dual-stack networks with podnet's plugins, with real packets: a pod
answers at once (no wait for Duplicate Address Detection), masquerade and
published ports work over IPv6, and a node or container without IPv6 gets a
clear error and nothing half-made."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from podnet.kernel import netns
from tests.cni.conftest import STACKS, Plugins, Stack
from tests.helpers import in_netns

# Subnets of their own: a subnet on two bridges of one host would be routed to one of them only.
DUAL = Stack(("10.127.0.0/24", "fd00:127::/64"))
FRESH = Stack(("10.128.0.0/24", "fd00:128::/64"))  # on a bridge no other test makes


def dual(plugins: Plugins, bridge: str = "cnitest6", stack: Stack = DUAL, **overrides: object) -> dict:  # type: ignore[type-arg]
    plugins.stack = stack
    return plugins.netconf(bridge=bridge, **overrides)


def answers(namespace: str, address: str) -> bool:
    """One echo request, one second to answer: no retries to hide a slow start."""
    return "1 received" in in_netns(namespace, "ping", "-c1", "-W1", address, check=False).stdout


@contextmanager
def echo_server(namespace: str, port: int = 80) -> Iterator[None]:
    """podnet's echo server (it tells the caller's address as it saw it), listening on both families."""
    server = subprocess.Popen(netns.exec_argv(namespace, [sys.executable, "-m", "podnet.echo", "--port", str(port)]))
    try:
        in_netns(namespace, "sh", "-c", f"for i in $(seq 100); do nc -z ::1 {port} && exit 0; sleep 0.05; done; exit 1")
        yield
    finally:
        server.kill()
        server.wait()


def origin(namespace: str, url: str) -> str:
    """The caller's address as the server saw it."""
    return json.loads(in_netns(namespace, "curl", "-s", "-m", "3", url).stdout)["origin"]


def test_a_dual_stack_pod_answers_at_once(ours: Plugins) -> None:
    """Nothing waits for DAD, and nothing needs to: the pod's addresses, the new
    bridge's gateway and its link-local address (the host's source when it asks
    for a pod's MAC to forward to it, from another node say) are usable at once."""
    config = dual(ours, bridge="cnitestnew", stack=FRESH)
    first, second = ours.container(), ours.container()
    with outside_world(ours, reaches_pods=True) as world:
        result = ours.add(first, "first", config=config)
        ours.add(second, "second", config=config)
        assert [ip["address"] for ip in result["ips"]] == FRESH.addresses(2)
        for address in FRESH.gateways + FRESH.ips(3):
            assert answers(first, address), address
        for address in FRESH.ips(2):
            assert answers(world, address), address  # forwarded by the host
            assert answers(ours.host, address), address
    assert "tentative" not in in_netns(first, "ip", "-6", "addr", "show", "eth0").stdout
    assert "tentative" not in in_netns(ours.host, "ip", "-6", "addr", "show", "cnitestnew").stdout
    assert "default via fd00:128::1 dev eth0" in in_netns(first, "ip", "-6", "route").stdout


def test_a_pod_that_takes_a_deleted_pods_addresses_is_reached_at_once(ours: Plugins) -> None:
    """The host still holds the old pod's MAC for those addresses (while another
    pod keeps the bridge up, which would otherwise forget its neighbours); the
    new pod announces itself (ndisc_notify, arp_notify) as its interface comes up."""
    ours.add(ours.container(), "keeper", config=dual(ours))
    config = dual(ours, runtimeConfig={"ips": DUAL.addresses(0x50)})
    old = ours.container()
    ours.add(old, "old", config=config)
    for address in DUAL.ips(0x50):
        assert answers(ours.host, address), address
    netns.delete(old)
    assert ours.call("DEL", config, container_id="old", netns_name=old)[0] == 0
    new = ours.container()
    ours.add(new, "new", config=config)
    for address in DUAL.ips(0x50):
        assert answers(ours.host, address), address


def test_ipam_routes_of_either_family_go_via_that_familys_gateway(ours: Plugins) -> None:
    config = dual(ours, ipam={"routes": [{"dst": "10.99.0.0/16"}, {"dst": "fd00:99::/64"}]})
    container = ours.container()
    result = ours.add(container, "routes", config=config)
    assert result["routes"] == [{"dst": "10.99.0.0/16"}, {"dst": "fd00:99::/64"},
                                {"dst": "0.0.0.0/0", "gw": "10.127.0.1"}, {"dst": "::/0", "gw": "fd00:127::1"}]
    assert "10.99.0.0/16 via 10.127.0.1 dev eth0" in in_netns(container, "ip", "-4", "route").stdout
    assert "fd00:99::/64 via fd00:127::1 dev eth0" in in_netns(container, "ip", "-6", "route").stdout


@contextmanager
def outside_world(ours: Plugins, reaches_pods: bool = False) -> Iterator[str]:
    """A namespace beyond the node, on a link of its own from the host namespace
    (fd00:ee::1 on the host, fd00:ee::2 there; 10.98.0.1 and .2 for IPv4).
    Unless it reaches_pods (routes to FRESH's subnets via the host, as another
    node has), only masqueraded traffic can be answered there."""
    world = ours.container()
    link = f"pnw{world[-6:]}"
    in_netns(ours.host, "ip", "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", world)
    for namespace, ifname, host in ((ours.host, link, 1), (world, "eth0", 2)):
        in_netns(namespace, "ip", "addr", "add", f"fd00:ee::{host}/64", "dev", ifname, "nodad")
        in_netns(namespace, "ip", "addr", "add", f"10.98.0.{host}/24", "dev", ifname)
        in_netns(namespace, "ip", "link", "set", ifname, "up")
    if reaches_pods:
        for subnet, via in zip(FRESH.subnets, ("10.98.0.1", "fd00:ee::1")):
            in_netns(world, "ip", "route", "add", subnet, "via", via)
    yield world


def test_ip_masq_masquerades_each_family(ours: Plugins) -> None:
    masq, plain = ours.container(), ours.container()
    ours.add(masq, "masq", config=dual(ours, ipMasq=True))
    ours.add(plain, "plain", config=dual(ours))
    with outside_world(ours) as world, echo_server(world):
        assert origin(masq, "http://[fd00:ee::2]/") == "fd00:ee::1"
        assert origin(masq, "http://10.98.0.2/") == "10.98.0.1"
        # without ipMasq the world sees the pod's own address and cannot answer it
        assert in_netns(plain, "curl", "-s", "-m", "1", "http://[fd00:ee::2]/", check=False).returncode != 0
    masq6 = in_netns(ours.host, "nft", "list", "map", "inet", "podnet-cni", "masq6").stdout
    assert f"{DUAL.ips(2)[1]} : jump" in masq6
    assert ours.call("DEL", dual(ours, ipMasq=True), container_id="masq", netns_name=masq)[0] == 0
    assert DUAL.ips(2)[1] not in in_netns(ours.host, "nft", "list", "map", "inet", "podnet-cni", "masq6").stdout


def test_portmap_publishes_over_ipv6(ours: Plugins, tmp_path: Path) -> None:
    """Every host address of a family reaches the container's address of that
    family; an IPv6 hostIP publishes on that address only, and only over IPv6.
    IPv6's loopback cannot be published (the kernel never routes ::1 off the
    host): it is refused at once rather than black-holed."""
    config = dual(ours, hairpinMode=True)
    web, client = ours.container(), ours.container()
    result = ours.add(web, "web", config=config)
    ours.add(client, "client", config=config)
    mappings = [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
                {"hostPort": 8081, "containerPort": 80, "protocol": "tcp", "hostIP": "fd00:127::1"}]
    portmap = {"cniVersion": "1.0.0", "name": "conformance", "type": "podnet-portmap", "snat": True,
               "stateDir": str(tmp_path / "portmap"), "runtimeConfig": {"portMappings": mappings},
               "prevResult": result}
    assert ours.call("ADD", portmap, container_id="web", netns_name=web, plugin="podnet-portmap") == (0, result)
    web4, web6 = DUAL.ips(2)
    with echo_server(web):
        for url in ("http://[fd00:127::1]:8080/", "http://[fd00:127::1]:8081/"):
            reply = json.loads(in_netns(client, "curl", "-s", "-m", "3", url).stdout)
            assert (reply["ip"], reply["origin"]) == (web6, DUAL.ips(3)[1]), url  # not masqueraded
        assert json.loads(in_netns(client, "curl", "-s", "-m", "3", "http://10.127.0.1:8080/").stdout)["ip"] == web4
        assert in_netns(client, "curl", "-s", "-m", "1", "http://10.127.0.1:8081/", check=False).returncode == 7
        assert origin(ours.host, "http://[fd00:127::1]:8080/") == "fd00:127::1"
        assert origin(web, "http://[fd00:127::1]:8080/") != web6  # hairpin: masqueraded
        assert in_netns(ours.host, "curl", "-s", "-m", "2", "http://[::1]:8080/", check=False).returncode == 7
    assert ours.call("DEL", {k: v for k, v in portmap.items() if k not in ("prevResult", "runtimeConfig")},
                     container_id="web", netns_name=web, plugin="podnet-portmap")[0] == 0
    assert in_netns(client, "curl", "-s", "-m", "1", "http://[fd00:127::1]:8080/", check=False).returncode != 0


def test_an_ipv6_range_on_a_node_without_ipv6_fails_leaving_nothing(ours: Plugins, tmp_path: Path) -> None:
    """A node of its own (a host namespace without an agent: the plugin does
    the work itself), with IPv6 turned off."""
    node_ns = ours.container()
    in_netns(node_ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
    node = Plugins("podnet", ours.bridge, ours.host_local, ours.plugin_dir, node_ns, tmp_path / "ipam", DUAL)
    container = ours.container()
    before = in_netns(node_ns, "ip", "-o", "link").stdout, in_netns(container, "ip", "-o", "link").stdout
    code, out = node.call("ADD", node.netconf(ipMasq=True), container_id="nov6", netns_name=container)
    assert code == 1 and out is not None
    assert (out["code"], out["msg"]) == (7, "IPv6 is disabled on this node")
    assert out["details"].startswith("the network asks for IPv6 addresses but net.ipv6.conf.all.disable_ipv6 is 1")
    assert node.leases() == {}
    assert (in_netns(node_ns, "ip", "-o", "link").stdout, in_netns(container, "ip", "-o", "link").stdout) == before
    assert in_netns(node_ns, "nft", "list", "ruleset").stdout == ""
    code, out = node.call("STATUS", node.netconf("1.1.0"))
    assert code == 1 and out is not None and (out["code"], out["msg"]) == (50, "IPv6 is disabled on this node")
    node.stack = STACKS["ipv4"]  # the same node serves an IPv4 network
    assert node.add(container, "v4only")["ips"][0]["address"].startswith("10.123.0.")


def test_a_container_without_ipv6_gets_a_clear_error(ours: Plugins) -> None:
    container = ours.container()
    in_netns(container, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
    code, out = ours.call("ADD", dual(ours), container_id="c-nov6", netns_name=container)
    assert code == 1 and out is not None and (out["code"], out["msg"]) == (7, "IPv6 is disabled in the container")
    assert "net.ipv6.conf.eth0.disable_ipv6 is 1" in out["details"]
    assert ours.leases() == {}
    assert "eth0" not in in_netns(container, "ip", "-o", "link").stdout


def test_dhcp_says_it_is_ipv4_only(ours: Plugins) -> None:
    """Refused before the DHCP daemon is asked (none runs here), naming where
    IPv6 was asked for; the container's interface is given back."""
    ipam = {"type": "podnet-dhcp", "ranges": [[{"subnet": "fd00:124::/64"}]]}
    config = ours.netconf(bridge="cnitestdhcp", ipam=ipam)
    container = ours.container()
    code, out = ours.call("ADD", config, container_id="dhcp6", netns_name=container)
    assert code == 1 and out is not None and (out["code"], out["msg"]) == (7, "DHCP IPAM is IPv4 only")
    assert "ipam.ranges[0][0].subnet asks for fd00:124::/64" in out["details"]
    assert "eth0" not in in_netns(container, "ip", "-o", "link").stdout
