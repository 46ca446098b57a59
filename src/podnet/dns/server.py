"""The cluster DNS server: UDP and TCP on port 53, answering the cluster zone from
the store, and everything else from its cache or its upstreams (or REFUSED when
it has none).

The zone is rebuilt when the store's revision moves (checked every 100 ms), so a
new Service resolves within a second, and cluster names never come from the
cache, so nothing stale is served.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import secrets
import socket
import struct
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from prometheus_client import CONTENT_TYPE_LATEST

from podnet.dns.aging import AgingReply
from podnet.dns.cache import Cache
from podnet.dns.config import DnsConfig
from podnet.dns.datagrams import Datagrams
from podnet.dns.forward import Forwarder
from podnet.dns.http import Page, serve_pages
from podnet.dns.metrics import Counts, combined, exposition, tally
from podnet.dns.replywire import parsed, ttl_offsets
from podnet.dns.workers import PUBLISH_EVERY, SharedTallies
from podnet.dns.zone import Zone, build_zone, hosts_records
from podnet.model.pod import Pod
from podnet.model.service import Service
from podnet.store import resources
from podnet.store.base import Store

log = logging.getLogger("podnet.dns")
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


def respond(zone: Zone, wire: bytes, max_size: int | None) -> bytes | None:
    """The zone's reply to one query's wire bytes (max_size is None over TCP)."""
    query = parse_query(wire)
    if not isinstance(query, dns.message.Message):
        return query
    return _fit(zone_reply(zone, query), query, max_size is not None)


def _limit(query: dns.message.Message, udp: bool) -> int:
    """The largest reply the client takes: its EDNS payload size over UDP (512 without EDNS)."""
    return (max(query.payload, UDP_DEFAULT_PAYLOAD) if query.edns >= 0 else UDP_DEFAULT_PAYLOAD) if udp else 65535


def _fit(reply: dns.message.Message, query: dns.message.Message, udp: bool) -> bytes:
    """The reply's bytes; over UDP, within the client's payload size, else
    truncated (TC) so the client asks again over TCP."""
    try:
        return reply.to_wire(max_size=_limit(query, udp))
    except dns.exception.TooBig:
        reply = copy.copy(reply)
        reply.answer, reply.authority, reply.additional = [], [], []
        reply.flags |= dns.flags.TC
        return reply.to_wire()


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

    async def answer(self, wire: bytes, udp: bool) -> bytes | None:
        query = parse_query(wire)
        if not isinstance(query, dns.message.Message):
            return query
        if self.goes_upstream(query):
            return await self.from_upstream(query, wire, udp)
        zone = self.source.zone
        reply = zone_reply(zone, query)
        target = outside_target(zone, query, reply)
        if target is not None:
            await self.chase(query, reply, target)
        return _fit(reply, query, udp)

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

    async def from_upstream(self, query: dns.message.Message, wire: bytes, udp: bool) -> bytes | None:
        if self._looped(query) or self.looping:
            return _failure(query)
        cached, prefetch = self.cache.get(query)
        if cached is not None:
            if prefetch:
                self.in_background(self._refresh(query))
            cached.use_edns(query.edns, query.ednsflags & dns.flags.DO, OUR_PAYLOAD)  # as this client asked, not the first
            return _fit(cached, query, udp)
        reply = await self._ask_upstream(wire)
        if reply is not None and len(reply) <= _limit(query, udp):
            return reply  # the answer to this very query: the client's ID, within the client's size
        whole = parsed(reply)
        return _fit(whole, query, udp) if whole is not None else _failure(query)

    async def _ask_upstream(self, wire: bytes) -> bytes | None:
        """The upstream's reply, cached when it may be; None when none came or
        what came is not a DNS message."""
        assert self.forwarder is not None
        reply = await self.forwarder.resolve(wire)
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


def _failure(query: dns.message.Message) -> bytes:
    failure = dns.message.make_response(query, our_payload=OUR_PAYLOAD)
    failure.set_rcode(dns.rcode.SERVFAIL)
    return failure.to_wire()


class ZoneFromStore:
    """The zone, kept in step with the store by a watcher thread (or, without a
    store, the hosts entries alone)."""

    def __init__(self, store: Store | None, config: DnsConfig, hosts: list[tuple[str, str]] | None = None) -> None:
        self.store, self.config, self.hosts = store, config, hosts or []
        self.revision = -1
        self.zone = Zone(config.domain, config.ttl, config.pods)
        self.refresh()

    def refresh(self) -> None:
        revision = self.store.revision() if self.store else 0
        if revision == self.revision:
            return
        services, pods = [], []
        if self.store is not None:
            services = [s for s in resources.list_kind(self.store, "Service")[0] if isinstance(s, Service)]
            pods = [p for p in resources.list_kind(self.store, "Pod")[0] if isinstance(p, Pod)]
        self.zone = build_zone(services, pods, self.config.domain, self.config.ttl, self.hosts, self.config.pods)
        self.revision = revision

    def watch(self, stop: threading.Event) -> None:
        while self.store is not None and not stop.wait(0.1):
            try:
                self.refresh()
            except Exception as err:  # a bad object must not stop the answers for the others
                log.error("zone refresh failed: %s", err)


ANSWER_MEMO_SIZE = 100_000
MAX_UDP_QUERY = 4096  # the largest EDNS payload a client may announce; a query is far smaller


class UdpServer:
    """UDP on port 53: a thread of its own receives every datagram and answers
    repeats itself; the rest go to the event loop.

    Answers from the zone are remembered by the query's bytes after its ID: the
    zone is deterministic, so the same question (same name spelling, flags and
    EDNS) gets the same answer until the zone changes, and a repeat costs a dict
    lookup instead of a parse and a render. Answers from the cache are remembered
    the same way, as bytes whose TTLs age (AgingReply), until the cache would let
    them go. On that path a query costs a lookup, with no event loop in between
    (asyncio's datagram machinery alone costs more than the answer), and the
    queries waiting on the socket are read and answered with one system call
    each way (Datagrams)."""

    def __init__(self, resolver: Resolver, sock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        self.resolver = resolver
        self.sock = sock
        self.loop = loop
        self.counts = Counts()  # the receiving thread's own: no two threads bump one counter
        resolver.counters.append(self.counts)
        self._memo: dict[bytes, bytes | AgingReply] = {}  # zone answers, and answers from the cache
        self._memo_zone: Zone | None = None
        self._stopping = False
        self._thread = threading.Thread(target=self._receive, name="dns-udp", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Wakes the receiving thread by shutting the socket for reading: a datagram
        sent to our own port could reach another worker's socket instead."""
        self._stopping = True
        try:
            self.sock.shutdown(socket.SHUT_RD)
        except OSError:
            pass  # ENOTCONN, as for any unconnected UDP socket: the waiting thread is woken all the same
        self._thread.join()
        self.sock.close()

    def _receive(self) -> None:
        datagrams = Datagrams(self.sock, size=MAX_UDP_QUERY)
        receive, reply, send, source = datagrams.receive, datagrams.reply, datagrams.send, self.resolver.source
        by_rcode, monotonic, aging = self.counts.fast_rcodes, time.monotonic, AgingReply
        while True:
            try:
                batch = receive()
            except OSError:
                log.exception("reading UDP queries failed; UDP answers stop")
                return
            if self._stopping:
                return
            zone, now = source.zone, monotonic()
            if zone is not self._memo_zone:
                self._memo_zone, self._memo = zone, {}
            memo = self._memo
            for i, data in enumerate(batch):
                remembered = memo.get(data[2:])
                if remembered is not None and remembered.__class__ is aging:
                    if now >= remembered.refresh_at:  # type: ignore[union-attr]
                        remembered = None
                    else:
                        remembered = remembered.render(now)  # type: ignore[union-attr]
                        self.counts.cache_hits += 1
                if remembered is None:
                    self.loop.call_soon_threadsafe(self._answer, data, datagrams.peer(i), zone)
                    continue
                reply(i, data[:2], remembered)  # type: ignore[arg-type]
                by_rcode[remembered[1] & 0x0F] += 1  # type: ignore[index]
            send()

    def _answer(self, data: bytes, peer: tuple[str, int], zone: Zone) -> None:
        """On the event loop: a first question, a forwarded one, or a bad packet."""
        query = parse_query(data)
        if not isinstance(query, dns.message.Message):
            self._send(query, peer)  # FORMERR, or nothing
            return
        if self.resolver.goes_upstream(query):
            self.resolver.in_background(self._forward(query, data, peer))
            return
        whole = zone_reply(zone, query)
        target = outside_target(zone, query, whole)
        if target is not None:  # not remembered: the target's answer comes from upstream and ages
            self.resolver.in_background(self._chase(query, whole, target, peer))
            return
        reply = _fit(whole, query, udp=True)
        if zone is self._memo_zone and len(self._memo) < ANSWER_MEMO_SIZE:
            self._memo[data[2:]] = reply[2:]
        self._send(reply, peer)

    async def _chase(self, query: dns.message.Message, reply: dns.message.Message, target: dns.name.Name,
                     peer: tuple[str, int]) -> None:
        await self.resolver.chase(query, reply, target)
        self._send(_fit(reply, query, udp=True), peer)

    async def _forward(self, query: dns.message.Message, data: bytes, peer: tuple[str, int]) -> None:
        reply = await self.resolver.from_upstream(query, data, udp=True)
        if reply is not None:
            self._remember_forwarded(query, data, reply)
        self._send(reply, peer)

    def _remember_forwarded(self, query: dns.message.Message, data: bytes, reply: bytes) -> None:
        """A reply the cache holds, kept rendered until the cache's expiry (or until
        prefetching is due, when the slow path must see the question again)."""
        lifetime = self.resolver.cache.lifetime(query)
        if lifetime is None or reply[2] & 0x02 or len(self._memo) >= ANSWER_MEMO_SIZE:
            return  # not cached (an error), truncated, or enough remembered
        found = ttl_offsets(reply)
        if found is not None:
            self._memo[data[2:]] = AgingReply(reply[2:], found[0], found[1], *lifetime)

    def _send(self, reply: bytes | None, peer: tuple[str, int]) -> None:
        self.resolver.counts.answered("udp", reply)
        if reply:
            try:
                self.sock.sendto(reply, peer)
            except OSError:
                pass  # the client's address is unreachable: nothing to tell anyone


async def _tcp(resolver: Resolver, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            (length,) = struct.unpack("!H", await reader.readexactly(2))
            reply = await resolver.answer(await reader.readexactly(length), udp=False)
            resolver.counts.answered("tcp", reply)
            if reply is None:
                break
            writer.write(struct.pack("!H", len(reply)) + reply)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def serve(config: DnsConfig, store: Store | None, stop: threading.Event, worker: int = 0,
                tallies: SharedTallies | None = None) -> None:
    """Answers until `stop` is set. Worker 0 serves the HTTP pages; with `tallies`
    its metrics add up every worker's, and the others publish theirs there."""
    hosts = hosts_records(Path(config.hosts_file).read_text()) if config.hosts_file else []
    source = ZoneFromStore(store, config, hosts)
    threading.Thread(target=source.watch, args=(stop,), daemon=True).start()
    forwarder = Forwarder(list(config.upstreams), config.policy, health_check=config.health_check,
                          max_fails=config.max_fails, expire=config.expire) if config.upstreams else None
    resolver = Resolver(source, forwarder, Cache(config.cache_capacity, config.cache_max_ttl, prefetch=config.prefetch))
    loop = asyncio.get_running_loop()
    host, port = config.listen
    shared = config.workers > 1
    udp = UdpServer(resolver, _bound_udp_socket(host, port, shared), loop)
    udp.start()
    servers = [await asyncio.start_server(lambda r, w: _tcp(resolver, r, w), host, port, reuse_port=shared)]
    for name, (page_host, page_port) in config.http.items():
        servers.append(await serve_pages(page_host, page_port, _pages(name, resolver, tallies)))
    if tallies is not None and worker > 0:
        resolver.in_background(_publish(resolver, tallies, worker, stop))
    log.info("serving %s on %s:%d (udp and tcp)", config.domain or "hosts entries", host, port)
    if config.loop_check:
        resolver.check_for_loop()
    await loop.run_in_executor(None, stop.wait)
    udp.stop()
    for server in servers:
        server.close()


def _bound_udp_socket(host: str, port: int, shared: bool) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)  # bursts wait here, not on the floor
    if shared:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


async def _publish(resolver: Resolver, tallies: SharedTallies, worker: int, stop: threading.Event) -> None:
    while not stop.is_set():
        tallies.publish(worker, tally(resolver))
        await asyncio.sleep(PUBLISH_EVERY)


def _pages(name: str, resolver: Resolver, tallies: SharedTallies | None) -> dict[str, Page]:
    if name == "health":
        return {"/health": lambda: (200, "text/plain", b"OK")}
    if name == "ready":
        return {"/ready": lambda: (200, "text/plain", b"OK") if resolver.ready() else (503, "text/plain", b"not ready\n")}

    def metrics() -> bytes:
        return exposition(combined([tally(resolver), *(tallies.others(0) if tallies is not None else [])]))

    return {"/metrics": lambda: (200, CONTENT_TYPE_LATEST, metrics())}
