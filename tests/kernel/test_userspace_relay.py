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
