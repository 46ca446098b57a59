"""A node's policy table (ranges, flag lists, named ports, ipBlocks with holes,
logged drops, audit mode; IPv4 alone or both families) loads into the kernel
over netlink exactly as nft loads the same table as a script; and real IPv4 and
IPv6 packets between pods on a node's bridge meet what it says, neighbour
discovery included."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from podnet.kernel import netns, sysctl
from podnet.kernel.netlink import open_namespace
from podnet.kernel.nftables.nft import Nft
from podnet.kernel.nftables.nfnl import NetlinkNft
from podnet.kernel.node import NamespaceKernel
from podnet.model.families import IPV4, IPV6
from podnet.policy.enforcer import PolicyEnforcer
from podnet.policy.evaluator import PolicyView
from podnet.policy.ruleset import render
from podnet.store.snapshot import Snapshot
from tests.helpers import in_netns, within
from tests.policy_model import addresses, model_namespaces, model_pods, policy

POLICIES = ["""
kind: NetworkPolicy
metadata: {name: mixed, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {ns: y}}, podSelector: {matchLabels: {pod: b}}},
           {ipBlock: {cidr: 10.244.0.0/16, except: [10.244.0.13/32, 10.244.1.0/24]}},
           {ipBlock: {cidr: "fd00:10:244::/56", except: ["fd00:10:244::13/128", "fd00:10:244:1::/64"]}}]
    ports: [{port: 80}, {port: 79, endPort: 81, protocol: UDP}, {port: serve-81-tcp}, {protocol: SCTP}]
  egress: [{to: [{podSelector: {}}], ports: [{port: serve-80-udp, protocol: UDP}]}]
