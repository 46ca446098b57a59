"""The userspace proxy's TCP relay on real sockets: bytes arrive whole both ways,
a half-closed client still gets the server's answer, and pipes are reused."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import threading

from podnet.kernel import netns
from podnet.proxy.endpoints import Endpoint
from podnet.proxy.userspace import PortProxy, PortSpec

ANSWER = os.urandom(3 << 20)


def _server(listener: socket.socket) -> None:
    """Reads until the client's FIN, then answers with the digest and 3 MB."""
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            digest = hashlib.sha256()
            while chunk := conn.recv(1 << 16):
                digest.update(chunk)
            conn.sendall(digest.digest() + ANSWER)


def _exchange(payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", 9080), timeout=10) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        received = bytearray()
        while chunk := sock.recv(1 << 16):
            received += chunk
        return bytes(received)


def test_bytes_arrive_whole_both_ways_after_a_half_close(make_netns) -> None:  # type: ignore[no-untyped-def]
    name = make_netns()
    netns.run(name, ["ip", "link", "set", "lo", "up"])

    def run() -> tuple[list[bytes], list[bytes]]:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 9081))
        listener.listen(64)
        threading.Thread(target=_server, args=(listener,), daemon=True).start()
        payloads = [os.urandom(size) for size in (0, 10, 5 << 20)] * 2

        async def main() -> tuple[list[bytes], PortProxy]:
            proxy = PortProxy(PortSpec("t", "127.0.0.1", 9080, "tcp", "rr",
                                       (Endpoint("127.0.0.1", 9081, "server", None, True),)))
            await proxy.start()
            loop = asyncio.get_running_loop()
            results = [await loop.run_in_executor(None, _exchange, payload) for payload in payloads]
            proxy.close()
            return results, proxy

        results, proxy = asyncio.run(main())
        listener.close()
        assert all(server.active == 0 for server in proxy.servers.values())
        return [hashlib.sha256(p).digest() + ANSWER for p in payloads], results

    expected, results = netns.run_in(name, run)
    assert [len(r) for r in results] == [len(e) for e in expected]
    assert results == expected


def test_each_family_has_its_listener_and_connects_to_endpoints_of_its_family(make_netns) -> None:  # type: ignore[no-untyped-def]
    """A ClusterIP of each family, held on lo, and a node port on both `0.0.0.0`
    and `::` at once; each relays to an endpoint of its own family."""
    name = make_netns()
    netns.run(name, ["ip", "link", "set", "lo", "up"])
    netns.run(name, ["ip", "addr", "add", "fd00:10:96::2/128", "dev", "lo"])
    netns.run(name, ["ip", "addr", "add", "10.96.0.2/32", "dev", "lo"])

    def run() -> dict[str, str]:
        servers = []
        echo = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        echo.bind(("::1", 9081))
        servers.append(echo)
        threading.Thread(target=_echo_own_address, args=(echo,), daemon=True).start()
        for family, address in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
            listener = socket.socket(family)
            listener.bind((address, 9081))
            listener.listen(64)
            servers.append(listener)
            threading.Thread(target=_answer_with_own_address, args=(listener,), daemon=True).start()

        def to(ip: str) -> tuple[Endpoint, ...]:
            return (Endpoint(ip, 9081, "server", None, True),)

        async def main() -> dict[str, str]:
            proxies = [PortProxy(PortSpec("udp6", "fd00:10:96::2", 53, "udp", "rr", to("::1"))),
                       PortProxy(PortSpec("v4", "10.96.0.2", 80, "tcp", "rr", to("127.0.0.1"))),
                       PortProxy(PortSpec("v6", "fd00:10:96::2", 80, "tcp", "rr", to("::1"))),
                       PortProxy(PortSpec("np", "0.0.0.0", 30080, "tcp", "rr", to("127.0.0.1"))),
                       PortProxy(PortSpec("np6", "::", 30080, "tcp", "rr", to("::1")))]
            for proxy in proxies:
                await proxy.start()
            loop = asyncio.get_running_loop()
            asked = {}
            for address, port in (("10.96.0.2", 80), ("fd00:10:96::2", 80), ("127.0.0.1", 30080), ("::1", 30080)):
                asked[f"{address}:{port}"] = await loop.run_in_executor(None, _ask, address, port)
            asked["udp fd00:10:96::2:53"] = await loop.run_in_executor(None, _ask_udp, "fd00:10:96::2", 53)
            for proxy in proxies:
                proxy.close()
            return asked

        try:
            return asyncio.run(main())
        finally:
            for listener in servers:
                listener.close()

    assert netns.run_in(name, run) == {"10.96.0.2:80": "127.0.0.1", "fd00:10:96::2:80": "::1",
                                       "127.0.0.1:30080": "127.0.0.1", "::1:30080": "::1",
                                       "udp fd00:10:96::2:53": "::1"}


def _answer_with_own_address(listener: socket.socket) -> None:
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            conn.sendall(conn.getsockname()[0].encode())


def _ask(address: str, port: int) -> str:
    with socket.create_connection((address, port), timeout=5) as sock:
        return sock.recv(100).decode()


def _echo_own_address(sock: socket.socket) -> None:
    while True:
        try:
            _, peer = sock.recvfrom(100)
        except OSError:
            return
        sock.sendto(sock.getsockname()[0].encode(), peer)


def _ask_udp(address: str, port: int) -> str:
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(b"?", (address, port))
        return sock.recv(100).decode()
