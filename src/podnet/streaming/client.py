"""The client's side of the kubelet's SPDY endpoints, as kubectl 1.20 speaks it:
the upgrade, then streams. For tests and benchmarks that drive the server
without kubectl."""

from __future__ import annotations

import socket
import ssl
import threading
from dataclasses import dataclass

from podnet.streaming.spdy_session import SpdySession
from podnet.streaming.transport import Replayed, TlsTransport


class UpgradeRefused(Exception):
    """The server answered the upgrade with a status other than 101."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"{status}: {body.strip()}")
        self.status = status
        self.body = body


@dataclass
class SpdyClient:
    session: SpdySession
    protocol: str  # the X-Stream-Protocol-Version the server chose

    def close(self) -> None:
        self.session.close()


def connect(address: tuple[str, int], context: ssl.SSLContext, target: str, protocols: tuple[str, ...],
            method: str = "POST") -> SpdyClient:
    """Upgrade target (a path and query) to SPDY/3.1; the session's reader runs on a thread of its own."""
    sock = socket.create_connection(address)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    transport = TlsTransport(sock, context, server_hostname=address[0])
    try:
        transport.handshake(10)
        request = [f"{method} {target} HTTP/1.1", f"Host: {address[0]}", "Content-Length: 0",
                   "Connection: Upgrade", "Upgrade: SPDY/3.1"]
        request += [f"X-Stream-Protocol-Version: {name}" for name in protocols]
        transport.sendall(("\r\n".join(request) + "\r\n\r\n").encode())
        status, headers, rest = _read_response(transport)
    except BaseException:
        transport.close()
        raise
    if status != 101:
        transport.close()
        raise UpgradeRefused(status, rest.decode("utf-8", "replace"))
    session = SpdySession(Replayed(transport, rest), client=True)
    threading.Thread(target=session.serve, name="spdy-client", daemon=True).start()
    return SpdyClient(session, headers.get("x-stream-protocol-version", ""))


def _read_response(transport: TlsTransport) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = transport.recv()
        if not chunk:
            raise ConnectionError("the server closed the connection before answering")
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    if "content-length" in headers:
        while len(rest) < int(headers["content-length"]):
            chunk = transport.recv()
            if not chunk:
                break
            rest += chunk
    return int(lines[0].split(" ")[1]), headers, rest
