"""The userspace proxy: kube-proxy's --proxy-mode userspace, and the one place the
IPVS schedulers run on a kernel without IPVS.

One proxy per service port, on an asyncio loop: it accepts on the ClusterIP
(which the node holds on its loopback), asks the port's scheduler for a server,
connects, and relays (relay.py: splice(2), on an epoll set the loop watches as
one file descriptor, with no task per connection); UDP is relayed per client with an idle
timeout. Connection counts feed the schedulers, and a closed connection counts
as inactive for TIME_WAIT seconds, as in IPVS.

A proxy listens on one address of one family (an IPv6 one only for IPv6, so
that `::` and `0.0.0.0` can both hold a node port) and connects to endpoints of
that family.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections import deque
from dataclasses import dataclass

from podnet.proxy.endpoints import Endpoint
from podnet.proxy.relay import Hub, Relay
from podnet.proxy.schedulers import Scheduler, Server, scheduler

log = logging.getLogger("podnet.proxy.userspace")
TIME_WAIT = 120.0
UDP_IDLE = 30.0


@dataclass(frozen=True)
class PortSpec:
    """What one userspace proxy serves."""

    name: str
    address: str
    port: int
    protocol: str  # "tcp" or "udp"
    scheduler: str
    endpoints: tuple[Endpoint, ...]
    affinity_seconds: int | None = None  # sessionAffinity: ClientIP
    sources: tuple[str, ...] = ()  # loadBalancerSourceRanges: others are refused


class PortProxy:
    def __init__(self, spec: PortSpec) -> None:
        self.spec = spec
        self.servers: dict[str, Server] = {}
        self.chooser: Scheduler = scheduler(spec.scheduler, [])
        self.update(spec)
        self._listener: socket.socket | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._inactive: deque[tuple[float, Server]] = deque()  # (when it is forgotten, server)
        self._expiry: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # kept: get_running_loop() costs a getpid()
        self._sticky: dict[str, tuple[Server, float]] = {}  # client IP -> its server, until when

    def update(self, spec: PortSpec) -> None:
        """New endpoints or weights; servers that stay keep their counts."""
        if spec.scheduler != self.spec.scheduler:
            self.chooser = scheduler(spec.scheduler, [])
        self.spec = spec
        self._sources = tuple(ipaddress.ip_network(cidr, strict=False) for cidr in spec.sources)
        current = {}
        for endpoint in spec.endpoints:
            address = f"{endpoint.ip}:{endpoint.port}"
            server = self.servers.get(address) or Server(address)
            server.weight = endpoint.weight
            current[address] = server
        self.servers = current
        self.chooser.servers = list(current.values())

    async def start(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        if self.spec.protocol == "udp":
            self._udp, _ = await loop.create_datagram_endpoint(
                lambda: _UdpFrontend(self), sock=bound(self.spec.address, self.spec.port, socket.SOCK_DGRAM))
            return
        listener = bound(self.spec.address, self.spec.port, socket.SOCK_STREAM)
        listener.listen(1024)
        self._listener = listener
        loop.add_reader(listener.fileno(), self._accept, Hub.of(loop))

    def close(self) -> None:
        if self._listener:
            asyncio.get_running_loop().remove_reader(self._listener.fileno())
            self._listener.close()
        if self._udp:
            self._udp.close()
        if self._expiry:
            self._expiry.cancel()

    def pick(self, client: str) -> Server | None:
        """The scheduler's choice, or with ClientIP affinity the client's last server
        while it serves and the client came back within the timeout."""
        if self._sources and not any(ipaddress.ip_address(client) in cidr for cidr in self._sources):
            return None
        if not self.spec.affinity_seconds:
            return self.chooser.pick(client, self.spec.address)
        now = time.monotonic()
        server, until = self._sticky.get(client, (None, 0.0))
        if server is None or until < now or self.servers.get(server.address) is not server:
            server = self.chooser.pick(client, self.spec.address)
            if server is None:
                return None
        if len(self._sticky) > 4096:  # forget clients gone quiet, now and then
            self._sticky = {ip: kept for ip, kept in self._sticky.items() if kept[1] >= now}
        self._sticky[client] = (server, now + self.spec.affinity_seconds)
        return server

    def connection_closed(self, server: Server) -> None:
        """Inactive until TIME_WAIT has passed. The deadlines come in order, so one
        queue and one timer serve them all (a timer each made asyncio's heap as long
        as the connections of the last two minutes)."""
        server.active -= 1
        server.inactive += 1
        loop = self._loop
        assert loop is not None, "connections are counted only once started"
        self._inactive.append((loop.time() + TIME_WAIT, server))
        if self._expiry is None:
            self._expiry = loop.call_at(self._inactive[0][0], self._forget_inactive, loop)

    def _forget_inactive(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        while self._inactive and self._inactive[0][0] <= now:
            self._inactive.popleft()[1].inactive -= 1
        self._expiry = loop.call_at(self._inactive[0][0], self._forget_inactive, loop) if self._inactive else None

    def _accept(self, hub: Hub) -> None:
        """Every connection waiting, each handed to a Relay (no task per connection)."""
        assert self._listener is not None
        for _ in range(64):
            try:
                client, peer = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as err:  # out of file descriptors, say: the next readiness tries again
                log.warning("%s: accept failed: %s", self.spec.name, err)
                return
            self._relay(hub, client, peer[0])

    def _relay(self, hub: Hub, client: socket.socket, client_ip: str) -> None:
        server = self.pick(client_ip)
        if server is None:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            client.close()  # no endpoint: a reset, as the nftables mode's reject
            return
        server.active += 1
        released = False

        def release() -> None:
            """Once the client has closed its side the connection is inactive, as a
            connection in FIN_WAIT is to IPVS, whatever the server still sends."""
            nonlocal released
            if not released:
                released = True
                self.connection_closed(server)

        host, port = server.address.rsplit(":", 1)
        Relay(hub, client, (host, int(port)), release)


def bound(address: str, port: int, kind: int) -> socket.socket:
    """A socket of the address's family bound to it; an IPv6 one takes IPv6 only."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, kind)
    try:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((address, port))
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