""", """
kind: NetworkPolicy
metadata: {name: watch, namespace: y, annotations: {podnet.dev/enforcement: audit}}
spec: {podSelector: {}}
"""]
DUAL = (IPV4, IPV6)


@pytest.mark.parametrize("families", [(IPV4,), DUAL], ids=["ipv4", "dual-stack"])
def test_netlink_builds_the_policy_table_nft_builds(make_netns, families) -> None:  # type: ignore[no-untyped-def]
    view = PolicyView(model_pods(families=families), model_namespaces(), [policy(text) for text in POLICIES])
    table = render(view, "node1")
    assert table is not None
    by_script, by_netlink = make_netns(), make_netns()
    Nft.in_namespace(by_script).run(table)
    NetlinkNft.in_namespace(by_netlink).run(table)
    listed = [in_netns(name, "nft", "list", "ruleset").stdout for name in (by_script, by_netlink)]
    assert "udp dport 79-81" in listed[1] and "ct state established,related accept" in listed[1]
    assert 'log prefix "audit ingress y/watch" group 7170' in listed[1]
    assert listed[0] == listed[1]


LOCKED_DOWN = """
kind: NetworkPolicy
metadata: {name: web, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  policyTypes: [Ingress, Egress]
  ingress:
  - from: [{podSelector: {matchLabels: {pod: b}}}]
    ports: [{port: 80}]
  - from: [{ipBlock: {cidr: "fd00:10:244::/64", except: ["fd00:10:244::13/128"]}}]
    ports: [{port: 81}]
"""
POD_NAMESPACES = ("x/a", "x/b", "x/c", "y/a")  # 10.244.0.10-13 and fd00:10:244::10-13


@pytest.fixture
def pods_on_a_bridge(make_netns: Callable[[], str]) -> tuple[str, dict[str, str]]:
    """A node with a bridge, and the model's first four pods on it with an address
    of each family; returns the node's namespace and each pod's."""
    node = make_netns()
    with open_namespace(node) as ns:
        ns.ensure_bridge("br0")
    pods = {key: make_netns() for key in POD_NAMESPACES}
    for i, (key, name) in enumerate(pods.items()):
        sysctl.ensure(name, "net.ipv6.conf.default.accept_dad", "0")  # addresses usable at once
        with open_namespace(node) as ns:
            ns.create_veth(f"pod{i}", "eth0", name, master="br0", up=True)
        with open_namespace(name) as ns:
            ns.ensure_address("eth0", f"10.244.0.{10 + i}/24")
            ns.ensure_address("eth0", f"fd00:10:244::{10 + i}/64")
            ns.set_up("eth0")
            ns.set_up("lo")
    return node, pods


@contextmanager
def serving(namespace: str, ports: tuple[int, ...]) -> Iterator[None]:
    """Accepts TCP connections on `ports`, over IPv4 and IPv6, until the block ends."""
    def listen(port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(("::", port))
        sock.listen(16)
        return sock

    listeners = [netns.run_in(namespace, listen, port) for port in ports]

    def accept(sock: socket.socket) -> None:
        while True:
            try:
                sock.accept()[0].close()
            except OSError:
                return

    for sock in listeners:
        threading.Thread(target=accept, args=(sock,), daemon=True).start()
    try:
        yield
    finally:
        for sock in listeners:
            sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def connect(namespace: str, address: str, port: int) -> str:
    """"connected", "refused" (nobody listens), or "dropped" (no answer within half a second)."""
    def attempt() -> str:
        try:
            socket.create_connection((address, port), timeout=0.5).close()
        except ConnectionRefusedError:
            return "refused"
        except OSError:
            return "dropped"
        return "connected"

    return netns.run_in(namespace, attempt)


def test_real_packets_of_both_families_meet_the_table(pods_on_a_bridge) -> None:  # type: ignore[no-untyped-def]
    """x/a is isolated both ways: in from pods b on 80 and from the IPv6 block
    (but y/a) on 81; out, nothing. Its neighbour discovery still works, or no IPv6
    connection to it could."""
    node, pods = pods_on_a_bridge
    view_pods = [p for p in model_pods(families=DUAL) if p.metadata.key in pods]
    v4, v6 = addresses(view_pods, IPV4), addresses(view_pods, IPV6)
    kernel = NamespaceKernel(node)
    try:
        enforcer = PolicyEnforcer(kernel, "node1")
        snapshot = Snapshot(1, [], view_pods, [], [], model_namespaces(), [policy(LOCKED_DOWN)])
        assert enforcer.sync(snapshot) == "table"
        with serving(pods["x/a"], (80, 81)):
            assert connect(pods["x/b"], v6["x/a"], 80) == connect(pods["x/b"], v4["x/a"], 80) == "connected"
            assert connect(pods["x/c"], v6["x/a"], 81) == "connected"  # the IPv6 block
            assert connect(pods["x/c"], v4["x/a"], 81) == "dropped"  # which says nothing of IPv4
            assert connect(pods["x/c"], v6["x/a"], 80) == "dropped"  # pods b only
            assert connect(pods["y/a"], v6["x/a"], 81) == "dropped"  # the block's hole
            assert connect(pods["x/a"], v6["x/b"], 80) == "dropped"  # no egress at all
            assert connect(pods["x/b"], v6["x/c"], 80) == "refused"  # x/c is not isolated: its kernel answers
    finally:
        kernel.nft.close()


DENY_INGRESS = """
kind: NetworkPolicy
metadata: {name: closed, namespace: x}
spec: {podSelector: {matchLabels: {pod: a}}}
"""


@pytest.mark.parametrize("text", [DENY_INGRESS, LOCKED_DOWN], ids=["ingress-denied", "egress-denied-too"])
def test_a_pod_denied_every_packet_still_answers_neighbour_solicitations(pods_on_a_bridge, text) -> None:  # type: ignore[no-untyped-def]
    """y/a may send x/a nothing (and, in the second case, x/a may send nothing at
    all); yet when y/a probes its neighbour entry for x/a (a unicast
    solicitation, which the ingress dispatch sees as addressed to x/a) x/a
    answers, and the entry is confirmed."""
    node, pods = pods_on_a_bridge
    view_pods = [p for p in model_pods(families=DUAL) if p.metadata.key in pods]
    x_a = addresses(view_pods, IPV6)["x/a"]
    kernel = NamespaceKernel(node)
    try:
        snapshot = Snapshot(1, [], view_pods, [], [], model_namespaces(), [policy(text)])
        assert PolicyEnforcer(kernel, "node1").sync(snapshot) == "table"
        mac = in_netns(pods["x/a"], "cat", "/sys/class/net/eth0/address").stdout.strip()
        in_netns(pods["y/a"], "ip", "-6", "neigh", "replace", x_a, "lladdr", mac, "dev", "eth0", "nud", "probe")
        assert within(5, lambda: "REACHABLE" in in_netns(pods["y/a"], "ip", "-6", "neigh", "show", x_a).stdout), \
            in_netns(pods["y/a"], "ip", "-6", "neigh", "show", x_a).stdout
        assert connect(pods["y/a"], x_a, 80) == "dropped"  # while its connections stay denied
    finally:
        kernel.nft.close()
