"""Forwarding a first-asked name without parsing it, as dnsmasq does.

A query the cluster zone does not hold and no memo answers is sent on to an
upstream from the receiving thread itself, as the bytes the client sent under
an ID of our own; a thread of its own reads the upstreams' replies a batch at a
time, gives each its client's ID back and sends it on. No event loop, no
dnspython: on that path a first question cost ~300 µs, most of it in the
machinery around two datagrams. A reply is kept in the cache and in the UDP
memo as the slow path would keep it.

What this path does not handle goes to the slow one, whole: a zone name, the
loop probe, zone transfers, anything but one plain question, a truncated
reply, and a question no reply came for within the forwarder's timeout (the
slow path then tries the other upstreams and checks health).
"""

from __future__ import annotations

import errno
import logging
import random
import socket
import struct
import threading
import time
from collections.abc import Callable

from podnet.dns.datagrams import Datagrams
from podnet.dns.forward import Forwarder, Upstream
from podnet.dns.metrics import Counts
from podnet.dns.replywire import question_section
from podnet.dns.zone import Zone

log = logging.getLogger("podnet.dns")

_REVERSE = ((b"in-addr", b"arpa"), (b"ip6", b"arpa"))
_ZONE_TRANSFERS = (251, 252)
_SWEEP_EVERY = 0.1  # seconds between looks for questions that went unanswered


def question_labels(wire: bytes) -> tuple[bytes, ...] | None:
    """The question's name as lower-case labels, or None for anything but one
    plain question (a name in wire form is never compressed in the question)."""
    if len(wire) < 17 or wire[2] & 0x78 or wire[4:6] != b"\0\1" or wire[6:10] != b"\0\0\0\0":
        return None  # not a QUERY, or not one question without answers or authority
    labels, at = [], 12
    while at < len(wire) and wire[at]:
        length = wire[at]
        if length & 0xC0:
            return None
        labels.append(wire[at + 1:at + 1 + length].lower())
        at += length + 1
    if at + 5 > len(wire) or struct.unpack_from("!H", wire, at + 1)[0] in _ZONE_TRANSFERS:
        return None
    return tuple(labels)


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
    upstream has a connected socket and a thread reading it: connected, so that an
    upstream nobody listens at is known from the ICMP error at once."""

    def __init__(self, forwarder: Forwarder, client_sock: socket.socket,
                 keep: Callable[[bytes, bytes], None],
                 slow: Callable[[bytes, tuple[str, int], Upstream], None]) -> None:
        self.forwarder = forwarder
        self.client_sock = client_sock
        self.keep = keep  # (query, reply): into the cache and the memo
        self.slow = slow  # (query, client, the upstream that failed it): the slow path takes it over
        self.pending: dict[bytes, tuple[bytes, tuple[str, int], float, Upstream]] = {}  # our ID -> its question
        self.counts = Counts()  # the reading threads' own
        self._stopping = False
        self._sockets: dict[Upstream, socket.socket] = {}
        self._threads = []
        for upstream in forwarder.upstreams:
            sock = socket.socket(socket.AF_INET6 if ":" in upstream[0] else socket.AF_INET, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 0, int(_SWEEP_EVERY * 1e6)))
            sock.connect(upstream)
            self._sockets[upstream] = sock
            thread = threading.Thread(target=self._receive, args=(upstream, sock), name="dns-forward", daemon=True)
            thread.start()
            self._threads.append(thread)

    def send(self, query: bytes, client: tuple[str, int]) -> None:
        """From the receiving thread: the query goes upstream under an unused ID."""
        upstream = self.forwarder.order()[0]
        while True:
            ours = random.getrandbits(16).to_bytes(2, "big")
            if ours not in self.pending:
                break
        self.pending[ours] = (query, client, time.monotonic(), upstream)
        self.forwarder.sent[upstream] += 1
        try:
            self._sockets[upstream].send(ours + query[2:])
        except OSError:
            del self.pending[ours]
            self.slow(query, client, upstream)

    def stop(self) -> None:
        self._stopping = True
        for thread in self._threads:
            thread.join()
        for sock in self._sockets.values():
            sock.close()

    def _receive(self, upstream: Upstream, sock: socket.socket) -> None:
        datagrams = Datagrams(sock, size=16384)  # replies fit the size the client announced, at most 4096
        last_sweep = time.monotonic()
        while not self._stopping:
            try:
                batch = datagrams.receive()
            except OSError as err:
                batch = []
                if err.errno == errno.ECONNREFUSED:  # nobody listens there: what waits on it goes the slow way
                    self._give_up(upstream, lambda sent: True)
                elif err.errno not in (errno.EAGAIN, errno.EWOULDBLOCK):
                    log.exception("reading replies from %s:%d failed; forwarding there stops", *upstream)
                    return
            for reply in batch:
                self._deliver(reply)
            now = time.monotonic()
            if now - last_sweep >= _SWEEP_EVERY:
                last_sweep = now
                self._give_up(upstream, lambda sent: now - sent > self.forwarder.timeout)

    def _deliver(self, reply: bytes) -> None:
        entry = self.pending.get(reply[:2])
        if entry is None:
            return  # late or stray
        query, client, _, upstream = entry
        if question_section(reply).lower() != question_section(query).lower():
            return  # not the answer to this question: keep waiting for it
        if self.pending.pop(reply[:2], None) is None:
            return
        if len(reply) < 12 or reply[2] & 0x02:  # truncated: the slow path asks again over TCP
            self.slow(query, client, upstream)
            return
        try:
            self.client_sock.sendto(query[:2] + reply[2:], client)
        except OSError:
            pass  # the client's address is unreachable
        self.counts.answered("udp", reply)
        self.keep(query, reply)

    def _give_up(self, upstream: Upstream, late: Callable[[float], bool]) -> None:
        for ours, (_, _, sent, to) in list(self.pending.items()):
            if to == upstream and late(sent):
                entry = self.pending.pop(ours, None)
                if entry is not None:
                    self.slow(entry[0], entry[1], upstream)
