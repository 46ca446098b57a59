"""Prometheus metrics of the DNS server, under CoreDNS's names and labels, so the
dashboards and alerts written for kubeadm's CoreDNS read them unchanged.

The labels carry what CoreDNS prints for kubeadm's one server block: server
"dns://:53" (the address when it listens on one), zone ".", view "". Upstreams
are CoreDNS 1.11's: coredns_proxy_healthcheck_failures_total{proxy_name="forward"}.
What CoreDNS has no metric for keeps a podnet_dns_ name: the zone's size, a
detected forwarding loop, and queries and failures per upstream (CoreDNS 1.11
dropped coredns_forward_requests_total). Durations and sizes are not kept:
timing each answer would about double what a repeat answered from the memo costs.

The answering path only bumps an integer in a list, one slot per transport,
source, query type and rcode (a memo entry carries its slot); the numbers become
metric families when Prometheus scrapes (podnet.observe.tally, which the node
agent's metrics use too), so a query pays no lock for its counting. With several
workers, each publishes its tally and the first one's /metrics adds them up
(podnet.dns.workers).
"""

from __future__ import annotations

import socket
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

import dns.rcode
import dns.rdatatype

from podnet.observe.tally import Family, Tally
from podnet.observe.tally import combined as combine_tallies
from podnet.observe.tally import exposition as render

if TYPE_CHECKING:
    from podnet.dns.forward import Upstream
    from podnet.dns.resolver import Resolver

UDP, TCP = 0, 1
TRANSPORTS = ("udp", "tcp")
# A query is counted by transport and by the family of the socket it came in on
# (CoreDNS's `family` label: 1 for IPv4, 2 for IPv6): UDP6 and TCP6 are udp and
# tcp over an IPv6 socket, as a server listening on every address has one of each.
UDP6, TCP6 = UDP + len(TRANSPORTS), TCP + len(TRANSPORTS)
_CHANNELS = 2 * len(TRANSPORTS)
# What wrote a reply, as CoreDNS's `plugin` label names it ("": the server itself, for errors).
PLUGINS = ("", "kubernetes", "hosts", "cache", "forward")
SERVER, ZONE, HOSTS, CACHE, FORWARD = range(len(PLUGINS))
_SOURCES = len(PLUGINS)
# The query types CoreDNS's metrics name (its monitorType); the rest are counted as "other".
TYPES = ("A", "AAAA", "CNAME", "DNSKEY", "DS", "MX", "NSEC3", "NSEC", "NS", "PTR", "RRSIG", "SOA", "SRV", "TXT",
         "HTTPS", "IXFR", "AXFR", "ANY", "other")
_TYPE_INDEX = {dns.rdatatype.from_text(name): i for i, name in enumerate(TYPES[:-1])}
NO_REPLY = 16  # a request that got no reply: after the 16 rcodes a header holds
_RCODES = 17
SLOTS = _CHANNELS * _SOURCES * len(TYPES) * _RCODES
CACHE_TYPES = ("success", "denial")  # CoreDNS's cache kinds: denial is NXDOMAIN or no answer (NODATA)


def transport_of(tcp: bool, family: int) -> int:
    """UDP, TCP, UDP6 or TCP6, for a socket of that address family (socket.AF_INET or AF_INET6)."""
    return (TCP if tcp else UDP) + (len(TRANSPORTS) if family == socket.AF_INET6 else 0)


def slot(transport: int, source: int, qtype: int, reply: bytes | None) -> int:
    """Where an answer is counted in Counts.answers."""
    rcode = reply[3] & 0x0F if reply and len(reply) > 3 else NO_REPLY
    return ((transport * _SOURCES + source) * len(TYPES) + _TYPE_INDEX.get(qtype, len(TYPES) - 1)) * _RCODES + rcode


def question_type(wire: bytes) -> int:
    """The type asked in a message's first question; 0 (counted as "other") without one."""
    at = 12
    while at < len(wire) and wire[at]:
        at += wire[at] + 1
    return int.from_bytes(wire[at + 1:at + 3], "big") if wire[4:6] != b"\0\0" and at + 3 <= len(wire) else 0


def section_type(key: bytes) -> int:
    """The type in a question section's bytes (name, type, class)."""
    return int.from_bytes(key[-4:-2], "big")


class Counts:
    """What one answering thread counts (no two threads bump one list)."""

    def __init__(self) -> None:
        self.answers = [0] * SLOTS  # by slot()
        self.cache_hits = [0, 0]  # memo answers from the cache, by CACHE_TYPES
        self.cache_misses = 0  # answers the fast path forwarded, as the cache did not hold them

    def answered(self, transport: int, source: int, qtype: int, reply: bytes | None) -> None:
        self.answers[slot(transport, source, qtype, reply)] += 1


@dataclass(frozen=True)
class Server:
    """The `server` and `family` labels of a server listening on an address."""

    label: str
    family: str  # of the address it names: 1 for IPv4, 2 for IPv6 (a query's own label is its socket's family)

    @classmethod
    def listening_on(cls, host: str, port: int) -> Server:
        bound = "" if host in ("", "0.0.0.0", "::") else f"[{host}]" if ":" in host else host
        return cls(f"dns://{bound}:{port}", "2" if ":" in host else "1")


