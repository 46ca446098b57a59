"""The forwarder's cache: TTLs, negative answers, bounds."""

from __future__ import annotations

import dns.message
import dns.rcode
import dns.rrset

from podnet.dns.cache import Cache, Prefetch


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def reply(name: str, rcode: int = dns.rcode.NOERROR, ttl: int = 60, soa_minimum: int = 30) -> dns.message.Message:
    query = dns.message.make_query(name, "A")
    answer = dns.message.make_response(query)
    answer.set_rcode(rcode)
    if rcode == dns.rcode.NOERROR and ttl:
        answer.answer.append(dns.rrset.from_text(name, ttl, "IN", "A", "203.0.113.10"))
    else:
        answer.authority.append(dns.rrset.from_text("example.org.", 300, "IN", "SOA",
                                                    f"ns.example.org. host.example.org. 1 7200 1800 86400 {soa_minimum}"))
    return answer


def test_positive_answers_age_and_expire() -> None:
    clock = Clock()
    cache = Cache(clock=clock)
    cache.put(reply("www.example.org.").to_wire())
    query = dns.message.make_query("WWW.example.org.", "A")
    clock.now += 20
    hit, _ = cache.get(query)
    assert hit is not None and hit.id == query.id and hit.answer[0].ttl == 40
    assert hit.question[0].name.to_text() == "WWW.example.org."  # the asker's spelling
    clock.now += 41
    assert cache.get(query)[0] is None


def test_negative_answers_are_kept_for_the_soa_minimum() -> None:
    clock = Clock()
    cache = Cache(clock=clock)
    cache.put(reply("nope.example.org.", dns.rcode.NXDOMAIN, soa_minimum=30).to_wire())
    query = dns.message.make_query("nope.example.org.", "A")
    assert cache.get(query)[0].rcode() == dns.rcode.NXDOMAIN  # type: ignore[union-attr]
    clock.now += 31
    assert cache.get(query)[0] is None


def test_failures_are_not_cached_and_capacity_is_bounded() -> None:
    cache = Cache(capacity=2)
    cache.put(reply("broken.example.org.", dns.rcode.SERVFAIL).to_wire())
    assert len(cache) == 0
    for name in ("a.example.org.", "b.example.org.", "c.example.org."):
        cache.put(reply(name).to_wire())
    assert len(cache) == 2 and cache.get(dns.message.make_query("a.example.org.", "A"))[0] is None


def test_prefetch_is_due_once_for_a_popular_answer_near_its_end() -> None:
    clock = Clock()
    cache = Cache(clock=clock, prefetch=Prefetch(amount=2, window=120, percent=10))
    cache.put(reply("www.example.org.", ttl=100).to_wire())
    query = dns.message.make_query("www.example.org.", "A")
    assert cache.get(query)[1] is False  # asked once, plenty of TTL left
    clock.now += 95
    assert cache.get(query)[1] is True  # asked twice, 5 % of the TTL left
    assert cache.get(query)[1] is False  # already being refreshed
    cache.put(reply("www.example.org.", ttl=100).to_wire())
    assert cache.get(query)[0].answer[0].ttl == 100  # type: ignore[union-attr]


def test_no_prefetch_for_a_rare_answer() -> None:
    clock = Clock()
    cache = Cache(clock=clock, prefetch=Prefetch(amount=3, window=60, percent=10))
    cache.put(reply("www.example.org.", ttl=100).to_wire())
    clock.now += 95
    assert cache.get(dns.message.make_query("www.example.org.", "A"))[1] is False


def test_a_rendered_answer_counts_its_ttls_down() -> None:
    from podnet.dns.aging import AgingReply
    from podnet.dns.replywire import ttl_offsets

    answer = reply("www.example.org.", ttl=300)
    answer.use_edns(0, 0, 1232)  # the OPT record's TTL field is flags: never aged
    answer.authority.append(dns.rrset.from_text("example.org.", 600, "IN", "NS", "ns.example.org."))
    wire = answer.to_wire()
    found = ttl_offsets(wire)
    assert found is not None and found[1] == (300, 600)
    aging = AgingReply(wire[2:], found[0], found[1], expires=1000.0, refresh_at=1000.0, denial=False)
    later = dns.message.from_wire(wire[:2] + aging.render(800.0))
    assert [rrset.ttl for rrset in later.answer + later.authority] == [200, 200]
    assert later.edns == 0 and later.payload == 1232 and later.id == answer.id
    assert ttl_offsets(b"\x00" * 11) is None and ttl_offsets(wire[:-3]) is None


def test_a_cached_answer_follows_the_edns_of_the_client_asking() -> None:
    """The first asker used EDNS; a later one that did not must get no OPT record
    (RFC 6891), and one that did gets ours."""
    import asyncio

    from podnet.dns.forward import Forwarder
    from podnet.dns.resolver import Resolver
    from tests.unit.test_dns_fuzz import _NoStore

    resolver = Resolver(_NoStore(), Forwarder([("127.0.0.1", 9)]))
    first = dns.message.make_query("www.example.org.", "A", use_edns=0, payload=4096)
    cached = dns.message.make_response(first, our_payload=4096)
    cached.answer.append(dns.rrset.from_text("www.example.org.", 60, "IN", "A", "203.0.113.10"))
    resolver.cache.put(cached.to_wire())
    for query, edns in ((dns.message.make_query("www.example.org.", "A"), -1),
                        (dns.message.make_query("www.example.org.", "A", use_edns=0, payload=512), 0)):
        reply = dns.message.from_wire(asyncio.run(resolver.answer(query.to_wire(), udp=True)).wire)  # type: ignore[arg-type]
        assert reply.id == query.id and reply.edns == edns and reply.answer[0][0].address == "203.0.113.10"


def test_how_long_a_reply_is_kept_is_read_from_its_bytes() -> None:
    from podnet.dns.replywire import cache_ttl

    assert cache_ttl(reply("www.example.org.", ttl=60).to_wire()) == 60
    nodata = reply("www.example.org.", ttl=0, soa_minimum=30)  # NOERROR, no answers, the SOA
    assert cache_ttl(nodata.to_wire()) == 30
    nodata.authority[0].ttl = 10
    assert cache_ttl(nodata.to_wire()) == 10  # the SOA's own TTL when it is the smaller
    assert cache_ttl(reply("x.example.org.", dns.rcode.REFUSED).to_wire()) is None
    assert cache_ttl(dns.message.make_query("www.example.org.", "A").to_wire()) is None  # a query, not a reply
    whole = reply("www.example.org.").to_wire()
    assert cache_ttl(whole[:-3]) is None and cache_ttl(whole[:11]) is None
