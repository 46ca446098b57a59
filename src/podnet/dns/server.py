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
import struct
import threading

import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype

from podnet.dns.cache import Cache
from podnet.dns.forward import Forwarder
from podnet.dns.zone import Zone, build_zone
from podnet.model.pod import Pod
from podnet.model.service import Service
from podnet.store import resources
from podnet.store.base import Store

log = logging.getLogger("podnet.dns")
UDP_DEFAULT_PAYLOAD = 512


def parse_query(wire: bytes) -> dns.message.Message | bytes | None:
    """The query; for bytes that are not one, the FORMERR reply to send back, or
    None when there is not even a header to echo."""
    try:
        return dns.message.from_wire(wire)
    except dns.exception.DNSException:
        if len(wire) < 12:
            return None
        header = bytearray(wire[:12])
        header[2] = (header[2] | 0x80) & ~0x04  # QR set; opcode kept
        header[3] = dns.rcode.FORMERR
        return bytes(header[:4]) + b"\0" * 8


def answer_from_zone(zone: Zone, query: dns.message.Message, udp: bool) -> bytes:
    reply = dns.message.make_response(query)
    if query.opcode() != dns.opcode.QUERY or len(query.question) != 1:
        reply.set_rcode(dns.rcode.NOTIMP if query.opcode() != dns.opcode.QUERY else dns.rcode.FORMERR)
        return reply.to_wire()
    question = query.question[0]
    if question.rdtype in (dns.rdatatype.AXFR, dns.rdatatype.IXFR) or not zone.authoritative_for(question.name):
        reply.set_rcode(dns.rcode.REFUSED)
        return reply.to_wire()
    answer = zone.query(question.name, question.rdtype)
    reply.flags |= dns.flags.AA
    reply.set_rcode(answer.rcode)
    reply.answer, reply.authority, reply.additional = answer.answer, answer.authority, answer.additional
    return _fit(reply, query, udp)


def respond(zone: Zone, wire: bytes, max_size: int | None) -> bytes | None:
    """The zone's reply to one query's wire bytes (max_size is None over TCP)."""
    query = parse_query(wire)
    return answer_from_zone(zone, query, max_size is not None) if isinstance(query, dns.message.Message) else query


def _fit(reply: dns.message.Message, query: dns.message.Message, udp: bool) -> bytes:
    """The reply's bytes; over UDP, within the client's payload size, else
    truncated (TC) so the client asks again over TCP."""
    limit = (max(query.payload, UDP_DEFAULT_PAYLOAD) if query.edns >= 0 else UDP_DEFAULT_PAYLOAD) if udp else 65535
    try:
        return reply.to_wire(max_size=limit)
    except dns.exception.TooBig:
        reply = copy.copy(reply)
        reply.answer, reply.authority, reply.additional = [], [], []
        reply.flags |= dns.flags.TC
        return reply.to_wire()


class Resolver:
    """Cluster names from the zone; other names from the cache, else upstream."""

    def __init__(self, source: ZoneFromStore, forwarder: Forwarder | None, cache: Cache | None = None) -> None:
        self.source = source
        self.forwarder = forwarder
        self.cache = cache or Cache()

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
        return answer_from_zone(self.source.zone, query, udp)

    async def from_upstream(self, query: dns.message.Message, wire: bytes, udp: bool) -> bytes | None:
        cached = self.cache.get(query)
        if cached is not None:
            return _fit(cached, query, udp)
        assert self.forwarder is not None
        reply_wire = await self.forwarder.resolve(wire)
        if reply_wire is None:
            failure = dns.message.make_response(query)
            failure.set_rcode(dns.rcode.SERVFAIL)
            return failure.to_wire()
        try:
            reply = dns.message.from_wire(reply_wire)
        except dns.exception.DNSException:
            return None
        self.cache.put(reply)
        return _fit(reply, query, udp)


class ZoneFromStore:
    """The zone, kept in step with the store by a watcher thread."""

    def __init__(self, store: Store, domain: str, ttl: int, hosts: list[tuple[str, str]] | None = None) -> None:
        self.store, self.domain, self.ttl, self.hosts = store, domain, ttl, hosts or []
        self.revision = -1
        self.zone = Zone(domain, ttl)
        self.refresh()

    def refresh(self) -> None:
        revision = self.store.revision()
        if revision == self.revision:
            return
        services, _ = resources.list_kind(self.store, "Service")
        pods, _ = resources.list_kind(self.store, "Pod")
        self.zone = build_zone([s for s in services if isinstance(s, Service)], [p for p in pods if isinstance(p, Pod)],
                               self.domain, self.ttl, self.hosts)
        self.revision = revision

    def watch(self, stop: threading.Event) -> None:
        while not stop.wait(0.1):
            try:
                self.refresh()
            except Exception as err:  # a bad object must not stop the answers for the others
                log.error("zone refresh failed: %s", err)


ANSWER_MEMO_SIZE = 100_000


class _Udp(asyncio.DatagramProtocol):
    """Answers from the zone are remembered by the query's bytes after its ID: the
    zone is deterministic, so the same question (same name spelling, flags and
    EDNS) gets the same answer until the zone changes, and a repeat costs a dict
    lookup instead of a parse and a render."""

    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver
        self.transport: asyncio.DatagramTransport | None = None
        self._memo: dict[bytes, bytes] = {}
        self._memo_zone: Zone | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, peer: tuple[str, int]) -> None:
        zone = self.resolver.source.zone
        if zone is not self._memo_zone:
            self._memo_zone, self._memo = zone, {}
        remembered = self._memo.get(data[2:])
        if remembered is not None:
            self._send(data[:2] + remembered, peer)
            return
        query = parse_query(data)
        if isinstance(query, dns.message.Message) and self.resolver.goes_upstream(query):
            asyncio.create_task(self._forward(query, data, peer))
            return
        reply = answer_from_zone(zone, query, udp=True) if isinstance(query, dns.message.Message) else query
        if reply and len(self._memo) < ANSWER_MEMO_SIZE:  # the cluster zone: answered at once, and remembered
            self._memo[data[2:]] = reply[2:]
        self._send(reply, peer)

    async def _forward(self, query: dns.message.Message, data: bytes, peer: tuple[str, int]) -> None:
        self._send(await self.resolver.from_upstream(query, data, udp=True), peer)

    def _send(self, reply: bytes | None, peer: tuple[str, int]) -> None:
        if reply and self.transport:
            self.transport.sendto(reply, peer)


async def _tcp(resolver: Resolver, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            (length,) = struct.unpack("!H", await reader.readexactly(2))
            reply = await resolver.answer(await reader.readexactly(length), udp=False)
            if reply is None:
                break
            writer.write(struct.pack("!H", len(reply)) + reply)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def serve(store: Store, host: str, port: int, domain: str, ttl: int, stop: threading.Event,
                forwarder: Forwarder | None = None, hosts: list[tuple[str, str]] | None = None) -> None:
    source = ZoneFromStore(store, domain, ttl, hosts)
    threading.Thread(target=source.watch, args=(stop,), daemon=True).start()
    resolver = Resolver(source, forwarder)
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: _Udp(resolver), local_addr=(host, port))
    server = await asyncio.start_server(lambda r, w: _tcp(resolver, r, w), host, port)
    log.info("serving %s on %s:%d (udp and tcp)", domain, host, port)
    await loop.run_in_executor(None, stop.wait)
    transport.close()
    server.close()
