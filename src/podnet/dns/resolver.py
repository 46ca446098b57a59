"""Answering a query: cluster names from the zone, other names from the cache or
the upstreams (CoreDNS's kubernetes, cache and forward plugins, in that order)."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Coroutine
from typing import Any, NamedTuple

import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rdatatype

from podnet.dns.cache import Cache
from podnet.dns.forward import Forwarder, Upstream
from podnet.dns.metrics import CACHE, FORWARD, HOSTS, SERVER, ZONE, Counts
from podnet.dns.query import OUR_PAYLOAD, ZoneAnswer, failure, fit, limit, parse_query, zone_answer
from podnet.dns.replywire import parsed, ttl_offsets
from podnet.dns.zone import Zone
from podnet.dns.zonesource import ZoneFromStore

log = logging.getLogger("podnet.dns")


class Reply(NamedTuple):
    wire: bytes | None  # None: nothing to send
    source: int  # what wrote it (podnet.dns.metrics: SERVER, ZONE, HOSTS, CACHE or FORWARD)


def zone_source(zone: Zone, query: dns.message.Message) -> int:
    """Whether the zone's answer to a query is a hosts entry's or the cluster's (for the metrics)."""
    if len(query.question) == 1 and query.question[0].name.canonicalize() in zone.extra_names:
        return HOSTS
    return ZONE


class Resolver:
    """Cluster names from the zone; other names from the cache, else upstream.

    With loop detection (CoreDNS's `loop`), it asks its upstreams for a random
    name at start; seeing that very question come back three times means the
    upstreams send our queries back to us, and forwarding stops (SERVFAIL, /ready
    fails) rather than letting each query circle until it times out."""

    def __init__(self, source: ZoneFromStore, forwarder: Forwarder | None, cache: Cache | None = None) -> None:
        self.source = source
        self.forwarder = forwarder
        self.cache = cache or Cache()
        self.counts = Counts()  # the event loop's
        self.counters = [self.counts]  # and those of other threads that answer
        self.looping = False
        self.loop_probe = dns.name.from_text(f"{secrets.token_hex(8)}.{secrets.token_hex(8)}.podnet-loop-check.")
        self._probe_seen = 0
        self._background: set[asyncio.Task[None]] = set()

    def goes_upstream(self, query: dns.message.Message) -> bool:
        if self.forwarder is None or query.opcode() != dns.opcode.QUERY or len(query.question) != 1:
            return False
        question = query.question[0]
        return question.rdtype not in (dns.rdatatype.AXFR, dns.rdatatype.IXFR) and \
            not self.source.zone.authoritative_for(question.name)

    async def answer(self, wire: bytes, udp: bool) -> Reply:
        query = parse_query(wire)
        if not isinstance(query, dns.message.Message):
            return Reply(query, SERVER)
        if self.goes_upstream(query):
            return await self.from_upstream(query, wire, udp)
        zone = self.source.zone
        return Reply(await self.complete(zone_answer(zone, query), udp), zone_source(zone, query))

    async def complete(self, answer: ZoneAnswer, udp: bool) -> bytes:
        """The zone's answer as bytes, its ExternalName target followed first."""
        if answer.target is not None:
            await self.chase(answer.query, answer.reply, answer.target)
        return fit(answer.reply, answer.query, udp)

    async def chase(self, query: dns.message.Message, reply: dns.message.Message, target: dns.name.Name) -> None:
        """An ExternalName's CNAME, followed by the target's records from upstream
        (or the cache), as a recursive resolver would hand them to the client."""
        if self.forwarder is None or self.looping:
            return
        question = dns.message.make_query(target, query.question[0].rdtype)
        cached, _ = self.cache.get(question)
        resolved = cached or parsed(await self._ask_upstream(question.to_wire()))
        if resolved is not None:
            reply.answer.extend(resolved.answer)

    async def from_upstream(self, query: dns.message.Message, wire: bytes, udp: bool,
                            failed: Upstream | None = None) -> Reply:
        """`failed`: an upstream the fast path asked in vain; the others are asked."""
        if self._looped(query) or self.looping:
            return Reply(failure(query), SERVER)
        cached, prefetch = self.cache.get(query)
        if cached is not None:
            if prefetch:
                self.in_background(self._refresh(query))
            cached.use_edns(query.edns, query.ednsflags & dns.flags.DO, OUR_PAYLOAD)  # as this client asked, not the first
            return Reply(fit(cached, query, udp), CACHE)
        reply = await self._ask_upstream(wire, failed)
        if reply is not None and len(reply) <= limit(query, udp):
            return Reply(reply, FORWARD)  # the answer to this very query: the client's ID, within the client's size
        whole = parsed(reply)
        return Reply(fit(whole, query, udp), FORWARD) if whole is not None else Reply(failure(query), SERVER)

    async def _ask_upstream(self, wire: bytes, failed: Upstream | None = None) -> bytes | None:
        """The upstream's reply, cached when it may be; None when none came or
        what came is not a DNS message."""
        assert self.forwarder is not None
        reply = await self.forwarder.resolve(wire, failed)
        if reply is None or ttl_offsets(reply) is None:
            return None
        self.cache.put(reply)
        return reply

    async def _refresh(self, query: dns.message.Message) -> None:
        await self._ask_upstream(query.to_wire())

    def _looped(self, query: dns.message.Message) -> bool:
        if query.question[0].name != self.loop_probe:
            return False
        self._probe_seen += 1
        if self._probe_seen >= 3 and not self.looping:
            self.looping = True
            log.error("forwarding loop detected: a query sent to %s came back to this server %d times; "
                      "not forwarding any more (point the upstreams at a resolver that does not forward here)",
                      ", ".join(f"{h}:{p}" for h, p in self.forwarder.upstreams) if self.forwarder else "-",
                      self._probe_seen)
        return self.looping

    def check_for_loop(self) -> None:
        if self.forwarder is not None:
            probe = dns.message.make_query(self.loop_probe, dns.rdatatype.HINFO)
            self.in_background(self._ask_once(probe.to_wire()))

    async def _ask_once(self, wire: bytes) -> None:
        assert self.forwarder is not None
        await self.forwarder.resolve(wire)

    def in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)  # held until done, as asyncio keeps only weak references
        task.add_done_callback(self._background.discard)

    def ready(self) -> bool:
        return self.source.revision >= 0 and not self.looping
