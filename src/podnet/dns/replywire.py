"""Reading a reply's bytes without parsing it into a message: where its question
and its TTLs are, and how long a cache may keep it. dnspython takes a hundred
microseconds or more to parse a reply; a forwarded one is usually only passed on
and kept, and these walks cost a fifth of that."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import NamedTuple

import dns.exception
import dns.message
import dns.rcode

_OPT, _SOA = 41, 6  # OPT: the EDNS pseudo-record, whose "TTL" holds flags, not a lifetime
ANSWER, AUTHORITY, ADDITIONAL = 1, 2, 3


class Record(NamedTuple):
    section: int
    rdtype: int
    ttl_at: int  # offset of the TTL field, counted from the byte after the ID
    ttl: int
    rdata_end: int  # offset of the byte after the record, from the start of the reply


def question_section(wire: bytes) -> bytes:
    """The bytes of the first question (name, type, class). Its name is never
    compressed, as nothing precedes it."""
    end = 12
    while end < len(wire) and wire[end]:
        end += wire[end] + 1
    return wire[12:end + 5]


def is_denial(reply: bytes) -> bool:
    """NXDOMAIN, or NOERROR without answers (NODATA): a negative answer, what
    CoreDNS's cache counts as `denial` (and the rest as `success`)."""
    return reply[3] & 0x0F == dns.rcode.NXDOMAIN or reply[6:8] == b"\0\0"


class Malformed(ValueError):
    """Bytes that are not a DNS message."""


def _skip_name(wire: bytes, at: int) -> int:
    """Where the name at `at` ends: labels are stepped over, not read, and a
    compression pointer ends the name (where it points is never followed)."""
    while True:
        if at >= len(wire):
            raise Malformed("a name runs past the end")
        length = wire[at]
        if length == 0:
            return at + 1
        if length & 0xC0 == 0xC0:
            return at + 2
        if length & 0xC0:
            raise Malformed("an unknown label type")
        at += length + 1


_RECORD = struct.Struct("!HHIH")


def records(reply: bytes) -> Iterator[Record]:
    """Every resource record, in order; raises Malformed for bytes that are not a
    well-formed message."""
    if len(reply) < 12:
        raise Malformed("shorter than a header")
    counts = struct.unpack_from("!4H", reply, 4)
    at = 12
    for _ in range(counts[0]):
        at = _skip_name(reply, at) + 4
    for section, count in ((ANSWER, counts[1]), (AUTHORITY, counts[2]), (ADDITIONAL, counts[3])):
        for _ in range(count):
            at = _skip_name(reply, at)
            if at + _RECORD.size > len(reply):
                raise Malformed("a record runs past the end")
            rdtype, _, ttl, length = _RECORD.unpack_from(reply, at)
            end = at + _RECORD.size + length
            if end > len(reply):
                raise Malformed("a record's data runs past the end")
            yield Record(section, rdtype, at + 4 - 2, ttl, end)
            at = end
    if at > len(reply):
        raise Malformed("the questions run past the end")


def ttl_offsets(reply: bytes) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """Positions (counted from the byte after the ID) and values of every record's
    TTL; None for bytes that are not a well-formed reply."""
    try:
        found = [r for r in records(reply) if r.rdtype != _OPT]
    except Malformed:
        return None
    return tuple(r.ttl_at for r in found), tuple(r.ttl for r in found)


def cache_ttl(reply: bytes) -> int | None:
    """How long a reply may be kept: its answers' smallest TTL, or for a negative
    answer the SOA's TTL or MINIMUM, whichever is smaller (RFC 2308). None for
    replies that must not be kept (errors, no question, no SOA to bound a
    negative answer, malformed bytes)."""
    found = keepable(reply)
    return found[0] if found is not None else None


def keepable(reply: bytes, question_end: int = 0) -> tuple[int, tuple[int, ...], tuple[int, ...]] | None:
    """cache_ttl and ttl_offsets from one walk over the records: what keeping a
    forwarded reply needs, and the forwarding path's largest cost after its
    system calls (so it walks them itself, without a Record for each). None for
    a reply that must not be kept. A caller that has read the question passes
    where it ends, and its name is not walked again."""
    if len(reply) < 12 or not reply[2] & 0x80 or reply[3] & 0x0F not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        return None
    questions, *counts = struct.unpack_from("!4H", reply, 4)
    if questions != 1:
        return None
    size, unpack = len(reply), _RECORD.unpack_from
    answer_ttl, soa_bound = None, None
    offsets, ttls = [], []
    try:
        at = question_end or _skip_name(reply, 12) + 4
        for section, count in zip((ANSWER, AUTHORITY, ADDITIONAL), counts):
            for _ in range(count):
                at = _skip_name(reply, at)
                if at + 10 > size:
                    return None
                rdtype, _, ttl, length = unpack(reply, at)
                end = at + 10 + length
                if end > size:
                    return None
                if rdtype != _OPT:
                    offsets.append(at + 2)
                    ttls.append(ttl)
                if section == ANSWER:
                    answer_ttl = ttl if answer_ttl is None else min(answer_ttl, ttl)
                elif section == AUTHORITY and rdtype == _SOA and soa_bound is None:
                    soa_bound = min(ttl, struct.unpack_from("!I", reply, end - 4)[0])
                at = end
    except Malformed:
        return None
    ttl = answer_ttl if answer_ttl is not None else soa_bound
    return (ttl, tuple(offsets), tuple(ttls)) if ttl is not None else None


def parsed(wire: bytes | None) -> dns.message.Message | None:
    """The message, when one is wanted at last; None for bytes dnspython refuses
    (well-formed records can still hold rdata that is not)."""
    try:
        return dns.message.from_wire(wire) if wire is not None else None
    except dns.exception.DNSException:
        return None
