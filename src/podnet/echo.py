"""The default pod command: an HTTP echo server, like httpbin's /get.

It answers every request with who it is (pod, namespace, node, IP) and what it
received, including the caller's address as seen on the wire, which is how a
lab shows there is no NAT between pods. Standard library only: thirty of these
start in a lab, so each must start fast and stay small.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


LAME_DUCK = 1.0  # seconds of serving on after SIGTERM: longer than endpoints take to leave every node


def _plain(address: str) -> str:
    """An IPv4 client of the dual-stack socket, as IPv4 ("::ffff:10.0.0.1" -> "10.0.0.1")."""
    return address.removeprefix("::ffff:")


class EchoHandler(BaseHTTPRequestHandler):
    server_version = "podnet-echo"
    protocol_version = "HTTP/1.1"  # keep-alive, so a test can hold a connection open

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode(errors="replace") if length else ""
        url = urlsplit(self.path)
        reply = {
            "pod": os.environ.get("POD_NAME", socket.gethostname()),
            "namespace": os.environ.get("POD_NAMESPACE", ""),
            "node": os.environ.get("NODE_NAME", ""),
            "ip": os.environ.get("POD_IP") or _plain(self.connection.getsockname()[0]),
            "origin": _plain(self.client_address[0]),
            "method": self.command,
            "path": url.path,
            "args": {key: values[-1] for key, values in parse_qs(url.query).items()},
            "headers": dict(self.headers.items()),
            "url": f"http://{self.headers.get('Host', '')}{self.path}",
        }
        if body:
            reply["data"] = body
        payload = (json.dumps(reply, indent=2) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass  # a lab has dozens of these; their logs would only be noise


class DualStackServer(ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True

    def __init__(self, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.open_connections = 0
        self._count = threading.Lock()

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()

    def process_request_thread(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        with self._count:
            self.open_connections += 1
        try:
            super().process_request_thread(request, client_address)  # type: ignore[arg-type]
        finally:
            with self._count:
                self.open_connections -= 1


def answer_datagrams(port: int) -> None:
    """UDP on the same port: each datagram is answered with who answered and whom,
    which is how a lab shows where a UDP service's packets went."""
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind(("::", port))
    while True:
        data, peer = sock.recvfrom(65535)
        reply = {"pod": os.environ.get("POD_NAME", socket.gethostname()), "origin": _plain(peer[0]),
                 "port": peer[1], "data": data.decode(errors="replace")}
        sock.sendto(json.dumps(reply).encode(), peer)


def serve(ports: Sequence[int], lame_duck: float = LAME_DUCK) -> None:
    """HTTP and UDP on each port, until SIGTERM; then, as a well-behaved pod: new
    connections are still taken for lame_duck seconds (while the Services'
    endpoints drain, so none is refused in between), and the process ends once
    the connections it holds close, or when the kubelet's SIGKILL comes at the
    end of the grace period."""
    stopping: list[int] = []  # a plain flag: a handler that took a lock (Event.set) could interrupt its own
    signal.signal(signal.SIGTERM, lambda signum, _: stopping.append(signum))  # holder, and wait for itself for ever
    servers = []
    for port in ports:
        try:
            server = DualStackServer(("::", port), EchoHandler)
        except OSError as err:  # another container of the pod has it: its log says so, in one line
            raise SystemExit(f"podnet echo: port {port}: {err.strerror}") from None
        threading.Thread(target=answer_datagrams, args=(port,), daemon=True).start()
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    while not stopping:
        time.sleep(0.05)
    time.sleep(lame_duck)
    for server in servers:
        server.shutdown()
        server.server_close()
    while any(server.open_connections for server in servers):
        time.sleep(0.05)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="podnet echo", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, action="append", help="repeat for several (default: $ECHO_PORT or 80)")
    serve(parser.parse_args(argv).port or [int(os.environ.get("ECHO_PORT", 80))])


if __name__ == "__main__":
    main()