class _UdpFrontend(asyncio.DatagramProtocol):
    """Each client (address, port) gets a socket of its own towards its server."""

    def __init__(self, proxy: PortProxy) -> None:
        self.proxy = proxy
        self.transport: asyncio.DatagramTransport | None = None
        self.flows: dict[tuple[str, int], tuple[asyncio.DatagramTransport, Server, asyncio.TimerHandle]] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, client: tuple[str, int]) -> None:
        asyncio.create_task(self._forward(data, client))

    async def _forward(self, data: bytes, client: tuple[str, int]) -> None:
        loop = asyncio.get_running_loop()
        flow = self.flows.get(client)
        if flow is None or flow[1].address not in self.proxy.servers:
            server = self.proxy.pick(client[0])
            if server is None:
                return
            host, port = server.address.rsplit(":", 1)
            upstream, _ = await loop.create_datagram_endpoint(
                lambda: _UdpBackend(self, client), remote_addr=(host, int(port)))
            server.active += 1
            flow = (upstream, server, loop.call_later(UDP_IDLE, self._expire, client))
            self.flows[client] = flow
        upstream, server, timer = flow
        timer.cancel()
        self.flows[client] = (upstream, server, loop.call_later(UDP_IDLE, self._expire, client))
        upstream.sendto(data)

    def _expire(self, client: tuple[str, int]) -> None:
        flow = self.flows.pop(client, None)
        if flow:
            flow[0].close()
            self.proxy.connection_closed(flow[1])


class _UdpBackend(asyncio.DatagramProtocol):
    def __init__(self, frontend: _UdpFrontend, client: tuple[str, int]) -> None:
        self.frontend = frontend
        self.client = client

    def datagram_received(self, data: bytes, _: tuple[str, int]) -> None:
        if self.frontend.transport:
            self.frontend.transport.sendto(data, self.client)
