"""NFLOG over nfnetlink_log in a namespace: a rule's rationed `log group` reaches
a bound reader with its prefix and the packet's addresses and port; the flow
table logs each new connection once, numbered, and conntrack's events give
each its entry and, at its end, its counters; and the same for real IPv6
packets through the ip6 flow table, read by the same two sockets."""

from __future__ import annotations

import socket

import pytest

from podnet.kernel import conntrack, netns
from podnet.kernel.netlink import open_namespace
from podnet.kernel.conntrack import open_events
from podnet.kernel.nflog import OBSERVED_GROUP, open_reader
from podnet.kernel.node import NamespaceKernel
from podnet.kernel.nftables import Chain, Table, Transaction
from podnet.kernel.nftables.hooks import Hook
from podnet.kernel.nftables.nft import Nft
from podnet.kernel.nftables.nfnl import NetlinkNft
from podnet.kernel.nftables.rules import L4PROTO, Limit, Log, match, rule
from podnet.observe.flows import Correlator
from podnet.model.families import IPV4, IPV6
from podnet.observe.recorder import ACCOUNTING, flow_table
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


def test_the_flow_table_logs_each_new_connection_once_numbered_with_its_conntrack_entry(make_veth_pair) -> None:  # type: ignore[no-untyped-def]
    node, client = make_veth_pair("flows0", "10.9.0.1/24", "10.9.0.2/24")
    kernel = NamespaceKernel(node)
    kernel.ensure_sysctl(ACCOUNTING, "1")
    kernel.nft.run(flow_table())
    packets, entries = open_reader(node, OBSERVED_GROUP, numbered=True, batch=8, batch_ms=20), open_events(node)
    try:
        netns.run_in(client, _three_udp_connections)
        logged = _gather(packets.read, 3)
        made = [e for e in _gather(entries.read, 3) if e.kind == "new"]
        assert {g.prefix for g in logged} == {"flow"}
        assert [g.sequence for g in logged] == [logged[0].sequence + i for i in range(len(logged))]  # no gap
        correlator = Correlator()
        for each in logged:  # a connection's second datagram may be logged too: it raced the first to the table
            correlator.packet(each, now=0.0)
        for event in made:
            correlator.entry(event, now=0.0)
        joined = correlator.ready(now=1.0)  # after the wait: a raced second datagram is merged
        assert len(joined) == 3 and all(event is not None for _, _, event in joined)
        assert len(joined) + correlator.merged == len(logged)
        assert conntrack.forget_udp(node) == 3
        ended = [e for e in _gather(entries.read, 3) if e.kind == "destroy"]
        assert sorted(e.packets for e in ended) == [1, 1, 2]  # the counters, with accounting on
    finally:
        packets.close()
        entries.close()


def test_the_ip6_flow_table_logs_each_new_ipv6_connection_with_its_conntrack_entry(make_veth_pair) -> None:  # type: ignore[no-untyped-def]
    node, client = make_veth_pair("flows0", "10.9.0.1/24", "10.9.0.2/24")
    for namespace, ifname, address in ((node, "flows0", "fd00:9::1/64"), (client, "eth0", "fd00:9::2/64")):
        with open_namespace(namespace) as ns:
            ns.ensure_address(ifname, address)
    kernel = NamespaceKernel(node)
    kernel.ensure_sysctl(ACCOUNTING, "1")
    for family in (IPV4, IPV6):
        kernel.nft.run(flow_table(family))
    assert "table ip6 podnet-flows" in in_netns(node, "nft", "list", "tables").stdout
    packets, entries = open_reader(node, OBSERVED_GROUP, numbered=True, batch=8, batch_ms=20), open_events(node)
    try:
        netns.run_in(client, _three_udp_connections, "fd00:9::1")
        logged = _gather(packets.read, 3)
        made = [e for e in _gather(entries.read, 3) if e.kind == "new"]
        assert {(g.prefix, g.source, g.destination, g.protocol, g.port) for g in logged} == {
            ("flow", "fd00:9::2", "fd00:9::1", "UDP", 9)}
        assert {(e.original.source, e.original.destination, e.reply.source) for e in made} == {
            ("fd00:9::2", "fd00:9::1", "fd00:9::1")}
        correlator = Correlator()
        for each in logged:
            correlator.packet(each, now=0.0)
        for event in made:
            correlator.entry(event, now=0.0)
        joined = correlator.ready(now=1.0)
        assert len(joined) == 3 and all(event is not None for _, _, event in joined)
        assert conntrack.forget_udp(node, original_destination="fd00:9:0::1") == 3  # deleted as IPv6 entries
        ended = [e for e in _gather(entries.read, 3) if e.kind == "destroy"]
        assert sorted(e.packets for e in ended) == [1, 1, 2]
    finally:
        packets.close()
        entries.close()


def _three_udp_connections(address: str = "10.9.0.1") -> None:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as first:
        first.sendto(b"x", (address, 9))
        first.sendto(b"x", (address, 9))  # the same connection: not logged again
        for _ in range(2):
            with socket.socket(family, socket.SOCK_DGRAM) as other:
                other.sendto(b"x", (address, 9))


def _gather(read, count: int) -> list:  # type: ignore[no-untyped-def, type-arg]
    found: list = []  # type: ignore[type-arg]
    while len(found) < count and (more := read(2.0)):
        found += more
    return found + read(0.3)  # and whatever follows at once
