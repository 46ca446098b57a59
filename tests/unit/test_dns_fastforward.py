"""The fast path's reading of raw questions: what it takes, and what it leaves to the slow path."""

from __future__ import annotations

import dns.message
import dns.opcode
import dns.name

from podnet.dns.fastforward import ZoneNames, plain_question
from podnet.dns.zone import Zone


def wire(name: str, rdtype: str = "A", **kw: object) -> bytes:
    return dns.message.make_query(name, rdtype, **kw).to_wire()  # type: ignore[arg-type]


def test_one_plain_question_is_read_as_lower_case_labels() -> None:
    question = plain_question(wire("WWW.Example.ORG"))
    assert question is not None and question.labels == (b"www", b"example", b"org")
    assert question.key == b"\3www\7example\3org\0\0\1\0\1"
    assert plain_question(wire("example.org", "AAAA", use_edns=0)).labels == (b"example", b"org")  # type: ignore[union-attr]


def test_what_is_not_one_plain_question_is_left_alone() -> None:
    update = dns.message.make_query("example.org", "A")
    update.set_opcode(dns.opcode.UPDATE)
    assert plain_question(update.to_wire()) is None
    assert plain_question(wire("example.org", "AXFR")) is None
    assert plain_question(wire("example.org")[:14]) is None  # cut short
    two = dns.message.make_query("a.example.org", "A")
    two.question.append(dns.message.make_query("b.example.org", "A").question[0])
    assert plain_question(two.to_wire()) is None


def test_the_zone_keeps_its_domain_reverse_names_and_hosts_entries() -> None:
    zone = Zone("cluster.local")
    zone.extra_names.add(dns.name.from_text("db.example.org"))
    names = ZoneNames(zone)
    for held in ("web.apps.svc.cluster.local", "cluster.local", "5.2.244.10.in-addr.arpa", "DB.example.org"):
        assert names.holds(plain_question(wire(held)).labels), held  # type: ignore[union-attr]
    for forwarded in ("example.org", "cluster.local.example.org", "local"):
        assert not names.holds(plain_question(wire(forwarded)).labels), forwarded  # type: ignore[union-attr]
    assert not ZoneNames(Zone(None)).holds((b"cluster", b"local"))
