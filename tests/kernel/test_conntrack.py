"""Forgetting UDP flows over ctnetlink, in either family, checked with the conntrack tool."""

from __future__ import annotations

import socket

from podnet.kernel import conntrack, netns
from podnet.kernel.netlink import open_namespace
from podnet.kernel.nftables import Chain, Table, Transaction
from podnet.kernel.nftables.hooks import Hook
from podnet.kernel.nftables.nfnl import NetlinkNft
from podnet.kernel.nftables.rules import CT_STATE, match, rule, ACCEPT
from tests.helpers import in_netns


def _send_udp(*destinations: str) -> None:
    with socket.socket(socket.AF_INET6 if ":" in destinations[0] else socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for destination in destinations:
            sock.sendto(b"x", (destination, 9))


def test_udp_flows_are_forgotten_by_destination_and_by_reply_source(make_netns) -> None:  # type: ignore[no-untyped-def]
    name = make_netns()
    in_netns(name, "ip", "link", "set", "lo", "up")
    table = Table("ip", "pn-track")  # a ct expression makes the kernel track this namespace's flows
    NetlinkNft.in_namespace(name).run(Transaction(table).add(table, Chain("out", Hook("filter", "output", 0))).add(
        rule("out", match(CT_STATE, "new"), ACCEPT)))
    netns.run_in(name, _send_udp, "127.0.0.2", "127.0.0.3", "127.0.0.4")

    def tracked() -> set[str]:
        listed = in_netns(name, "conntrack", "-L", "-p", "udp").stdout
        return {address for address in ("127.0.0.2", "127.0.0.3", "127.0.0.4") if f"dst={address} " in listed}

    assert tracked() == {"127.0.0.2", "127.0.0.3", "127.0.0.4"}
    assert conntrack.forget_udp(name, original_destination="127.0.0.2") == 1
    assert tracked() == {"127.0.0.3", "127.0.0.4"}
    assert conntrack.forget_udp(name, reply_source="127.0.0.3") == 1
    assert tracked() == {"127.0.0.4"}
    assert conntrack.forget_udp(name, original_destination="127.0.0.9") == 0


def test_ipv6_udp_flows_are_forgotten_and_ipv4_ones_kept(make_netns) -> None:  # type: ignore[no-untyped-def]
    name = make_netns()
    in_netns(name, "ip", "link", "set", "lo", "up")
    with open_namespace(name) as ns:
        for address in ("fd00:9::2/128", "fd00:9::3/128", "fd00:9::4/128"):
            ns.ensure_address("lo", address)
    for family in ("ip", "ip6"):  # a ct expression in each family's table tracks that family's flows
        table = Table(family, "pn-track")
        NetlinkNft.in_namespace(name).run(Transaction(table).add(table, Chain("out", Hook("filter", "output", 0))).add(
            rule("out", match(CT_STATE, "new"), ACCEPT)))
    netns.run_in(name, _send_udp, "fd00:9::2", "fd00:9::3", "fd00:9::4")
    netns.run_in(name, _send_udp, "127.0.0.2")
    addresses = ("fd00:9::2", "fd00:9::3", "fd00:9::4", "127.0.0.2")

    def tracked() -> set[str]:
        listed = in_netns(name, "conntrack", "-L", "-f", "ipv6", "-p", "udp").stdout + \
            in_netns(name, "conntrack", "-L", "-f", "ipv4", "-p", "udp").stdout
        return {address for address in addresses if f"dst={address} " in listed}

    assert tracked() == set(addresses)
    assert conntrack.forget_udp(name, original_destination="fd00:9:0:0::2") == 1  # however it is written
    assert tracked() == {"fd00:9::3", "fd00:9::4", "127.0.0.2"}
    assert conntrack.forget_udp(name, reply_source="fd00:9::3") == 1
    assert tracked() == {"fd00:9::4", "127.0.0.2"}
    assert conntrack.forget_udp(name) == 2  # both families' at once
    assert tracked() == set()
