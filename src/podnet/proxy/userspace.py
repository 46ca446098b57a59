"""The userspace proxy: kube-proxy's --proxy-mode userspace, and the one place the
IPVS schedulers run on a kernel without IPVS.

One proxy per service port, on an asyncio loop: it accepts on the ClusterIP
(which the node holds on its loopback), asks the port's scheduler for a server,
connects, and relays. TCP bytes move with os.splice (socket -> pipe -> socket,
never through Python), driven by the loop's readiness callbacks rather than a
thread per connection; UDP is relayed per client with an idle timeout. Connection counts feed the schedulers, and a closed connection
counts as inactive for TIME_WAIT seconds, as in IPVS.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from dataclasses import dataclass

from podnet.proxy.endpoints import Endpoint
from podnet.proxy.schedulers import Scheduler, Server, scheduler

log = logging.getLogger("podnet.proxy.userspace")
TIME_WAIT = 120.0
UDP_IDLE = 30.0
_CHUNK = 1 << 16


@dataclass(frozen=True)
class PortSpec:
    """What one userspace proxy serves."""

    name: str
    address: str
    port: int
    protocol: str  # "tcp" or "udp"
    scheduler: str
    endpoints: tuple[Endpoint, ...]


async def _ready(fd: int, writable: bool) -> None:
    """Until fd can be read (or written), on the running loop, without a thread."""
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    add, remove = (loop.add_writer, loop.remove_writer) if writable else (loop.add_reader, loop.remove_reader)
    add(fd, lambda: ready.done() or ready.set_result(None))
    try:
        await ready
    finally:
        remove(fd)


async def pump(source: socket.socket, target: socket.socket) -> None:
    """Move bytes from source to target through a pipe with splice(2), never
    copying them into Python, until source's end closes; then close target's."""
    read_end, write_end = os.pipe()
    flags = os.SPLICE_F_NONBLOCK | os.SPLICE_F_MOVE
    try:
        while True:
            try:
                moved = os.splice(source.fileno(), write_end, _CHUNK, flags=flags)
            except BlockingIOError:
                await _ready(source.fileno(), writable=False)
                continue
            if moved == 0:
                break
            while moved:
                try:
                    moved -= os.splice(read_end, target.fileno(), moved, flags=flags)
                except BlockingIOError:
                    await _ready(target.fileno(), writable=True)
    except OSError:
        pass
    finally:
        os.close(read_end)
        os.close(write_end)
        try:
            target.shutdown(socket.SHUT_WR)
        except OSError:
            pass


class PortProxy:
    def __init__(self, spec: PortSpec) -> None:
        self.spec = spec
        self.servers: dict[str, Server] = {}
        self.chooser: Scheduler = scheduler(spec.scheduler, [])
        self.update(spec)
        self._listener: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None
        self._udp: asyncio.DatagramTransport | None = None

    def update(self, spec: PortSpec) -> None:
        """New endpoints or weights; servers that stay keep their counts."""
        if spec.scheduler != self.spec.scheduler:
            self.chooser = scheduler(spec.scheduler, [])
        self.spec = spec
        current = {}
        for endpoint in spec.endpoints:
            address = f"{endpoint.ip}:{endpoint.port}"
            server = self.servers.get(address) or Server(address)
            server.weight = endpoint.weight
            current[address] = server
        self.servers = current
        self.chooser.servers = list(current.values())

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.spec.protocol == "udp":
            self._udp, _ = await loop.create_datagram_endpoint(
                lambda: _UdpFrontend(self), local_addr=(self.spec.address, self.spec.port))
            return
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.spec.address, self.spec.port))
        listener.listen(1024)
        listener.setblocking(False)
        self._listener = listener
        self._task = asyncio.create_task(self._accept_loop())

    def close(self) -> None:
        if self._task:
            self._task.cancel()
        if self._listener:
            self._listener.close()
        if self._udp:
            self._udp.close()

    def pick(self, client: str) -> Server | None:
        return self.chooser.pick(client, self.spec.address)

    def connection_closed(self, server: Server) -> None:
        server.active -= 1
        server.inactive += 1
        asyncio.get_running_loop().call_later(TIME_WAIT, self._forget_inactive, server)

    @staticmethod
    def _forget_inactive(server: Server) -> None:
        server.inactive -= 1

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._listener is not None
        while True:
            client, peer = await loop.sock_accept(self._listener)
            asyncio.create_task(self._relay(client, peer[0]))

    async def _relay(self, client: socket.socket, client_ip: str) -> None:
        loop = asyncio.get_running_loop()
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

        async def client_to_server() -> None:
            await pump(client, upstream)
            release()

        upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        upstream.setblocking(False)
        try:
            host, port = server.address.rsplit(":", 1)
            await loop.sock_connect(upstream, (host, int(port)))
            client.setblocking(False)
            await asyncio.gather(client_to_server(), pump(upstream, client))
        except OSError as err:
            log.info("%s: %s unreachable: %s", self.spec.name, server.address, err)
        finally:
            client.close()
            upstream.close()
            release()


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
