"""Port-forwarding: each connection the client forwards becomes a TCP connection to
127.0.0.1:PORT inside the pod's network namespace, copied both ways.

On SPDY a connection is a pair of streams the client opens (headers streamtype
error|data, port, requestID); many connections share one session. On WebSocket
the query's ports each get a data and an error channel, and one connection.
A port nobody listens on is reported on that connection's error stream, in the
kubelet's words; the session carries on."""

from __future__ import annotations

import errno
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from podnet.kernel.netns import run_in_path
from podnet.streaming.channels import ChannelConnection
from podnet.streaming.pipe import Pipe, Sink
from podnet.streaming.spdy_session import SpdySession, SpdyStream
from podnet.streaming.transport import Transport

PROTOCOL = "portforward.k8s.io"
DIAL_TIMEOUT = 10.0
STREAM_PAIR_TIMEOUT = 30.0  # the kubelet's stream creation timeout
READ_SIZE = 64 * 1024
GRACE = 1.0  # once one direction ends, how long the other may take to finish


def parse_port(text: str | None) -> int:
    """A port as the kubelet accepts it: 1-65535; ValueError otherwise."""
    port = int(text or "")
    if not 0 < port < 65536:
        raise ValueError(f"port {text!r} must be between 1 and 65535")
    return port


class Inbound(Protocol):
    """The client's side of a connection: a SPDY data stream, or a WebSocket data channel's pipe."""

    def divert(self, sink: Sink) -> None: ...


class Forwarder:
    """The pod's side of one session: its connections, cut when the session ends."""

    def __init__(self, netns_path: str, pod: str) -> None:
        self.netns_path = netns_path
        self.pod = pod
        self._connections: set[_PodConnection] = set()
        self._lock = threading.Lock()
        self._closed = False

    def forward(self, port: int, inbound: Inbound, send: Callable[[bytes], None]) -> str | None:
        """Copy between the client's stream and a new connection to the pod's port
        until either side ends it, then GRACE for the other side to finish, as
        containerd does; the error to report if the port cannot be reached.

        The client's data is written to the pod by the connection's reader thread
        (diverted), the pod's read and sent to the client by the calling thread:
        one thread per direction, and no hand-off between them."""
        try:
            pod_socket: socket.socket = run_in_path(self.netns_path, socket.create_connection,
                                                    ("127.0.0.1", port), DIAL_TIMEOUT)
        except OSError as err:
            inbound.divert(_discard)  # what the client sends for a connection that does not exist
            return (f"error forwarding port {port} to pod {self.pod}, uid : failed to connect to localhost:{port} "
                    f'inside namespace "{self.netns_path}", IPv4: dial tcp4 127.0.0.1:{port}: {_go_error(err)}')
        connection = _PodConnection(pod_socket)
        with self._lock:
            if self._closed:
                connection.close()
                return None
            self._connections.add(connection)
        inbound.divert(connection.receive)
        connection.copy_out(send)
        with self._lock:
            self._connections.discard(connection)
        connection.close()
        return None

    def close_all(self) -> None:
        with self._lock:
            self._closed = True
            connections = list(self._connections)
        for connection in connections:
            connection.shutdown()


class _PodConnection:
    """A TCP connection in the pod. The socket is closed only while nobody writes
    to it and shut down only while it is open, so neither touches a descriptor
    number that has since been reused."""

    def __init__(self, pod_socket: socket.socket) -> None:
        pod_socket.settimeout(None)
        self._socket = pod_socket
        self._writing = threading.Lock()  # held by receive, and by close
        self._closing = threading.Lock()  # held by shutdown, and by close
        self._closed = False
        self._broken = False
        self._in_done, self._out_done = threading.Event(), threading.Event()

    def receive(self, data: bytes) -> None:
        """The client's data, on the reader's thread; b"" (its end) half-closes the
        pod's connection, and gives the pod GRACE to answer before it is cut."""
        with self._writing:
            if self._closed or self._broken:
                return
            try:
                if data:
                    self._socket.sendall(data)
                else:
                    self._socket.shutdown(socket.SHUT_WR)
            except OSError:
                self._broken = True  # the pod is gone: the rest is dropped
        if not data:
            self._in_done.set()
            if not self._out_done.is_set():
                cut = threading.Timer(GRACE, self.shutdown)
                cut.daemon = True
                cut.start()

    def copy_out(self, send: Callable[[bytes], None]) -> None:
        """The pod's data to the client, until the pod or the client ends it; then
        GRACE for the client's last data to reach the pod."""
        try:
            while data := self._socket.recv(READ_SIZE):
                send(data)
        except (ConnectionError, OSError):
            pass
        self._out_done.set()
        self._in_done.wait(GRACE)

    def shutdown(self) -> None:
        """Cut both directions now: a blocked receive or copy_out returns."""
        with self._closing:
            if not self._closed:
                try:
                    self._socket.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.shutdown()
        with self._writing, self._closing:
            self._closed = True
            self._socket.close()


