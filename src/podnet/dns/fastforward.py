"""Forwarding a first-asked name without parsing it, as dnsmasq does.

A query the cluster zone does not hold and no memo answers is sent on to an
upstream from the receiving thread itself, as the bytes the client sent under
an ID of our own; the same thread reads the upstreams' replies, gives each its
client's ID back and sends it on. Datagrams go and come a batch at a time. No
event loop, no dnspython: on that path a first question cost ~300 µs, most of it
in the machinery around two datagrams. A reply is kept in the cache and in the
UDP memo as the slow path would keep it.

What this path does not handle goes to the slow one, whole: a zone name, the
loop probe, zone transfers, anything but one plain question, a truncated
reply, and a question no reply came for within the forwarder's timeout (the
slow path then tries the other upstreams and checks health).
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import struct
import time
from collections.abc import Callable
from typing import NamedTuple

from podnet.dns.datagrams import Datagrams, address
from podnet.dns.forward import Forwarder, Upstream
from podnet.dns.metrics import FORWARD, Counts, section_type, transport_of
from podnet.dns.zone import Zone

log = logging.getLogger("podnet.dns")

_REVERSE = ((b"in-addr", b"arpa"), (b"ip6", b"arpa"))
_ZONE_TRANSFERS = (251, 252)
_IDS_DRAWN = 2048
SWEEP_EVERY = 0.1  # seconds between looks for questions that went unanswered


class Question(NamedTuple):
    labels: tuple[bytes, ...]  # the name's, in lower case
    key: bytes  # the question section in lower case: the cache's key, and what a reply must repeat


def plain_question(wire: bytes) -> Question | None:
    """The query's one question, or None for anything but one plain question (a
    name in wire form is never compressed in the question)."""
    if len(wire) < 17 or wire[2] & 0x78 or wire[4:6] != b"\0\1" or wire[6:10] != b"\0\0\0\0":
        return None  # not a QUERY, or not one question without answers or authority
    at = 12
    while at < len(wire) and wire[at]:
        if wire[at] & 0xC0:
            return None
        at += wire[at] + 1
    if at + 5 > len(wire) or struct.unpack_from("!H", wire, at + 1)[0] in _ZONE_TRANSFERS:
        return None
    key = wire[12:at + 5].lower()
    labels, i = [], 0
    while key[i]:
        labels.append(key[i + 1:i + 1 + key[i]])
        i += key[i] + 1
    return Question(tuple(labels), key)


class ZoneNames:
    """Which names a zone answers for, as label tuples: what the slow path keeps."""

    def __init__(self, zone: Zone) -> None:
        self.zone = zone
        self.origin = tuple(label.lower() for label in zone.origin.labels if label)
        self.extra = {tuple(label.lower() for label in name.labels if label) for name in zone.extra_names}

    def holds(self, labels: tuple[bytes, ...]) -> bool:
        if labels in self.extra:
            return True
        if self.zone.domain is None:
            return False
        return labels[len(labels) - len(self.origin):] == self.origin or labels[-2:] in _REVERSE


class FastForward:
    """Questions in flight to the upstreams, by the ID they were sent under. Each
    upstream has a connected socket, so that one nobody listens at is known from
    the ICMP error at once. The receiving thread polls them beside its own socket:
    one thread, so no two take turns at the interpreter for each datagram."""

    def __init__(self, forwarder: Forwarder, family: int, keep: Callable[[bytes, bytes, bytes], None],
                 slow: Callable[[bytes, tuple[str, int], Upstream], None]) -> None:
        self.forwarder = forwarder
        self.family = family  # the clients'
        self.transport = transport_of(False, family)
        self.keep = keep  # (query, its question, reply): into the cache and the memo
        self.slow = slow  # (query, client, the upstream that failed it): the slow path takes it over
        self.pending: dict[bytes, tuple[bytes, bytes, float, Upstream, bytes]] = {}  # our ID -> query, client, ...
        self.counts = Counts()
        self.sockets: dict[int, tuple[Upstream, Datagrams]] = {}  # by file descriptor
        self._outgoing: dict[Upstream, Datagrams] = {}  # sent a batch at a time
        self._last_sweep = time.monotonic()
        self._random, self._random_at = b"", 0  # IDs to hand out, and how many are used
        for upstream in forwarder.upstreams:
            sock = socket.socket(socket.AF_INET6 if ":" in upstream[0] else socket.AF_INET, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            sock.setblocking(False)
            sock.connect(upstream)
            self.sockets[sock.fileno()] = (upstream, Datagrams(sock, size=16384))  # replies fit the client's size
            self._outgoing[upstream] = Datagrams(sock, size=4096)

    def send(self, query: bytes, key: bytes, client: bytes, now: float) -> None:
        """The query is queued for an upstream under an unused ID (`key` is its
        question, `client` the sender's raw address, `now` the batch's monotonic
        time); flush() sends the queues."""
        upstream = self.forwarder.order()[0]
        while True:
            ours = self._next_id()
            if ours not in self.pending:
                break
        self.pending[ours] = (query, client, now, upstream, key)
        self.forwarder.sent[upstream] += 1
        self._outgoing[upstream].queue(ours + query[2:])

    def _next_id(self) -> bytes:
        """Unpredictable, as the port is fixed per upstream and the ID guards the
        cache: from os.urandom, a few thousand at a time (a system call each cost
        more than the rest of choosing one)."""
        if self._random_at == len(self._random):
            self._random, self._random_at = os.urandom(_IDS_DRAWN * 2), 0
        at = self._random_at
        self._random_at = at + 2
        return self._random[at:at + 2]

    def flush(self) -> None:
        """After a batch: one system call per upstream. An upstream's refusal (ICMP)
        shows on its socket's next send or read."""
        for upstream, outgoing in self._outgoing.items():
            if outgoing.send() == errno.ECONNREFUSED:  # nobody listens: what waits on it goes the slow way
                self._give_up(upstream, lambda sent: True)

    def read(self, fd: int, to_clients: Datagrams) -> None:
        """The replies waiting on an upstream's socket, queued for their clients."""
        upstream, datagrams = self.sockets[fd]
        try:
            batch = datagrams.receive()
        except OSError as err:
            if err.errno == errno.ECONNREFUSED:  # nobody listens there: what waits on it goes the slow way
                self._give_up(upstream, lambda sent: True)
            elif err.errno not in (errno.EAGAIN, errno.EWOULDBLOCK):
                log.warning("reading replies from %s:%d failed: %s", *upstream, err)
            return
        for reply in batch:
            self._deliver(reply, to_clients)

    def sweep(self) -> None:
        """Questions unanswered within the forwarder's timeout go the slow way."""
        now = time.monotonic()
        if now - self._last_sweep >= SWEEP_EVERY:
            self._last_sweep = now
            for upstream in self._outgoing:
                self._give_up(upstream, lambda sent: now - sent > self.forwarder.timeout)

    def close(self) -> None:
        for _, datagrams in self.sockets.values():
            datagrams.sock.close()

    def _deliver(self, reply: bytes, to_clients: Datagrams) -> None:
        entry = self.pending.get(reply[:2])
        if entry is None:
            return  # late or stray
        query, client, _, upstream, key = entry
        if reply[12:12 + len(key)].lower() != key:
            return  # not the answer to this question: keep waiting for it
        del self.pending[reply[:2]]
        if len(reply) < 12 or reply[2] & 0x02:  # truncated: the slow path asks again over TCP
            self._slow(query, client, upstream)
            return
        end = 12 + len(key)  # the client's ID, and its question as it spelled it (0x20 clients check the case)
        answer = query[:2] + reply[2:12] + query[12:end] + reply[end:]
        to_clients.queue(answer, client)
        self.counts.answered(self.transport, FORWARD, section_type(key), answer)
        self.counts.cache_misses += 1  # a question the slow path takes over counts its own miss
        self.keep(query, key, answer)

    def _give_up(self, upstream: Upstream, late: Callable[[float], bool]) -> None:
        for ours, (query, client, sent, to, _) in list(self.pending.items()):
            if to == upstream and late(sent):
                del self.pending[ours]
                self._slow(query, client, upstream)

    def _slow(self, query: bytes, client: bytes, upstream: Upstream) -> None:
        self.slow(query, address(self.family, client), upstream)  # type: ignore[arg-type]
