"""Fuzzing the server's answering path (hypothesis): whatever bytes arrive, the
answer is FORMERR, another well-formed reply, or nothing, never an exception,
and it comes at once."""

from __future__ import annotations

import asyncio
import time

import dns.message
import dns.rcode
from hypothesis import given, settings
from hypothesis import strategies as st

from podnet.dns.config import DnsConfig
from podnet.dns.server import Resolver, ZoneFromStore, respond
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
    assert time.monotonic() - started < 0.5


class _NoStore(ZoneFromStore):
    def __init__(self) -> None:
        self.store, self.config, self.hosts, self.revision, self.zone = None, DnsConfig(), [], 0, ZONE


@settings(max_examples=300, deadline=None)
@given(mutations())
def test_the_resolver_never_crashes(wire: bytes) -> None:
    reply = asyncio.run(Resolver(_NoStore(), None).answer(wire, udp=True))
    check(reply, wire)
    if reply is not None and len(wire) >= 12:
        rcode = dns.message.from_wire(reply).rcode()
        assert rcode in (dns.rcode.FORMERR, dns.rcode.NOERROR, dns.rcode.NXDOMAIN, dns.rcode.REFUSED,
                         dns.rcode.NOTIMP, dns.rcode.BADVERS)