def _discard(data: bytes) -> None:
    """A sink for data nobody will receive."""


def _go_error(err: OSError) -> str:
    """A dial error as Go words it (connect: connection refused)."""
    if isinstance(err, TimeoutError) or err.errno == errno.ETIMEDOUT:
        return "i/o timeout"
    return f"connect: {(err.strerror or str(err)).lower()}"


@dataclass
class _Pair:
    request_id: str
    streams: dict[str, SpdyStream] = field(default_factory=dict)
    timeout: threading.Timer | None = None


def serve_spdy(transport: Transport, forwarder: Forwarder) -> None:
    """Many connections on one SPDY session, each a pair of streams."""
    pairs: dict[str, _Pair] = {}
    lock = threading.Lock()

    def accept(stream: SpdyStream) -> bool:
        kind = stream.header("streamtype")
        try:
            parse_port(stream.header("port"))
        except ValueError:
            return False
        if kind not in ("error", "data"):
            return False
        # clients older than request IDs open error then data streams with consecutive odd IDs
        request_id = stream.header("requestid") or str(stream.id if kind == "error" else stream.id - 2)
        with lock:
            pair = pairs.setdefault(request_id, _Pair(request_id))
            if kind in pair.streams:
                return False
            pair.streams[kind] = stream
            if len(pair.streams) == 1:
                pair.timeout = threading.Timer(STREAM_PAIR_TIMEOUT, abandon, (pair,))
                pair.timeout.daemon = True
                pair.timeout.start()
                return True
            del pairs[request_id]
        if pair.timeout is not None:
            pair.timeout.cancel()
        threading.Thread(target=forward, args=(pair,), name="portforward", daemon=True).start()
        return True

    def abandon(pair: _Pair) -> None:
        with lock:
            if pairs.get(pair.request_id) is not pair:
                return
            del pairs[pair.request_id]
        if "data" in pair.streams:
            pair.streams["data"].reset()
        if "error" in pair.streams:
            _report(pair.streams["error"], f"timed out waiting for streams of request {pair.request_id}")

    def forward(pair: _Pair) -> None:
        data, error = pair.streams["data"], pair.streams["error"]
        problem = forwarder.forward(parse_port(data.header("port")), data, data.write)
        data.close()
        if problem:
            _report(error, problem)
        else:
            error.close()

    session = SpdySession(transport, accept)
    try:
        session.serve()
    finally:
        with lock:
            waiting = list(pairs.values())
        for pair in waiting:
            if pair.timeout is not None:
                pair.timeout.cancel()
        forwarder.close_all()


def _report(error: SpdyStream, message: str) -> None:
    try:
        error.write(message.encode())
    except ConnectionError:
        pass
    error.close()


def serve_websocket(connection: ChannelConnection, forwarder: Forwarder, ports: list[int]) -> None:
    """One connection per requested port, on channels 2i (data) and 2i+1 (error)."""
    inputs = {2 * index: Pipe() for index in range(len(ports))}
    for index, port in enumerate(ports):
        for channel in (2 * index, 2 * index + 1):
            connection.send(channel, struct.pack("<H", port))

    def forward(index: int, port: int) -> None:
        def send(data: bytes) -> None:
            connection.send(2 * index, data)

        problem = forwarder.forward(port, inputs[2 * index], send)
        if problem:
            try:
                connection.send(2 * index + 1, problem.encode())
            except ConnectionError:
                pass

    def forward_all() -> None:
        workers = [threading.Thread(target=forward, args=(index, port), name="portforward", daemon=True)
                   for index, port in enumerate(ports)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        try:
            connection.ws.close()  # every connection is done: so is the session, as the kubelet ends it
        except ConnectionError:
            pass

    threading.Thread(target=forward_all, name="portforward-ws", daemon=True).start()
    connection.run(inputs)
    for pipe in inputs.values():
        pipe.abort()
    forwarder.close_all()
    connection.ws.transport.close()
