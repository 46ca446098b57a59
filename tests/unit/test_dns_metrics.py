"""The DNS server's metrics under CoreDNS's names and labels: each answer counted
as CoreDNS's prometheus plugin would count it, whichever path answered it (the
memo, the slow path, the fast path, TCP), and the cache's kinds as CoreDNS's
cache plugin names them."""

from __future__ import annotations

import asyncio
import socket
from types import SimpleNamespace

import dns.message
import dns.rcode
import dns.rrset
import pytest
from prometheus_client.parser import text_string_to_metric_families

from podnet.dns.cache import Cache
from podnet.dns.datagrams import Datagrams
from podnet.dns.fastforward import ZoneNames
from podnet.dns.forward import Forwarder
from podnet.dns.metrics import CACHE, FORWARD, HOSTS, SERVER, TCP, UDP, ZONE, Server, address, exposition, tally
from podnet.dns.replywire import question_section
from podnet.dns.resolver import Resolver
from podnet.dns.udp import UdpServer
from podnet.dns.zone import Zone, add_hosts
from tests.unit.test_dns_zone import ZONE as CLUSTER_ZONE

LISTENING = Server.listening_on("0.0.0.0", 53)
BLOCK = {"server": "dns://:53", "zone": ".", "view": ""}


def resolver(forwarder: Forwarder | None = None, zone: Zone = CLUSTER_ZONE) -> Resolver:
    return Resolver(SimpleNamespace(zone=zone, revision=0), forwarder)  # type: ignore[arg-type]


