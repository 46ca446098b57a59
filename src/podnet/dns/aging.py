"""A rendered reply whose TTLs count down: the bytes of an answer from the cache,
kept with the positions of their TTL fields, so a repeat of the same question is
answered by patching a few integers instead of copying, aging and rendering a
message (which costs dnspython a few hundred microseconds)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

import dns.exception
import dns.wire

_OPT = 41  # the EDNS pseudo-record: its "TTL" holds flags, not a lifetime


@dataclass(frozen=True)
class AgingReply:
    wire: bytes  # without the first two bytes (the ID), which each query brings
    offsets: tuple[int, ...]  # where each TTL sits in `wire`
    ttls: tuple[int, ...]  # the TTLs as rendered
    expires: float  # monotonic time at which the cache lets the answer go
    refresh_at: float  # from then on the slow path answers, so prefetching sees the question

    def render(self, now: float) -> bytes:
        left = int(self.expires - now)
        patched = bytearray(self.wire)
        for offset, ttl in zip(self.offsets, self.ttls):
            struct.pack_into("!I", patched, offset, min(ttl, left))
        return bytes(patched)


def ttl_offsets(reply: bytes) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """Positions (counted from the byte after the ID) and values of every record's
    TTL; None for bytes that are not a well-formed reply."""
    try:
        parser = dns.wire.Parser(reply, 12)
        questions, answers, authorities, additionals = struct.unpack_from("!4H", reply, 4)
        for _ in range(questions):
            parser.get_name(decompress=True)
            parser.get_struct("!HH")
        offsets, ttls = [], []
        for _ in range(answers + authorities + additionals):
            parser.get_name(decompress=True)
            rdtype, _, ttl, length = parser.get_struct("!HHIH")
            if rdtype != _OPT:
                offsets.append(parser.current - 6 - 2)
                ttls.append(ttl)
            parser.seek(parser.current + length)
    except (dns.exception.FormError, struct.error, ValueError):
        return None
    return tuple(offsets), tuple(ttls)
