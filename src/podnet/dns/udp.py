"""The UDP server: port 53's datagrams, with repeats answered from a memo on a
thread of their own."""

from __future__ import annotations

import asyncio
import logging
import select
import socket
import threading
import time
from collections import OrderedDict

import dns.message

from podnet.dns.aging import AgingReply
from podnet.dns.datagrams import Datagrams
from podnet.dns.fastforward import SWEEP_EVERY, FastForward, ZoneNames, plain_question
from podnet.dns.forward import Upstream
from podnet.dns.metrics import CACHE, SERVER, Counts, question_type, section_type, slot, transport_of
from podnet.dns.query import ZoneAnswer, fit, parse_query, zone_answer
from podnet.dns.replywire import is_denial, keepable, question_section, ttl_offsets
from podnet.dns.resolver import Reply, Resolver, zone_source
from podnet.dns.zone import Zone

log = logging.getLogger("podnet.dns")

ANSWER_MEMO_SIZE = 100_000
LOOP_PROBE = b"podnet-loop-check"  # the loop check's name: the slow path counts it
MAX_UDP_QUERY = 4096  # the largest EDNS payload a client may announce; a query is far smaller


class UdpServer:
    """UDP on port 53: a thread of its own receives every datagram and answers
    repeats itself; the rest go to the event loop.

    Answers from the zone are remembered by the query's bytes after its ID: the
    zone is deterministic, so the same question (same name spelling, flags and
    EDNS) gets the same answer until the zone changes, and a repeat costs a dict
    lookup instead of a parse and a render (and is counted in the answer's
    metrics slot, kept beside it). Answers from the cache are remembered
    the same way, as bytes whose TTLs age (AgingReply), until the cache would let
    them go. On that path a query costs a lookup, with no event loop in between
    (asyncio's datagram machinery alone costs more than the answer), and the
    queries waiting on the socket are read and answered with one system call
    each way (Datagrams)."""

    def __init__(self, resolver: Resolver, sock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        self.resolver = resolver
        self.sock = sock
        self.loop = loop
        self.transport = transport_of(False, sock.family)  # counted as udp, of the socket's family
        self.counts = Counts()  # the receiving thread's own: no two threads bump one counter
        resolver.counters.append(self.counts)
        self._memo: OrderedDict[bytes, tuple[bytes | AgingReply, int]] = OrderedDict()  # answer, metrics slot
        self._memo_zone: Zone | None = None
        self._names: ZoneNames | None = None
        self.fast: FastForward | None = None
        self._stopping = False
        self._thread = threading.Thread(target=self._receive, name="dns-udp", daemon=True)

    def start(self) -> None:
        forwarder = self.resolver.forwarder
        if forwarder is not None:
            self.fast = FastForward(forwarder, self.sock.family, self._keep_forwarded, self._take_over)
            self.resolver.counters.append(self.fast.counts)
        self._thread.start()

    def _take_over(self, data: bytes, peer: tuple[str, int], failed: Upstream) -> None:
        """What the fast path gave up on: the event loop answers it, from the other
        upstreams, and counts the failure as its own would."""
        self.loop.call_soon_threadsafe(self._after_failure, data, peer, failed)

    def _after_failure(self, data: bytes, peer: tuple[str, int], failed: Upstream) -> None:
        query = parse_query(data)
        if not isinstance(query, dns.message.Message):
            return
        self.resolver.in_background(self._forward(query, data, peer, failed))

    def stop(self) -> None:
        """Wakes the receiving thread by shutting the socket for reading: a datagram
        sent to our own port could reach another worker's socket instead."""
        self._stopping = True
        try:
            self.sock.shutdown(socket.SHUT_RD)
        except OSError:
            pass  # ENOTCONN, as for any unconnected UDP socket: the waiting thread is woken all the same
        self._thread.join()
        if self.fast is not None:
            self.fast.close()
        self.sock.close()

    def _receive(self) -> None:
        datagrams = Datagrams(self.sock, size=MAX_UDP_QUERY)
        own, ready = self.sock.fileno(), [(self.sock.fileno(), select.POLLIN)]
        poller = None
        if self.fast is not None:  # the upstreams' replies come to this thread too
            poller = select.poll()
            for fd in (own, *self.fast.sockets):
                poller.register(fd, select.POLLIN)
        while True:
            if poller is not None:
                ready = poller.poll(SWEEP_EVERY * 1000)
            if self._stopping:
                return
            for fd, _ in ready:
                if fd != own:
                    self.fast.read(fd, datagrams)  # type: ignore[union-attr]
                elif not self._queries(datagrams):
                    return
            datagrams.send()
            if self.fast is not None:
                self.fast.flush()
                self.fast.sweep()

    def _queries(self, datagrams: Datagrams) -> bool:
        """Answers the queries waiting: repeats from the memo, first-asked names
        outside the zone by the fast path, the rest on the event loop. False when
        the socket failed or is being closed."""
        try:
            batch = datagrams.receive()
        except OSError:
            log.exception("reading UDP queries failed; UDP answers stop")
            return False
        if self._stopping:
            return False
        resolver, zone, now = self.resolver, self.resolver.source.zone, time.monotonic()
        if zone is not self._memo_zone:
            self._memo_zone, self._memo, self._names = zone, OrderedDict(), ZoneNames(zone)
        memo, names, reply = self._memo, self._names, datagrams.reply
        answered, cache_hits = self.counts.answers, self.counts.cache_hits
        fast = self.fast if not resolver.looping else None
        for i, data in enumerate(batch):
            remembered = memo.get(data[2:])
            if remembered is not None:
                answer, counted_at = remembered
                if answer.__class__ is AgingReply:
                    if now >= answer.refresh_at:  # type: ignore[union-attr]
                        remembered = None
                    else:
                        cache_hits[answer.denial] += 1  # type: ignore[union-attr]
                        answer = answer.render(now)  # type: ignore[union-attr]
            if remembered is None:
                question = plain_question(data) if fast is not None else None
                if question is not None and not names.holds(question.labels) and LOOP_PROBE not in question.labels \
                        and not resolver.cache.holds(question.key):
                    fast.send(data, question.key, datagrams.name_of(i), now)  # type: ignore[union-attr]
                else:
                    self.loop.call_soon_threadsafe(self._answer, data, datagrams.peer(i), zone)
                continue
            reply(i, data[:2], answer)  # type: ignore[arg-type]
            answered[counted_at] += 1
        return True

    def _answer(self, data: bytes, peer: tuple[str, int], zone: Zone) -> None:
        """On the event loop: a first question, a forwarded one, or a bad packet."""
        query = parse_query(data)
        if not isinstance(query, dns.message.Message):
            self._send(data, Reply(query, SERVER), peer)  # FORMERR, or nothing
            return
        if self.resolver.goes_upstream(query):
            self.resolver.in_background(self._forward(query, data, peer))
            return
        answer, source = zone_answer(zone, query), zone_source(zone, query)
        if answer.target is not None:  # not remembered: the target's answer comes from upstream and ages
            self.resolver.in_background(self._complete(data, answer, source, peer))
            return
        reply = fit(answer.reply, query, udp=True)
        if zone is self._memo_zone:
            self._remember(data[2:], reply[2:], slot(self.transport, source, question_type(data), reply))
        self._send(data, Reply(reply, source), peer)

    async def _complete(self, data: bytes, answer: ZoneAnswer, source: int, peer: tuple[str, int]) -> None:
        self._send(data, Reply(await self.resolver.complete(answer, udp=True), source), peer)

    async def _forward(self, query: dns.message.Message, data: bytes, peer: tuple[str, int],
                       failed: Upstream | None = None) -> None:
        reply = await self.resolver.from_upstream(query, data, udp=True, failed=failed)
        if reply.wire is not None:
            self._remember_forwarded(data, reply.wire)
        self._send(data, reply, peer)

    def _remember_forwarded(self, data: bytes, reply: bytes) -> None:
        """A reply the cache holds, kept rendered until the cache's expiry (or until
        prefetching is due, when the slow path must see the question again)."""
        lifetime = self.resolver.cache.lifetime(question_section(reply).lower())
        if lifetime is None or reply[2] & 0x02:
            return  # not cached (an error), or truncated
        found = ttl_offsets(reply)
        if found is not None:
            aging = AgingReply(reply[2:], found[0], found[1], *lifetime, is_denial(reply))
            self._remember(data[2:], aging, slot(self.transport, CACHE, question_type(data), reply))

    def _keep_forwarded(self, data: bytes, key: bytes, reply: bytes) -> None:
        """The fast path's reply: into the cache, and remembered as the slow path's,
        from one reading of its records (`key` is its question, in lower case)."""
        found = keepable(reply, 12 + len(key))  # the fast path has compared the reply's question with key
        if found is None:
            return
        ttl, offsets, ttls = found
        lifetime = self.resolver.cache.keep(key, reply, ttl)
        if lifetime is not None:  # the fast path gets no truncated reply
            aging = AgingReply(reply[2:], offsets, ttls, *lifetime, is_denial(reply))
            self._remember(data[2:], aging, slot(self.transport, CACHE, section_type(key), reply))

    def _remember(self, query: bytes, answer: bytes | AgingReply, counted_at: int) -> None:
        """The oldest answer makes room. Forwarded names have no bound, and a memo
        that took nothing more once full left the zone's answers to the slow path
        after 100 000 names had been forwarded (3 000 queries/s instead of 130 000).
        `counted_at`: the metrics slot a repeat is counted in."""
        memo = self._memo
        memo[query] = (answer, counted_at)
        if len(memo) > ANSWER_MEMO_SIZE:
            memo.popitem(last=False)

    def _send(self, query: bytes, reply: Reply, peer: tuple[str, int]) -> None:
        self.resolver.counts.answered(self.transport, reply.source, question_type(query), reply.wire)
        if reply.wire:
            try:
                self.sock.sendto(reply.wire, peer)
            except OSError:
                pass  # the client's address is unreachable: nothing to tell anyone


def bound_udp_socket(host: str, port: int, shared: bool) -> socket.socket:
    """An IPv6 socket takes IPv6 only: IPv4 has a socket of its own (config.listen_hosts)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    if sock.family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)  # bursts wait here, not on the floor
    if shared:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock
