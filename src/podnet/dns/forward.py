"""Asking upstream servers what the cluster zone does not hold.

Upstreams are tried in the policy's order (random, round_robin or sequential, as
CoreDNS's forward plugin names them), the next one when one fails; a truncated
UDP answer is asked again over TCP. Health is checked as CoreDNS checks it: an
upstream that failed is asked `. IN NS` every `health_check` seconds until it
answers (any answer will do); after more than `max_fails` checks in a row
without one it is down, and queries go to the others until it answers again.
When every upstream is down, they are all tried anyway.

UDP sockets are kept and reused, one question at a time each, and closed after
`expire` seconds unused (CoreDNS's connection cache): opening and closing a
socket per question cost more than the exchange itself.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import struct
import time
from collections import Counter, defaultdict, deque

import dns.message
import dns.rdatatype

from podnet.dns.replywire import question_section

POLICIES = ("random", "round_robin", "sequential")
HEALTH_CHECK = 0.5  # seconds between the checks of a failing upstream (CoreDNS's default)
MAX_FAILS = 2
CHECK_TIMEOUT = 1.0
EXPIRE = 10.0  # seconds an unused upstream socket is kept (CoreDNS's default)
Upstream = tuple[str, int]


class _Socket(asyncio.DatagramProtocol):
    """A UDP socket connected to one upstream, asking one question at a time. A
    reply counts only with the question's ID and question section: a stray or
    forged datagram is not taken for the answer. A socket whose question went
    unanswered is closed, not reused, as its answer may still come."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.answer: asyncio.Future[bytes] | None = None
        self.expected = b""  # the question's ID and question section
        self.idle_since = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def ask(self, wire: bytes) -> asyncio.Future[bytes]:
        assert self.transport is not None
        self.answer = asyncio.get_running_loop().create_future()
        self.expected = wire[:2] + question_section(wire)
        self.transport.sendto(wire)
        return self.answer

    def datagram_received(self, data: bytes, _: tuple[str, int]) -> None:
        if self.answer is None or self.answer.done() or data[:2] != self.expected[:2]:
            return
        if question_section(data).lower() == self.expected[2:].lower():
            self.answer.set_result(data)

    def error_received(self, exc: Exception) -> None:
        """ICMP port unreachable: nobody listens there, so do not wait for the timeout."""
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(exc)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class Forwarder:
    def __init__(self, upstreams: list[Upstream], policy: str = "random", timeout: float = 2.0,
                 health_check: float = HEALTH_CHECK, max_fails: int = MAX_FAILS, expire: float = EXPIRE) -> None:
        if policy not in POLICIES:
            raise ValueError(f"unknown policy {policy!r} (one of {', '.join(POLICIES)})")
        self.upstreams = upstreams
        self.policy = policy
        self.timeout = timeout
        self.health_check = health_check
        self.max_fails = max_fails  # 0: never down, never checked
        self.expire = expire
        self.sent: Counter[Upstream] = Counter()
        self.failed: Counter[Upstream] = Counter()
        self.failed_checks: Counter[Upstream] = Counter()
        self._turn = itertools.count()
        self._fails: Counter[Upstream] = Counter()  # checks failed in a row
        self._checking: dict[Upstream, asyncio.Task[None]] = {}
        self._idle: defaultdict[Upstream, deque[_Socket]] = defaultdict(deque)  # the oldest on the left

    def down(self, upstream: Upstream) -> bool:
        return self.max_fails > 0 and self._fails[upstream] > self.max_fails

    def order(self) -> list[Upstream]:
        if len(self.upstreams) == 1:
            return self.upstreams
        if self.policy == "random":
            ordered = random.sample(self.upstreams, len(self.upstreams))
        elif self.policy == "round_robin":
            start = next(self._turn) % len(self.upstreams)
            ordered = self.upstreams[start:] + self.upstreams[:start]
        else:
            ordered = list(self.upstreams)
        healthy = [u for u in ordered if not self.down(u)]
        return healthy + [u for u in ordered if u not in healthy]  # all down: try them anyway

    async def resolve(self, wire: bytes, failed: Upstream | None = None) -> bytes | None:
        """`failed`: an upstream already asked in vain (by the fast path); it counts
        as a failure here and is not asked again."""
        if failed is not None:
            self.failed[failed] += 1
            self._start_checking(failed)
        for upstream in self.order():
            if upstream == failed:
                continue
            self.sent[upstream] += 1
            try:
                return await self._exchange(upstream, wire, self.timeout)
            except (asyncio.TimeoutError, OSError):
                self.failed[upstream] += 1
                self._start_checking(upstream)
        return None

    async def _exchange(self, upstream: Upstream, wire: bytes, timeout: float) -> bytes:
        reply = await self._udp(upstream, wire, timeout)
        if len(reply) > 2 and reply[2] & 0x02:  # TC: ask again over TCP
            reply = await asyncio.wait_for(self._tcp(upstream, wire), timeout)
        return reply

    def _start_checking(self, upstream: Upstream) -> None:
        if self.max_fails > 0 and upstream not in self._checking:
            task = asyncio.get_running_loop().create_task(self._check_until_healthy(upstream))
            self._checking[upstream] = task  # held here until done: asyncio keeps only weak references
            task.add_done_callback(lambda _: self._checking.pop(upstream, None))

    async def _check_until_healthy(self, upstream: Upstream) -> None:
        probe = dns.message.make_query(".", dns.rdatatype.NS)
        while True:
            probe.id = random.getrandbits(16)
            try:
                await self._exchange(upstream, probe.to_wire(), CHECK_TIMEOUT)
            except (asyncio.TimeoutError, OSError):
                self._fails[upstream] += 1
                self.failed_checks[upstream] += 1
                await asyncio.sleep(self.health_check)
                continue
            self._fails[upstream] = 0  # any answer, even an error, means it is there
            return

    async def _udp(self, upstream: Upstream, wire: bytes, timeout: float) -> bytes:
        sock = await self._socket(upstream)
        answer = sock.ask(wire)
        timer = asyncio.get_running_loop().call_later(timeout, _time_out, answer)
        try:
            reply = await answer
        except BaseException:
            sock.close()  # its state is unknown: a reply may still be on its way
            raise
        finally:
            timer.cancel()
        sock.idle_since = time.monotonic()
        self._idle[upstream].append(sock)
        return reply

    async def _socket(self, upstream: Upstream) -> _Socket:
        """The socket used last, if it is fresh; sockets unused for `expire` go."""
        idle, now = self._idle[upstream], time.monotonic()
        while idle and now - idle[0].idle_since > self.expire:
            idle.popleft().close()
        if idle:
            return idle.pop()
        _, sock = await asyncio.get_running_loop().create_datagram_endpoint(_Socket, remote_addr=upstream)
        return sock

    @staticmethod
    async def _tcp(upstream: Upstream, wire: bytes) -> bytes:
        reader, writer = await asyncio.open_connection(*upstream)
        try:
            writer.write(struct.pack("!H", len(wire)) + wire)
            await writer.drain()
            (length,) = struct.unpack("!H", await reader.readexactly(2))
            return await reader.readexactly(length)
        finally:
            writer.close()


def _time_out(answer: asyncio.Future[bytes]) -> None:
    if not answer.done():
        answer.set_exception(asyncio.TimeoutError())
