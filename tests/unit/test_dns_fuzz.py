"""Fuzzing the server's answering path (hypothesis): whatever bytes arrive, the
answer is FORMERR, another well-formed reply, or nothing, never an exception,
and it comes at once."""

from __future__ import annotations

import asyncio
import time

import dns.exception
import dns.message
import dns.rcode
import dns.rrset
from hypothesis import given, settings
from hypothesis import strategies as st

from podnet.dns.config import DnsConfig
from podnet.dns.query import respond
from podnet.dns.resolver import Resolver
from podnet.dns.zonesource import ZoneFromStore
from tests.unit.test_dns_zone import ZONE

VALID = dns.message.make_query("web.apps.svc.cluster.local.", "A", use_edns=True).to_wire()


def check(reply: bytes | None, wire: bytes) -> None:
    if reply is None:
        assert len(wire) < 12 or wire[2] & 0x80  # silence only for no header, or for a response
        return
    parsed = dns.message.from_wire(reply)
    assert parsed.id == int.from_bytes(wire[:2], "big")
    assert parsed.flags & dns.flags.QR


def mutations() -> st.SearchStrategy[bytes]:
    """Valid queries with bytes flipped, cut short or padded: nearer the parser's edges than noise."""
    flip = st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)).map(
        lambda change: VALID[:change[0]] + bytes([change[1]]) + VALID[change[0] + 1:])
    cut = st.integers(0, len(VALID)).map(lambda n: VALID[:n])
    padded = st.binary(max_size=2000).map(lambda tail: VALID + tail)
    return st.one_of(flip, cut, padded, st.binary(max_size=700))


@settings(max_examples=400, deadline=None)
@given(mutations())
def test_zone_answers_never_crash(wire: bytes) -> None:
    started = time.monotonic()
    for size in (512, None):
        check(respond(ZONE, wire, size), wire)
    assert time.monotonic() - started < 5  # never pathological (speed itself is bench/dns_qps.py's)


class _NoStore(ZoneFromStore):
    def __init__(self) -> None:
        self.store, self.config, self.hosts, self.revision, self.zone = None, DnsConfig(), [], 0, ZONE


@settings(max_examples=300, deadline=None)
@given(mutations())
def test_the_resolver_never_crashes(wire: bytes) -> None:
    reply = asyncio.run(Resolver(_NoStore(), None).answer(wire, udp=True)).wire
    check(reply, wire)
    if reply is not None and len(wire) >= 12:
        rcode = dns.message.from_wire(reply).rcode()
        assert rcode in (dns.rcode.FORMERR, dns.rcode.NOERROR, dns.rcode.NXDOMAIN, dns.rcode.REFUSED,
                         dns.rcode.NOTIMP, dns.rcode.BADVERS)


def _upstream_reply() -> bytes:
    query = dns.message.make_query("www.example.org.", "A", use_edns=True)
    reply = dns.message.make_response(query)
    reply.answer.append(dns.rrset.from_text("www.example.org.", 60, "IN", "CNAME", "web.example.org."))
    reply.answer.append(dns.rrset.from_text("web.example.org.", 30, "IN", "A", "203.0.113.10"))
    reply.authority.append(dns.rrset.from_text("example.org.", 300, "IN", "SOA", "ns.example.org. h.example.org. 1 2 3 4 5"))
    return reply.to_wire()


UPSTREAM_REPLY = _upstream_reply()


@settings(max_examples=400, deadline=None)
@given(st.one_of(
    st.tuples(st.integers(0, len(UPSTREAM_REPLY) - 1), st.integers(0, 255)).map(
        lambda change: UPSTREAM_REPLY[:change[0]] + bytes([change[1]]) + UPSTREAM_REPLY[change[0] + 1:]),
    st.integers(0, len(UPSTREAM_REPLY)).map(lambda n: UPSTREAM_REPLY[:n]),
    st.binary(max_size=700)))
def test_whatever_an_upstream_sends_is_kept_or_dropped_never_a_crash(wire: bytes) -> None:
    """Forwarded replies are read without parsing on the way in; a bad one must be
    refused there, or be a miss when it is asked for, not an exception."""
    from podnet.dns.cache import Cache
    from podnet.dns.replywire import question_section, ttl_offsets

    found = ttl_offsets(wire)
    assert found is None or all(0 <= offset <= len(wire) - 6 for offset in found[0])
    cache = Cache()
    cache.put(wire)
    if len(cache):
        try:
            query = dns.message.from_wire(wire[:2] + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + question_section(wire))
        except dns.exception.DNSException:
            return  # no question a client could ask
        hit, _ = cache.get(query)
        assert hit is None or hit.question[0].name == query.question[0].name
