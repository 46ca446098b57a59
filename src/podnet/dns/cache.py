"""The answer cache in front of the upstreams: positive and negative answers, kept
for their TTL (negative ones for the SOA's MINIMUM, RFC 2308), bounded in size
(least recently used goes first), and aged on the way out so clients see the
TTL that is left."""

from __future__ import annotations

import copy
import time
from collections import OrderedDict

import dns.message
import dns.rcode
import dns.rdatatype

Key = tuple[str, int, int]


def key_of(message: dns.message.Message) -> Key:
    question = message.question[0]
    return question.name.to_text().lower(), question.rdtype, question.rdclass


def _ttl(message: dns.message.Message) -> int | None:
    """How long a reply may be kept; None for replies that must not be (errors)."""
    if message.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        return None
    if message.answer:
        return min(rrset.ttl for rrset in message.answer)
    soa = next((rrset for rrset in message.authority if rrset.rdtype == dns.rdatatype.SOA), None)
    return min(soa.ttl, soa[0].minimum) if soa else None


class Cache:
    def __init__(self, capacity: int = 10000, max_ttl: int = 3600, clock=time.monotonic) -> None:  # type: ignore[no-untyped-def]
        self.capacity = capacity
        self.max_ttl = max_ttl
        self.clock = clock
        self._entries: OrderedDict[Key, tuple[float, int, dns.message.Message]] = OrderedDict()
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, reply: dns.message.Message) -> None:
        ttl = _ttl(reply)
        if not ttl or not reply.question:
            return
        ttl = min(ttl, self.max_ttl)
        key = key_of(reply)
        self._entries[key] = (self.clock() + ttl, ttl, reply)
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def get(self, query: dns.message.Message) -> dns.message.Message | None:
        """A copy of the cached reply for this question, its TTLs lowered by the
        time spent in the cache, with the query's id; None when absent or expired."""
        key = key_of(query)
        entry = self._entries.get(key)
        now = self.clock()
        if entry is None or entry[0] <= now:
            self._entries.pop(key, None)
            self.misses += 1
            return None
        expires, ttl, reply = entry
        self._entries.move_to_end(key)
        self.hits += 1
        fresh = copy.deepcopy(reply)
        fresh.id = query.id
        left = max(0, int(expires - now))
        for section in (fresh.answer, fresh.authority, fresh.additional):
            for rrset in section:
                rrset.ttl = min(rrset.ttl, left)
        return fresh
