"""The answer cache in front of the upstreams: positive and negative answers, kept
for their TTL (negative ones for the SOA's MINIMUM, RFC 2308), bounded in size
(least recently used goes first), and aged on the way out so clients see the
TTL that is left.

Replies are kept as the bytes the upstream sent: most are never asked for again
before they go, so they are parsed when they are, not when they arrive."""

from __future__ import annotations

import struct
import time
from collections import OrderedDict
from dataclasses import dataclass

import dns.message

from podnet.dns.replywire import cache_ttl, is_denial, parsed, question_section

Key = bytes  # the question section (name, type, class), names in lower case


def key_of(query: dns.message.Message) -> Key:
    question = query.question[0]
    return question.name.to_wire().lower() + struct.pack("!HH", question.rdtype, question.rdclass)


@dataclass(frozen=True)
class Prefetch:
    """Refresh an answer before it expires once it was asked `amount` times within
    `window` seconds and less than `percent` of its TTL is left (CoreDNS's cache)."""

    amount: int = 1
    window: float = 60.0
    percent: int = 10


class _Entry:
    __slots__ = ("expires", "ttl", "reply", "window_start", "asked")

    def __init__(self, expires: float, ttl: int, reply: bytes, now: float) -> None:
        self.expires, self.ttl, self.reply = expires, ttl, reply
        self.window_start, self.asked = now, 0


class Cache:
    """With a prefetch policy, an answer asked often enough is refreshed before it
    expires (CoreDNS's `prefetch`): get() says so, and the caller asks upstream."""

    def __init__(self, capacity: int = 10000, max_ttl: int = 3600, clock=time.monotonic,  # type: ignore[no-untyped-def]
                 prefetch: Prefetch | None = None) -> None:
        self.capacity = capacity
        self.max_ttl = max_ttl
        self.clock = clock
        self.prefetch = prefetch
        self._entries: OrderedDict[Key, _Entry] = OrderedDict()
        self.hits = [0, 0]  # answers given: success, denial (CoreDNS's kinds of cache entry)
        self.misses = self.prefetches = 0

    def __len__(self) -> int:
        return len(self._entries)

    def entries(self) -> tuple[int, int]:
        """How many answers are kept: success, denial. Read from a copy, which
        list() takes whole while another thread may be adding."""
        kept = list(self._entries.values())
        denials = sum(is_denial(entry.reply) for entry in kept)
        return len(kept) - denials, denials

    def put(self, reply: bytes) -> None:
        ttl = cache_ttl(reply)
        if ttl:
            self.keep(question_section(reply).lower(), reply, ttl)

    def keep(self, key: Key, reply: bytes, ttl: int) -> tuple[float, float] | None:
        """Keeps a reply whose question (key) and cache TTL the caller has read;
        returns its lifetime (as lifetime() does), None when it is not kept."""
        if not ttl:
            return None
        ttl = min(ttl, self.max_ttl)
        now = self.clock()
        entries, expires = self._entries, now + ttl
        known = key in entries
        entries[key] = _Entry(expires, ttl, reply, now)
        if known:  # a new key is last already
            entries.move_to_end(key)
        while len(entries) > self.capacity:
            entries.popitem(last=False)
        return expires, expires if self.prefetch is None else expires - ttl * self.prefetch.percent / 100

    def get(self, query: dns.message.Message) -> tuple[dns.message.Message | None, bool]:
        """A copy of the cached reply for this question, its TTLs lowered by the
        time spent in the cache, with the query's id (None when absent or expired);
        and whether it is time to prefetch it."""
        key = key_of(query)
        entry = self._entries.get(key)
        now = self.clock()
        fresh = parsed(entry.reply) if entry is not None and entry.expires > now else None
        if fresh is None:  # absent, expired, or rdata that does not parse: never an answer
            self._entries.pop(key, None)
            self.misses += 1
            return None, False
        self._entries.move_to_end(key)
        self.hits[is_denial(entry.reply)] += 1
        fresh.id = query.id
        fresh.question = list(query.question)  # as this client spelled it (0x20 clients check the case)
        left = max(0, int(entry.expires - now))
        for section in (fresh.answer, fresh.authority, fresh.additional):
            for rrset in section:
                rrset.ttl = min(rrset.ttl, left)
        return fresh, self._due(entry, now)

    def holds(self, key: Key) -> bool:
        """Whether an unexpired answer to the question (its section, in lower case) is here."""
        entry = self._entries.get(key)
        return entry is not None and entry.expires > self.clock()

    def lifetime(self, key: Key) -> tuple[float, float] | None:
        """When the answer to this question (its section, in lower case) expires, and
        when prefetching would start for it (the expiry itself without a prefetch policy)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if self.prefetch is None:
            return entry.expires, entry.expires
        return entry.expires, entry.expires - entry.ttl * self.prefetch.percent / 100

    def _due(self, entry: _Entry, now: float) -> bool:
        policy = self.prefetch
        if policy is None:
            return False
        if now - entry.window_start > policy.window:
            entry.window_start, entry.asked = now, 0
        entry.asked += 1
        if entry.asked < policy.amount or (entry.expires - now) * 100 > entry.ttl * policy.percent:
            return False
        entry.asked = -(1 << 30)  # once per entry: the refreshed answer replaces it
        self.prefetches += 1
        return True
