"""KubeletServer: the kubelet's TLS endpoint for exec, attach, port-forward and
container logs, which the API server reaches with its own client certificate.

A thread per connection. The TLS handshake requires a certificate the client CA
signed (anything else fails the handshake); a verified certificate whose common
name is not among the allowed clients gets 403 Forbidden on every request, as the
kubelet's authorizer answers, so the API server's error says why."""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time

from podnet.errors import PodnetError
from podnet.streaming import routes
from podnet.streaming.http1 import BadRequest, HttpConnection, Refusal, Request
from podnet.streaming.routes import Call
from podnet.streaming.runtime import ContainerRuntime, StreamError
from podnet.streaming.transport import TlsTransport

log = logging.getLogger("podnet.streaming")

HANDSHAKE_TIMEOUT = 10.0
REQUEST_TIMEOUT = 60.0  # for a request's headers, and between requests on a kept-alive connection


class KubeletServer:
    def __init__(self, runtime: ContainerRuntime, address: tuple[str, int], cert_file: str, key_file: str,
                 client_ca_file: str, allowed_clients: frozenset[str]) -> None:
        self.runtime = runtime
        self.address = address
        self.allowed_clients = allowed_clients
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            self.context.load_cert_chain(cert_file, key_file)
            self.context.load_verify_locations(client_ca_file)
        except (OSError, ssl.SSLError) as err:
            raise PodnetError(f"cannot load the kubelet's certificate {cert_file}, key {key_file} "
                              f"or client CA {client_ca_file}: {err}") from None
        self.context.verify_mode = ssl.CERT_REQUIRED
        self._listener: socket.socket | None = None
        self._port = address[1]
        self._connections: set[TlsTransport] = set()
        self._lock = threading.Lock()
        self._stopping = False

    def start(self) -> KubeletServer:
        """Listen, and serve on daemon threads; returns once listening."""
        host, port = self.address
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            self._listener = socket.create_server((host, port), family=family, backlog=128)
        except OSError as err:
            raise PodnetError(f"the kubelet cannot listen on {host}:{port}: {err.strerror or err}") from None
        self._port = int(self._listener.getsockname()[1])
        threading.Thread(target=self._accept, name="kubelet-server", daemon=True).start()
        return self

    @property
    def connections(self) -> int:
        """Connections open now (requests being read, and sessions)."""
        with self._lock:
            return len(self._connections)

    @property
    def port(self) -> int:
        """The port listened on (the one chosen, when started on port 0)."""
        return self._port

    def stop(self) -> None:
        """Stop listening and cut every connection (sessions end, their processes are killed)."""
        with self._lock:
            self._stopping = True
            connections = list(self._connections)
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
            except OSError:
                pass
            self._listener.close()
        for transport in connections:
            transport.close()

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                if self._stopping:
                    return
                time.sleep(0.05)  # a connection gone before we took it, or no descriptor left: not a spin
                continue
            threading.Thread(target=self._serve, args=(sock,), name="kubelet-connection", daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport = TlsTransport(sock, self.context)
        with self._lock:
            if self._stopping:
                transport.close()
                return
            self._connections.add(transport)
        try:
            transport.handshake(HANDSHAKE_TIMEOUT)
            self._serve_requests(transport, transport.peer_common_name())
        except (ssl.SSLError, ConnectionError, OSError) as err:
            log.debug("kubelet connection ended: %s", err)
        except Exception:  # a bug: this connection ends, the server goes on
            log.exception("kubelet connection failed")
        finally:
            with self._lock:
                self._connections.discard(transport)
            transport.close()

    def _serve_requests(self, transport: TlsTransport, client: str | None) -> None:
        http = HttpConnection(transport)
        while True:
            transport.set_timeout(REQUEST_TIMEOUT)
            try:
                request = http.next_request()
            except BadRequest as err:
                http.refuse(400, f"400 Bad Request: {err}")
                return
            transport.set_timeout(None)
            if request is None:
                return
            if client not in self.allowed_clients:
                verb = "create" if request.method == "POST" else "get"
                http.error(403, f"Forbidden (user={client}, verb={verb}, resource=nodes, subresource=proxy)")
            elif self._dispatch(http, request):
                return  # the connection was handed over, and its session has ended
            if not http.keep_alive:
                return

    def _dispatch(self, http: HttpConnection, request: Request) -> bool:
        try:
            route, args = routes.find(request)
            return route.handle(Call(self.runtime, http, request, args))
        except StreamError as err:
            http.error(err.code, err.message)
        except Refusal as err:
            http.error(err.status, str(err), err.headers)
        return False
