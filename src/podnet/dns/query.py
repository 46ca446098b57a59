"""One DNS query against the cluster zone, without sockets: parse it, answer it
from the zone, decide whether an ExternalName must be followed upstream, and fit
the reply to the transport. Both transports (udp.py, tcp.py) answer through here.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from podnet.dns.zone import Zone

UDP_DEFAULT_PAYLOAD = 512
OUR_PAYLOAD = 1232  # the EDNS buffer size we announce: DNS Flag Day 2020's, which no link fragments


def parse_query(wire: bytes) -> dns.message.Message | bytes | None:
    """The query; for bytes that are not one, the reply to send back (FORMERR, or
    BADVERS for an EDNS version after 0, RFC 6891), or None when nothing must be
    sent: less than a header, or a response (QR set), which a server never
    answers, so two servers cannot bounce errors forever."""
    if len(wire) < 12 or wire[2] & 0x80:
        return None
    try:
        query = dns.message.from_wire(wire)
    except dns.exception.DNSException:
        header = bytearray(wire[:12])
        header[2] = (header[2] | 0x80) & ~0x04  # QR set; opcode kept
        header[3] = dns.rcode.FORMERR
        return bytes(header[:4]) + b"\0" * 8
    if query.edns > 0:
        reply = dns.message.make_response(query, our_payload=OUR_PAYLOAD)
        reply.set_rcode(dns.rcode.BADVERS)
        return reply.to_wire()
    return query


def zone_reply(zone: Zone, query: dns.message.Message) -> dns.message.Message:
    """The zone's whole reply, before it is fitted to the transport."""
    reply = dns.message.make_response(query, our_payload=OUR_PAYLOAD)
    if query.opcode() != dns.opcode.QUERY or len(query.question) != 1:
        reply.set_rcode(dns.rcode.NOTIMP if query.opcode() != dns.opcode.QUERY else dns.rcode.FORMERR)
        return reply
    question = query.question[0]
    if question.rdtype in (dns.rdatatype.AXFR, dns.rdatatype.IXFR) or question.rdclass != dns.rdataclass.IN \
            or not zone.authoritative_for(question.name):
        reply.set_rcode(dns.rcode.REFUSED)  # no transfers, and only the Internet class
        return reply
    answer = zone.query(question.name, question.rdtype)
    reply.flags |= dns.flags.AA
    reply.set_rcode(answer.rcode)
    reply.answer, reply.authority, reply.additional = answer.answer, answer.authority, answer.additional
    return reply


def outside_target(zone: Zone, query: dns.message.Message, reply: dns.message.Message) -> dns.name.Name | None:
    """An ExternalName's target when the question was for addresses (or anything
    but the CNAME itself) and the target lies outside the zone: it must be resolved."""
    if len(reply.answer) != 1 or reply.answer[0].rdtype != dns.rdatatype.CNAME:
        return None
    if query.question[0].rdtype == dns.rdatatype.CNAME:
        return None
    target: dns.name.Name = reply.answer[0][0].target
    return None if zone.authoritative_for(target) else target


@dataclass(frozen=True)
class ZoneAnswer:
    """The zone's reply to a query, and the ExternalName target (outside the zone)
    whose records must be fetched before it is sent, if any."""

    query: dns.message.Message
    reply: dns.message.Message
    target: dns.name.Name | None


def zone_answer(zone: Zone, query: dns.message.Message) -> ZoneAnswer:
    reply = zone_reply(zone, query)
    return ZoneAnswer(query, reply, outside_target(zone, query, reply))


def respond(zone: Zone, wire: bytes, max_size: int | None) -> bytes | None:
    """The zone's reply to one query's wire bytes (max_size is None over TCP),
    ExternalName targets left unresolved."""
    query = parse_query(wire)
    if not isinstance(query, dns.message.Message):
        return query
    return fit(zone_reply(zone, query), query, max_size is not None)


def limit(query: dns.message.Message, udp: bool) -> int:
    """The largest reply the client takes: its EDNS payload size over UDP (512 without EDNS)."""
    return (max(query.payload, UDP_DEFAULT_PAYLOAD) if query.edns >= 0 else UDP_DEFAULT_PAYLOAD) if udp else 65535


def fit(reply: dns.message.Message, query: dns.message.Message, udp: bool) -> bytes:
    """The reply's bytes; over UDP, within the client's payload size, else
    truncated (TC) so the client asks again over TCP."""
    try:
        return reply.to_wire(max_size=limit(query, udp))
    except dns.exception.TooBig:
        reply = copy.copy(reply)
        reply.answer, reply.authority, reply.additional = [], [], []
        reply.flags |= dns.flags.TC
        return reply.to_wire()


def failure(query: dns.message.Message) -> bytes:
    reply = dns.message.make_response(query, our_payload=OUR_PAYLOAD)
    reply.set_rcode(dns.rcode.SERVFAIL)
    return reply.to_wire()
