"""NFLOG over nfnetlink_log in a namespace: a rule's rationed `log group` reaches
a bound reader with its prefix and the packet's addresses and port, and a
policy table built both ways lists the same in nft."""

from __future__ import annotations

import socket

import pytest

from podnet.kernel import netns
from podnet.kernel.nflog import open_reader
from podnet.kernel.nftables import Chain, Table, Transaction
from podnet.kernel.nftables.hooks import Hook
from podnet.kernel.nftables.nft import Nft
from podnet.kernel.nftables.nfnl import NetlinkNft
from podnet.kernel.nftables.rules import L4PROTO, Limit, Log, match, rule
from tests.helpers import in_netns

TABLE = Table("ip", "podnet-nflog-test")


def _send(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"x", ("127.0.0.1", port))


@pytest.mark.parametrize("backend", [Nft, NetlinkNft], ids=["nft", "netlink"])
def test_logged_packets_reach_the_bound_reader(make_netns, backend) -> None:  # type: ignore[no-untyped-def]
    name = make_netns()
    in_netns(name, "ip", "link", "set", "lo", "up")
    backend.in_namespace(name).run(Transaction(TABLE).replace().add(
        Chain("out", Hook("filter", "output", 0)),
        rule("out", match(L4PROTO, "udp"), Limit(50), Log(7171, "drop ingress x/deny"))))
    reader = open_reader(name, 7171)
    try:
        for port in (5353, 5354):
            netns.run_in(name, _send, port)
        got = reader.read(2.0)
        while len(got) < 2 and (more := reader.read(1.0)):
            got += more
    finally:
        reader.close()
    assert [(g.prefix, g.source, g.destination, g.protocol, g.port) for g in got] == [
        ("drop ingress x/deny", "127.0.0.1", "127.0.0.1", "UDP", port) for port in (5353, 5354)]
    listed = in_netns(name, "nft", "list", "table", "ip", TABLE.name).stdout
    assert 'limit rate 50/second log prefix "drop ingress x/deny" group 7171' in listed
