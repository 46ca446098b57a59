"""Where the DNS server listens, and how its metrics tell the families apart:
on every address it has a socket of each family (a pod of a dual-stack cluster
asks the DNS Service's IPv6 ClusterIP), and CoreDNS's `family` label counts a
query by the socket it came in on."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from podnet.dns.config import DnsConfig, parse_corefile
from podnet.dns.metrics import TCP, TCP6, UDP, UDP6, transport_of
from podnet.dns.udp import UdpServer, bound_udp_socket
from tests.unit.test_dns_metrics import BLOCK, _RightAway, ask, resolver, samples, value, wire


@pytest.mark.parametrize("host, hosts", [
    ("0.0.0.0", ("0.0.0.0", "::")),
    ("::", ("0.0.0.0", "::")),
    ("", ("0.0.0.0", "::")),
    ("10.96.0.10", ("10.96.0.10",)),
    ("fd00:10:96::a", ("fd00:10:96::a",)),
])
def test_every_address_is_both_families(host: str, hosts: tuple[str, ...]) -> None:
    assert DnsConfig(listen=(host, 53)).listen_hosts == hosts


def test_a_corefile_server_block_listens_on_both_families() -> None:
    assert parse_corefile(".:53 {\n  forward . [2001:db8::53]:53 10.0.0.53\n}\n").listen_hosts == ("0.0.0.0", "::")
    assert parse_corefile(".:53 {\n  forward . 2001:db8::53\n}\n").upstreams == (("2001:db8::53", 53),)


def test_transports_carry_the_sockets_family() -> None:
    assert [transport_of(tcp, family) for tcp in (False, True) for family in (socket.AF_INET, socket.AF_INET6)] == [
        UDP, UDP6, TCP, TCP6]


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.fixture
def two_servers() -> Iterator[tuple[UdpServer, socket.socket, UdpServer, socket.socket]]:
    """One resolver answering on an IPv4 and an IPv6 socket (on loopback), with a client of each family."""
    if not ipv6_loopback():
        pytest.skip("no IPv6 loopback here")
    answering = resolver()
    sockets = [bound_udp_socket(host, 0, False) for host in ("127.0.0.1", "::1")]
    clients = [socket.socket(family, socket.SOCK_DGRAM) for family in (socket.AF_INET, socket.AF_INET6)]
    try:
        for client, host in zip(clients, ("127.0.0.1", "::1")):
            client.bind((host, 0))
            client.settimeout(2)
        four, six = (UdpServer(answering, sock, _RightAway()) for sock in sockets)  # type: ignore[arg-type]
        yield four, clients[0], six, clients[1]
    finally:
        for sock in (*sockets, *clients):
            sock.close()


def test_an_ipv6_socket_takes_ipv6_only() -> None:
    if not ipv6_loopback():
        pytest.skip("no IPv6 loopback here")
    with bound_udp_socket("::", 0, False) as sock:
        assert sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1


def test_queries_are_counted_by_the_family_they_came_over(two_servers) -> None:  # type: ignore[no-untyped-def]
    four, client4, six, client6 = two_servers
    over6 = ask(six, client6, wire("web.apps.svc.cluster.local.", "AAAA"), 3)  # the first on the slow path
    assert all(r.rcode() == 0 and not r.answer for r in over6)  # an IPv4 Service: NODATA, over IPv6 too
    over4 = ask(four, client4, wire("web.apps.svc.cluster.local.", "A"), 2)
    assert [r.answer[0][0].address for r in over4] == ["10.96.0.20"] * 2
    scraped = samples(four.resolver)
    assert value(scraped, "coredns_dns_requests_total", **BLOCK, proto="udp", family="2", type="AAAA") == 3
    assert value(scraped, "coredns_dns_requests_total", **BLOCK, proto="udp", family="1", type="A") == 2
    assert value(scraped, "coredns_dns_requests_total", **BLOCK, proto="udp", family="1", type="AAAA") is None
    assert value(scraped, "coredns_dns_responses_total", **BLOCK, rcode="NOERROR", plugin="kubernetes") == 5
