"""Asking upstream servers what the cluster zone does not hold.

Upstreams are tried in the policy's order (random, round_robin or sequential, as
CoreDNS's forward plugin names them); one that times out is left alone for a
while (its health check is the next query after that), and a truncated UDP
answer is asked again over TCP.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import struct
import time
from collections import Counter

POLICIES = ("random", "round_robin", "sequential")
HOLD_DOWN = 5.0


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
    def __init__(self, upstreams: list[tuple[str, int]], policy: str = "random", timeout: float = 2.0,
                 hold_down: float = HOLD_DOWN) -> None:
        if policy not in POLICIES:
            raise ValueError(f"unknown policy {policy!r} (one of {', '.join(POLICIES)})")
        self.upstreams = upstreams
        self.policy = policy
        self.timeout = timeout
        self.hold_down = hold_down
        self.sent: Counter[tuple[str, int]] = Counter()
        self.failed: Counter[tuple[str, int]] = Counter()
        self._turn = itertools.count()
        self._down_until: dict[tuple[str, int], float] = {}

    def order(self) -> list[tuple[str, int]]:
        if self.policy == "random":
            ordered = random.sample(self.upstreams, len(self.upstreams))
        elif self.policy == "round_robin":
            start = next(self._turn) % len(self.upstreams)
            ordered = self.upstreams[start:] + self.upstreams[:start]
        else:
            ordered = list(self.upstreams)
        now = time.monotonic()
        healthy = [u for u in ordered if self._down_until.get(u, 0) <= now]
        return healthy + [u for u in ordered if u not in healthy]  # all down: try them anyway

    async def resolve(self, wire: bytes) -> bytes | None:
        for upstream in self.order():
            self.sent[upstream] += 1
            try:
                reply = await asyncio.wait_for(self._udp(upstream, wire), self.timeout)
                if len(reply) > 2 and reply[2] & 0x02:  # TC: ask again over TCP
                    reply = await asyncio.wait_for(self._tcp(upstream, wire), self.timeout)
                self._down_until.pop(upstream, None)
                return reply
            except (asyncio.TimeoutError, OSError):
                self.failed[upstream] += 1
                self._down_until[upstream] = time.monotonic() + self.hold_down
        return None

    @staticmethod
    async def _udp(upstream: tuple[str, int], wire: bytes) -> bytes:
        transport, protocol = await asyncio.get_running_loop().create_datagram_endpoint(_Reply, remote_addr=upstream)
        try:
            transport.sendto(wire)
            return await protocol.answer
        finally:
            transport.close()

    @staticmethod
    async def _tcp(upstream: tuple[str, int], wire: bytes) -> bytes:
        reader, writer = await asyncio.open_connection(*upstream)
        try:
            writer.write(struct.pack("!H", len(wire)) + wire)
            await writer.drain()
            (length,) = struct.unpack("!H", await reader.readexactly(2))
            return await reader.readexactly(length)
        finally:
            writer.close()
