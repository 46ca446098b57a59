"""A rendered reply whose TTLs count down: the bytes of an answer from the cache,
kept with the positions of their TTL fields, so a repeat of the same question is
answered by patching a few integers instead of copying, aging and rendering a
message (which costs dnspython a few hundred microseconds)."""

from __future__ import annotations

import struct


class AgingReply:
    """Rendered at most once per second of remaining life: TTLs are whole seconds."""

    __slots__ = ("wire", "offsets", "ttls", "expires", "refresh_at", "denial", "_left", "_rendered")

    def __init__(self, wire: bytes, offsets: tuple[int, ...], ttls: tuple[int, ...], expires: float,
                 refresh_at: float, denial: bool) -> None:
        self.wire = wire  # without the first two bytes (the ID), which each query brings
        self.offsets = offsets  # where each TTL sits in `wire`
        self.ttls = ttls  # the TTLs as rendered
        self.expires = expires  # monotonic time at which the cache lets the answer go
        self.refresh_at = refresh_at  # from then on the slow path answers, so prefetching sees the question
        self.denial = denial  # a negative answer (replywire.is_denial): which kind of cache hit it counts as
        self._left, self._rendered = -1, b""

    def render(self, now: float) -> bytes:
        left = int(self.expires - now)
        if left != self._left:
            patched = bytearray(self.wire)
            for offset, ttl in zip(self.offsets, self.ttls):
                struct.pack_into("!I", patched, offset, min(ttl, left))
            self._left, self._rendered = left, bytes(patched)
        return self._rendered