def samples(resolver: Resolver) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """What Prometheus would scrape, by sample name and labels."""
    text = exposition(tally(resolver, LISTENING)).decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(scraped: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float | None:
    return scraped.get((name, frozenset(labels.items())))


def wire(name: str, rdtype: str = "A", rcode: int | None = None) -> bytes:
    query = dns.message.make_query(name, rdtype)
    if rcode is None:
        return query.to_wire()
    reply = dns.message.make_response(query)
    reply.set_rcode(rcode)
    return reply.to_wire()


ATTRIBUTION = [  # (case, transport, source, query type, reply rcode or None: no reply, proto, type, rcode, plugin)
    ("a cluster name over UDP", UDP, ZONE, "A", dns.rcode.NOERROR, "udp", "A", "NOERROR", "kubernetes"),
    ("a missing cluster name over TCP", TCP, ZONE, "AAAA", dns.rcode.NXDOMAIN, "tcp", "AAAA", "NXDOMAIN", "kubernetes"),
    ("a zone transfer refused", TCP, ZONE, "AXFR", dns.rcode.REFUSED, "tcp", "AXFR", "REFUSED", ""),
    ("a service's ports", UDP, ZONE, "SRV", dns.rcode.NOERROR, "udp", "SRV", "NOERROR", "kubernetes"),
    ("a hosts entry", UDP, HOSTS, "PTR", dns.rcode.NOERROR, "udp", "PTR", "NOERROR", "hosts"),
    ("an answer from the cache", UDP, CACHE, "TXT", dns.rcode.NOERROR, "udp", "TXT", "NOERROR", "cache"),
    ("an upstream's failure passed on", UDP, FORWARD, "MX", dns.rcode.SERVFAIL, "udp", "MX", "SERVFAIL", "forward"),
    ("no upstream answered", UDP, SERVER, "HTTPS", dns.rcode.SERVFAIL, "udp", "HTTPS", "SERVFAIL", ""),
    ("a type CoreDNS does not name", UDP, FORWARD, "CAA", dns.rcode.NOERROR, "udp", "other", "NOERROR", "forward"),
    ("a query that gets no reply", UDP, SERVER, "A", None, "udp", "A", None, None),
]


@pytest.mark.parametrize(("transport", "source", "rdtype", "rcode", "proto", "qtype", "rcode_text", "plugin"),
                         [row[1:] for row in ATTRIBUTION], ids=[row[0] for row in ATTRIBUTION])
def test_an_answer_is_counted_with_coredns_labels(transport: int, source: int, rdtype: str, rcode: int | None,
                                                   proto: str, qtype: str, rcode_text: str | None,
                                                   plugin: str | None) -> None:
    answering = resolver()
    reply = wire("web.apps.svc.cluster.local.", rdtype, rcode) if rcode is not None else None
    for _ in range(2):
        answering.counts.answered(transport, source, dns.rdatatype.from_text(rdtype), reply)
    scraped = samples(answering)
    assert value(scraped, "coredns_dns_requests_total", **BLOCK, proto=proto, family="1", type=qtype) == 2
    responses = {dict(labels)["rcode"]: (dict(labels)["plugin"], n) for (name, labels), n in scraped.items()
                 if name == "coredns_dns_responses_total"}
    assert responses == ({rcode_text: (plugin, 2)} if rcode_text is not None else {})


def test_the_server_label_names_the_address_only_when_bound_to_one() -> None:
    assert Server.listening_on("0.0.0.0", 53) == Server("dns://:53", "1")
    assert Server.listening_on("10.96.0.10", 53) == Server("dns://10.96.0.10:53", "1")
    assert Server.listening_on("::", 5353) == Server("dns://:5353", "2")
    assert Server.listening_on("fd00::a", 53) == Server("dns://[fd00::a]:53", "2")
    assert address(("10.0.0.1", 53)) == "10.0.0.1:53" and address(("fd00::1", 53)) == "[fd00::1]:53"


class _RightAway:
    """An event loop that runs what it is handed at once, on the calling thread."""

    @staticmethod
    def call_soon_threadsafe(callback, *args) -> None:  # type: ignore[no-untyped-def]
        callback(*args)


def ask(server: UdpServer, client: socket.socket, query: bytes, times: int) -> list[dns.message.Message]:
    """Queries through the UDP server's own receiving path, as its thread reads them."""
    datagrams, replies = Datagrams(server.sock, size=4096), []
    for _ in range(times):
        client.sendto(query, server.sock.getsockname())
        server._queries(datagrams)
        datagrams.send()
        replies.append(dns.message.from_wire(client.recv(4096)))
    return replies


@pytest.fixture
def udp_server():  # type: ignore[no-untyped-def]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        sock.bind(("127.0.0.1", 0))
        client.bind(("127.0.0.1", 0))
        client.settimeout(2)
        yield UdpServer(resolver(), sock, _RightAway()), client  # type: ignore[arg-type]


def test_repeats_answered_from_the_memo_count_as_the_first_answer_did(udp_server) -> None:  # type: ignore[no-untyped-def]
    server, client = udp_server
    replies = ask(server, client, wire("web.apps.svc.cluster.local.", "A"), 3)  # the first on the slow path
    assert [r.answer[0][0].address for r in replies] == ["10.96.0.20"] * 3
    ask(server, client, wire("nothing.apps.svc.cluster.local.", "AAAA"), 2)
    scraped = samples(server.resolver)
    assert value(scraped, "coredns_dns_requests_total", **BLOCK, proto="udp", family="1", type="A") == 3
    assert value(scraped, "coredns_dns_requests_total", **BLOCK, proto="udp", family="1", type="AAAA") == 2
    assert value(scraped, "coredns_dns_responses_total", **BLOCK, rcode="NOERROR", plugin="kubernetes") == 3
    assert value(scraped, "coredns_dns_responses_total", **BLOCK, rcode="NXDOMAIN", plugin="kubernetes") == 2


def test_a_hosts_entry_is_the_hosts_plugins_answer_and_a_cluster_name_the_kubernetes_plugins() -> None:
    zone = Zone("cluster.local")
    zone.add("web.apps.svc.cluster.local.", dns.rdatatype.A, "10.96.0.20")
    add_hosts(zone, [("db.example.org.", "192.168.1.11")])
    answering = resolver(zone=zone)
    for name, rdtype in (("db.example.org.", "A"), ("11.1.168.192.in-addr.arpa.", "PTR"),
                         ("web.apps.svc.cluster.local.", "A")):
        query = wire(name, rdtype)
        reply = asyncio.run(answering.answer(query, udp=False))
        answering.counts.answered(TCP, reply.source, dns.rdatatype.from_text(rdtype), reply.wire)
    scraped = samples(answering)
    assert value(scraped, "coredns_dns_responses_total", **BLOCK, rcode="NOERROR", plugin="hosts") == 2
    assert value(scraped, "coredns_dns_responses_total", **BLOCK, rcode="NOERROR", plugin="kubernetes") == 1


def forwarded(query: bytes, rcode: int = dns.rcode.NOERROR) -> bytes:
    reply = dns.message.make_response(dns.message.from_wire(query))
    reply.set_rcode(rcode)
    if rcode == dns.rcode.NOERROR:
        reply.answer.append(dns.rrset.from_text("www.example.org.", 60, "IN", "A", "203.0.113.10"))
    else:
        reply.authority.append(dns.rrset.from_text("example.org.", 300, "IN", "SOA",
                                                   "ns.example.org. host.example.org. 1 7200 1800 86400 30"))
    return reply.to_wire()


def test_memo_answers_from_the_cache_are_hits_of_their_kind(udp_server) -> None:  # type: ignore[no-untyped-def]
    server, client = udp_server
    server._memo_zone, server._names = CLUSTER_ZONE, ZoneNames(CLUSTER_ZONE)  # as the first batch sets them
    found, missing = wire("www.example.org.", "A"), wire("nope.example.org.", "A")
    for query, rcode in ((found, dns.rcode.NOERROR), (missing, dns.rcode.NXDOMAIN)):
        server._keep_forwarded(query, question_section(query).lower(), forwarded(query, rcode))
    ask(server, client, found, 3)
    ask(server, client, missing, 2)
    scraped = samples(server.resolver)
    cache = {"server": "dns://:53", "zones": ".", "view": ""}
    assert value(scraped, "coredns_cache_hits_total", **cache, type="success") == 3
    assert value(scraped, "coredns_cache_hits_total", **cache, type="denial") == 2
    assert value(scraped, "coredns_cache_entries", **cache, type="success") == 1
    assert value(scraped, "coredns_cache_entries", **cache, type="denial") == 1
    assert value(scraped, "coredns_cache_requests_total", **cache) == 5
    assert value(scraped, "coredns_dns_responses_total", **BLOCK, rcode="NOERROR", plugin="cache") == 3
    assert value(scraped, "coredns_dns_responses_total", **BLOCK, rcode="NXDOMAIN", plugin="cache") == 2


def test_the_slow_paths_cache_counts_hits_and_misses_by_kind() -> None:
    cache = Cache()
    cache.put(forwarded(wire("www.example.org.")))
    cache.put(forwarded(wire("nope.example.org."), dns.rcode.NXDOMAIN))
    for name in ("www.example.org.", "www.example.org.", "nope.example.org.", "other.example.org."):
        cache.get(dns.message.make_query(name, "A"))
    assert cache.hits == [2, 1] and cache.misses == 1 and cache.entries() == (1, 1)


def test_upstreams_are_counted_under_corednss_proxy_names_and_podnets_own() -> None:
    forwarder = Forwarder([("10.0.0.1", 53), ("fd00::1", 53)])
    forwarder.sent[("10.0.0.1", 53)], forwarder.failed[("10.0.0.1", 53)] = 7, 2
    forwarder.failed_checks[("fd00::1", 53)] = 4
    scraped = samples(resolver(forwarder))
    assert value(scraped, "coredns_proxy_healthcheck_failures_total", proxy_name="forward", to="[fd00::1]:53") == 4
    assert value(scraped, "coredns_proxy_healthcheck_failures_total", proxy_name="forward", to="10.0.0.1:53") == 0
    assert value(scraped, "podnet_dns_forward_requests_total", to="10.0.0.1:53") == 7
    assert value(scraped, "podnet_dns_forward_failures_total", to="10.0.0.1:53") == 2
    assert value(scraped, "podnet_dns_zone_records") == len(CLUSTER_ZONE)
    assert {name for name, _ in scraped if name.startswith("podnet_dns_")} == {  # what CoreDNS has no metric for
        "podnet_dns_forward_requests_total", "podnet_dns_forward_failures_total", "podnet_dns_zone_records",
        "podnet_dns_forwarding_loop"}
