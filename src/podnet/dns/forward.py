"""Asking upstream servers what the cluster zone does not hold.

Upstreams are tried in the policy's order (random, round_robin or sequential, as
CoreDNS's forward plugin names them), the next one when one fails; a truncated
UDP answer is asked again over TCP. Health is checked as CoreDNS checks it: an
upstream that failed is asked `. IN NS` every `health_check` seconds until it
answers (any answer will do); after more than `max_fails` checks in a row
without one it is down, and queries go to the others until it answers again.
When every upstream is down, they are all tried anyway.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import struct
from collections import Counter

import dns.message
import dns.rdatatype

POLICIES = ("random", "round_robin", "sequential")
HEALTH_CHECK = 0.5  # seconds between the checks of a failing upstream (CoreDNS's default)
MAX_FAILS = 2
CHECK_TIMEOUT = 1.0
Upstream = tuple[str, int]


class _Reply(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, _: tuple[str, int]) -> None:
        if not self.answer.done():
            self.answer.set_result(data)

    def error_received(self, exc: Exception) -> None:
        """ICMP port unreachable: nobody listens there, so do not wait for the timeout."""
        if not self.answer.done():
            self.answer.set_exception(exc)


class Forwarder:
    def __init__(self, upstreams: list[Upstream], policy: str = "random", timeout: float = 2.0,
                 health_check: float = HEALTH_CHECK, max_fails: int = MAX_FAILS) -> None:
        if policy not in POLICIES:
            raise ValueError(f"unknown policy {policy!r} (one of {', '.join(POLICIES)})")
        self.upstreams = upstreams
        self.policy = policy
        self.timeout = timeout
        self.health_check = health_check
        self.max_fails = max_fails  # 0: never down, never checked
        self.sent: Counter[Upstream] = Counter()
        self.failed: Counter[Upstream] = Counter()
        self.failed_checks: Counter[Upstream] = Counter()
        self._turn = itertools.count()
        self._fails: Counter[Upstream] = Counter()  # checks failed in a row
        self._checking: dict[Upstream, asyncio.Task[None]] = {}

    def down(self, upstream: Upstream) -> bool:
        return self.max_fails > 0 and self._fails[upstream] > self.max_fails

    def order(self) -> list[Upstream]:
        if self.policy == "random":
            ordered = random.sample(self.upstreams, len(self.upstreams))
        elif self.policy == "round_robin":
            start = next(self._turn) % len(self.upstreams)
            ordered = self.upstreams[start:] + self.upstreams[:start]
        else:
            ordered = list(self.upstreams)
        healthy = [u for u in ordered if not self.down(u)]
        return healthy + [u for u in ordered if u not in healthy]  # all down: try them anyway

    async def resolve(self, wire: bytes) -> bytes | None:
        for upstream in self.order():
            self.sent[upstream] += 1
            try:
                return await self._exchange(upstream, wire, self.timeout)
            except (asyncio.TimeoutError, OSError):
                self.failed[upstream] += 1
                self._start_checking(upstream)
        return None

    async def _exchange(self, upstream: Upstream, wire: bytes, timeout: float) -> bytes:
        reply = await asyncio.wait_for(self._udp(upstream, wire), timeout)
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

    @staticmethod
    async def _udp(upstream: Upstream, wire: bytes) -> bytes:
        transport, protocol = await asyncio.get_running_loop().create_datagram_endpoint(_Reply, remote_addr=upstream)
        try:
            transport.sendto(wire)
            return await protocol.answer
        finally:
            transport.close()

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