_DNS = ("server", "zone", "view")
_CACHE = ("server", "zones", "view")
FAMILIES = (
    Family("coredns_dns_requests", "Counter of DNS requests made per zone, protocol and family.",
           labels=(*_DNS, "proto", "family", "type")),
    Family("coredns_dns_responses", "Counter of response status codes.", labels=(*_DNS, "rcode", "plugin")),
    Family("coredns_cache_entries", "The number of elements in the cache.", "gauge",
           labels=("server", "type", "zones", "view"), combine=sum),
    Family("coredns_cache_requests", "The count of cache requests.", labels=_CACHE),
    Family("coredns_cache_hits", "The count of cache hits.", labels=("server", "type", "zones", "view")),
    Family("coredns_cache_misses", "The count of cache misses.", labels=_CACHE),
    Family("coredns_cache_prefetch", "The number of times the cache has prefetched a cached item.", labels=_CACHE),
    Family("coredns_proxy_healthcheck_failures", "Counter of the number of failed healthchecks.",
           labels=("proxy_name", "to")),
    Family("podnet_dns_forward_requests", "Queries sent to each upstream.", labels=("to",)),
    Family("podnet_dns_forward_failures", "Queries each upstream left unanswered or refused.", labels=("to",)),
    Family("podnet_dns_zone_records", "Names in the cluster zone.", "gauge", combine=max),
    Family("podnet_dns_forwarding_loop", "1 when a forwarding loop was detected.", "gauge", combine=max),
)


def tally(resolver: Resolver, server: Server) -> Tally:
    cache, forwarder = resolver.cache, resolver.forwarder
    requests, responses = _answers(resolver)
    hits, misses = list(cache.hits), cache.misses
    for counts in resolver.counters:
        hits = [mine + theirs for mine, theirs in zip(hits, counts.cache_hits)]
        misses += counts.cache_misses
    block = f"{server.label}|.|"  # server, zone (or the cache's zones) and view
    values: Tally = {("coredns_dns_requests", f"{block}|{_proto(transport)}|{_family(transport)}|{TYPES[qtype]}"): n
                     for (transport, qtype), n in requests.items()}
    values.update({("coredns_dns_responses", f"{block}|{dns.rcode.to_text(rcode)}|{plugin}"): n
                   for (rcode, plugin), n in responses.items()})
    for kind, entries, hit in zip(CACHE_TYPES, cache.entries(), hits):
        values["coredns_cache_entries", f"{server.label}|{kind}|.|"] = entries
        values["coredns_cache_hits", f"{server.label}|{kind}|.|"] = hit
    values.update({("coredns_cache_requests", block): sum(hits) + misses, ("coredns_cache_misses", block): misses,
                   ("coredns_cache_prefetch", block): cache.prefetches,
                   ("podnet_dns_zone_records", ""): len(resolver.source.zone),
                   ("podnet_dns_forwarding_loop", ""): int(resolver.looping)})
    if forwarder is not None:
        for upstream in forwarder.upstreams:
            to = address(upstream)
            values["coredns_proxy_healthcheck_failures", f"forward|{to}"] = forwarder.failed_checks[upstream]
            values["podnet_dns_forward_requests", to] = forwarder.sent[upstream]
            values["podnet_dns_forward_failures", to] = forwarder.failed[upstream]
    return values


def _proto(transport: int) -> str:
    return TRANSPORTS[transport % len(TRANSPORTS)]


def _family(transport: int) -> str:
    return "2" if transport >= len(TRANSPORTS) else "1"


def _answers(resolver: Resolver) -> tuple[Counter[tuple[int, int]], Counter[tuple[int, str]]]:
    """Every thread's answers as requests by (transport, type) and responses by
    (rcode, plugin that wrote them)."""
    requests: Counter[tuple[int, int]] = Counter()
    responses: Counter[tuple[int, str]] = Counter()
    for counts in resolver.counters:
        for at, n in enumerate(counts.answers):
            if not n:
                continue
            rest, rcode = divmod(at, _RCODES)
            rest, qtype = divmod(rest, len(TYPES))
            transport, source = divmod(rest, _SOURCES)
            requests[transport, qtype] += n
            if rcode == NO_REPLY:
                continue
            if source in (ZONE, HOSTS) and rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
                source = SERVER  # the zone's REFUSED, NOTIMP and FORMERR: CoreDNS's server writes those
            responses[rcode, PLUGINS[source]] += n
    return requests, responses


def address(upstream: Upstream) -> str:
    """An upstream as CoreDNS's `to` label spells it: 10.0.0.1:53, [fd00::1]:53."""
    host, port = upstream
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def combined(tallies: list[Tally]) -> Tally:
    """Several workers' tallies as one."""
    return combine_tallies(tallies, FAMILIES)


def exposition(values: Tally) -> bytes:
    return render(FAMILIES, values)
