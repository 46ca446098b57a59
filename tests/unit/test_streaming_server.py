"""The kubelet's streaming server on 127.0.0.1, with a throwaway CA and a fake
runtime (commands run here, with no namespace): who may connect, the paths, and
exec, attach, port-forward and logs as kubectl 1.20 (SPDY), kubectl 1.32
(WebSocket, and SPDY tunnelled in WebSocket), the official Python client and our
own SPDY client drive them.

Front, below, is a stub API server for kubectl: discovery, one Running pod, and
the streaming subresources proxied byte for byte to the kubelet's paths, as
podnet's API server does. With record=..., it saved data/streaming/*.bin."""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes import client as kubernetes_client
from kubernetes.stream.ws_client import PortForward, WSClient, create_websocket
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, CloseConnection

from podnet.kernel.netns import OWN
from podnet.lab import certificates
from podnet.streaming import client, spdy
from podnet.streaming.client import SpdyClient, UpgradeRefused
from podnet.streaming.runtime import ExecTarget, LogOptions, StreamError
from podnet.streaming.server import KubeletServer
from podnet.streaming.spdy_session import SpdyStream

DATA = Path(__file__).parent / "data" / "streaming"
APISERVER = "kube-apiserver-kubelet-client"
RECORDED_PORT = 47613  # the pod port in the port-forward recordings


@dataclass(frozen=True)
class Pki:
    directory: Path

    def context(self, stem: str = "apiserver") -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.directory / "ca.crt"))
        context.load_cert_chain(str(self.directory / f"{stem}.crt"), str(self.directory / f"{stem}.key"))
        return context

    def configuration(self, port: int) -> kubernetes_client.Configuration:
        configuration = kubernetes_client.Configuration()
        configuration.host = f"https://127.0.0.1:{port}"
        configuration.ssl_ca_cert = str(self.directory / "ca.crt")
        configuration.cert_file = str(self.directory / "apiserver.crt")
        configuration.key_file = str(self.directory / "apiserver.key")
        return configuration


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca = certificates.authority(directory, "kubelet-test-ca")
    certificates.issue(ca, directory, "kubelet", "node-1", addresses=("127.0.0.1",))
    certificates.issue(ca, directory, "apiserver", APISERVER)
    certificates.issue(ca, directory, "intruder", "system:node:node-2")
    other = certificates.authority(directory / "other", "another-ca")
    certificates.issue(other, directory, "stranger", APISERVER)
    return Pki(directory)


class FakeAttachment:
    """A container whose output is "out" and "err", then whatever stdin brings, until stdin ends."""

    def __init__(self) -> None:
        self.outputs: list[tuple[int, bytes] | None] = [(1, b"out\n"), (2, b"err\n")]
        self.ready = threading.Condition()
        self.closed = False

    def read(self) -> tuple[int, bytes] | None:
        with self.ready:
            self.ready.wait_for(lambda: self.outputs or self.closed)
            return self.outputs.pop(0) if self.outputs else None

    def write_stdin(self, data: bytes) -> None:
        with self.ready:
            self.outputs.append((1, data.upper()))
            self.ready.notify_all()

    def close_stdin(self) -> None:
        with self.ready:
            self.outputs.append(None)
            self.ready.notify_all()

    def close(self) -> None:
        with self.ready:
            self.closed = True
            self.ready.notify_all()


class FakeRuntime:
    def __init__(self) -> None:
        self.log_options: LogOptions | None = None

    def exec_target(self, namespace: str, pod: str, container: str) -> ExecTarget:
        self._check(pod)
        return ExecTarget((), dict(os.environ), "/", OWN)

    def attach(self, namespace: str, pod: str, container: str) -> FakeAttachment:
        self._check(pod)
        return FakeAttachment()

    def pod_netns(self, namespace: str, pod: str) -> str:
        self._check(pod)
        return OWN

    def logs(self, namespace: str, pod: str, container: str, options: LogOptions) -> Iterator[bytes]:
        self._check(pod)
        self.log_options = options
        yield b"first line\n"
        yield b"second line\n"

    def _check(self, pod: str) -> None:
        if pod == "missing":
            raise StreamError(404, f'pods "{pod}" not found')


@pytest.fixture(scope="module")
def runtime() -> FakeRuntime:
    return FakeRuntime()


@pytest.fixture(scope="module")
def server(pki: Pki, runtime: FakeRuntime) -> Iterator[KubeletServer]:
    directory = pki.directory
    kubelet = KubeletServer(runtime, ("127.0.0.1", 0), str(directory / "kubelet.crt"), str(directory / "kubelet.key"),
                            str(directory / "ca.crt"), frozenset({APISERVER})).start()
    yield kubelet
    kubelet.stop()


def get(server: KubeletServer, pki: Pki, path: str, stem: str = "apiserver",
        method: str = "GET") -> tuple[int, http.client.HTTPResponse, str]:
    connection = http.client.HTTPSConnection("127.0.0.1", server.port, context=pki.context(stem), timeout=10)
    connection.request(method, path)
    response = connection.getresponse()
    return response.status, response, response.read().decode()


@pytest.fixture(scope="module")
def echo_server() -> Iterator[int]:
    """A pod's TCP server: echoes what it gets, then closes when the client does."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve(connection: socket.socket) -> None:
        with connection:
            while data := connection.recv(65536):
                connection.sendall(data)

    def accept() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(connection,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield listener.getsockname()[1]
    listener.close()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# -- who may connect, and the paths ------------------------------------------------------------


def test_the_api_servers_certificate_is_served(server: KubeletServer, pki: Pki) -> None:
    assert get(server, pki, "/healthz")[0::2] == (200, "ok")


def test_a_certificate_with_another_common_name_gets_403(server: KubeletServer, pki: Pki) -> None:
    status, _, body = get(server, pki, "/exec/default/p/c?command=true&output=1", stem="intruder", method="POST")
    assert status == 403
    assert body.strip() == ("Forbidden (user=system:node:node-2, verb=create, resource=nodes, subresource=proxy)")


@pytest.mark.parametrize("stem", ["stranger", None], ids=["another CA", "no certificate"])
def test_other_clients_fail_the_tls_handshake(server: KubeletServer, pki: Pki, stem: str | None) -> None:
    context = pki.context(stem) if stem else ssl.create_default_context(cafile=str(pki.directory / "ca.crt"))

    def answered() -> bytes:
        try:
            with socket.create_connection(("127.0.0.1", server.port)) as raw:
                with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                    tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                    return tls.recv(100)  # TLS 1.3: the refusal arrives at the first read
        except (ssl.SSLError, ConnectionError):
            return b""

    assert answered() == b""


PATHS = {
    "unknown path": ("GET", "/pods", 404, "404 page not found"),
    "too few segments": ("POST", "/exec/default/p", 404, "404 page not found"),
    "wrong method": ("PUT", "/healthz", 405, "405: Method Not Allowed"),
    "no command": ("POST", "/exec/default/p/c?output=1", 400, "you must specify at least one command"),
    "no stream": ("POST", "/exec/default/p/c?command=true", 400, "you must specify at least 1 of stdin"),
    "no upgrade": ("POST", "/exec/default/p/c?command=true&output=1", 400, "X-Stream-Protocol-Version is required"),
    "missing pod": ("POST", "/exec/default/missing/c?command=true&output=1", 404, 'pods "missing" not found'),
    "bad tail": ("GET", "/containerLogs/default/p/c?tailLines=-1", 400, 'invalid tailLines "-1"'),
    "bad follow": ("GET", "/containerLogs/default/p/c?follow=maybe", 400, 'invalid follow "maybe"'),
}


@pytest.mark.parametrize("method, path, status, message", PATHS.values(), ids=PATHS.keys())
def test_requests_that_cannot_be_served_get_a_status_and_one_line(
        server: KubeletServer, pki: Pki, method: str, path: str, status: int, message: str) -> None:
    got, _, body = get(server, pki, path, method=method)
    assert got == status and message in body and body.count("\n") == 1


def test_spdy_protocols_are_negotiated_or_refused_with_the_list(server: KubeletServer, pki: Pki) -> None:
    with pytest.raises(UpgradeRefused) as refused:
        client.connect(("127.0.0.1", server.port), pki.context(), "/exec/default/p/c?command=true&output=1",
                       ("v9.channel.k8s.io",))
    assert refused.value.status == 403
    assert "client supports [v9.channel.k8s.io], server accepts [v5.channel.k8s.io v4" in refused.value.body


def test_a_kept_alive_connection_serves_requests_in_turn(server: KubeletServer, pki: Pki) -> None:
    connection = http.client.HTTPSConnection("127.0.0.1", server.port, context=pki.context(), timeout=10)
    for path, status in (("/healthz", 200), ("/nothing", 404), ("/healthz", 200)):
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        assert response.status == status


def test_garbage_instead_of_a_request_is_400(server: KubeletServer, pki: Pki) -> None:
    with socket.create_connection(("127.0.0.1", server.port)) as raw:
        with pki.context().wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(b"\x16\x03 not http\r\n\r\n")
            assert tls.recv(100).startswith(b"HTTP/1.1 400 Bad Request\r\n")


# -- exec ---------------------------------------------------------------------------------------


def spdy_exec(server: KubeletServer, pki: Pki, query: str, kinds: tuple[str, ...],
              protocol: str = "v4.channel.k8s.io") -> tuple[SpdyClient, dict[str, SpdyStream]]:
    """Open the streams in kubectl's order, each once the server has replied to the one before."""
    session = client.connect(("127.0.0.1", server.port), pki.context(), f"/exec/default/p/c?{query}", (protocol,))
    return session, {kind: session.session.open_stream((("streamType", kind),)) for kind in kinds}


def read_all(stream: SpdyStream) -> bytes:
    return b"".join(iter(stream.read, b""))


def test_exec_on_spdy_reports_output_and_the_exit_code(server: KubeletServer, pki: Pki) -> None:
    session, streams = spdy_exec(server, pki, "command=sh&command=-c&command=echo+hi%3B+echo+oops+>%262%3B+exit+3"
                                 "&output=1&error=1", ("error", "stdout", "stderr"))
    assert read_all(streams["stdout"]) == b"hi\n" and read_all(streams["stderr"]) == b"oops\n"
    assert json.loads(read_all(streams["error"])) == {
        "metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
        "message": "command terminated with non-zero exit code: error executing command "
                   "[sh -c echo hi; echo oops >&2; exit 3], exit code 3",
        "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}}
    session.close()


def test_exec_before_v4_writes_only_a_failures_message(server: KubeletServer, pki: Pki) -> None:
    session, streams = spdy_exec(server, pki, "command=false&output=1", ("error", "stdout"), "v2.channel.k8s.io")
    assert session.protocol == "v2.channel.k8s.io"
    assert read_all(streams["error"]).startswith(b"command terminated with non-zero exit code")
    session.close()
    session, streams = spdy_exec(server, pki, "command=true&output=1", ("error", "stdout"), "channel.k8s.io")
    assert read_all(streams["error"]) == b""
    session.close()


def test_exec_copies_stdin_until_it_ends(server: KubeletServer, pki: Pki) -> None:
    session, streams = spdy_exec(server, pki, "command=wc&command=-c&input=1&output=1", ("error", "stdin", "stdout"))
    streams["stdin"].write(b"x" * 300_000)
    streams["stdin"].close()
    assert read_all(streams["stdout"]).strip() == b"300000"
    assert json.loads(read_all(streams["error"]))["status"] == "Success"
    session.close()


def test_exec_under_a_tty_has_a_controlling_terminal_that_resizes(server: KubeletServer, pki: Pki) -> None:
    script = ('i=0; while [ "$(stty size)" != "40 100" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; '
              "stty size; ps -o tty= -p $$")
    query = urlencode([("command", "sh"), ("command", "-c"), ("command", script), ("input", "1"), ("output", "1"),
                       ("tty", "1")])
    session, streams = spdy_exec(server, pki, query, ("error", "stdin", "stdout", "resize"))
    streams["resize"].write(b'{"Width":100,"Height":40}\n')
    output = read_all(streams["stdout"]).decode()
    assert output.startswith("40 100\r\n") and re.search(r"^pts/\d+", output, re.MULTILINE), output
    session.close()


def test_a_command_that_cannot_start_is_an_internal_error(server: KubeletServer, pki: Pki) -> None:
    session, streams = spdy_exec(server, pki, "command=no-such-command&output=1", ("error", "stdout"))
    status = json.loads(read_all(streams["error"]))
    assert status["code"] == 500 and status["reason"] == "InternalError"
    assert status["message"] == ('Internal error occurred: error executing command in container: failed to exec in '
                                 'container: exec: "no-such-command": executable file not found in $PATH')
    session.close()


def gone(pid: int, timeout: float = 5) -> bool:
    """The process has exited (a zombie counts: it is dead, its parent not yet told)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                return True
        except OSError:
            return True
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    return False


def test_a_client_that_goes_away_takes_the_command_with_it(server: KubeletServer, pki: Pki) -> None:
    session, streams = spdy_exec(server, pki, "command=sh&command=-c&command=echo+%24%24%3B+exec+sleep+60&output=1",
                                 ("error", "stdout"))
    pid = int(streams["stdout"].read())
    session.close()
    assert gone(pid)


def test_stopping_the_server_ends_its_sessions_and_their_commands(pki: Pki, runtime: FakeRuntime) -> None:
    directory = pki.directory
    kubelet = KubeletServer(runtime, ("127.0.0.1", 0), str(directory / "kubelet.crt"), str(directory / "kubelet.key"),
                            str(directory / "ca.crt"), frozenset({APISERVER})).start()
    session, streams = spdy_exec(kubelet, pki, "command=sh&command=-c&command=echo+%24%24%3B+exec+sleep+60&output=1",
                                 ("error", "stdout"))
    pid = int(streams["stdout"].read())
    kubelet.stop()
    assert read_all(streams["error"]) == b""  # the session is gone: no status comes
    assert gone(pid), "the command outlived the server"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", kubelet.port), timeout=5)
    session.close()


def python_client_exec(server: KubeletServer, pki: Pki, query: str) -> WSClient:
    return WSClient(pki.configuration(server.port), f"wss://127.0.0.1:{server.port}/exec/default/p/c?{query}",
                    None, capture_all=True)


def test_the_python_client_execs_on_v5_with_its_exit_code(server: KubeletServer, pki: Pki) -> None:
    ws = python_client_exec(server, pki, "command=sh&command=-c&command=cat%3B+echo+err+>%262%3B+exit+7"
                                         "&input=1&output=1&error=1")
    assert ws.subprotocol == "v5.channel.k8s.io"
    ws.write_stdin("from stdin\n")
    ws.close_channel(0)  # v5's half-close: cat sees its end
    ws.run_forever(timeout=10)
    assert (ws.read_stdout(), ws.read_stderr(), ws.returncode) == ("from stdin\n", "err\n", 7)


def test_base64_channels_for_browsers(server: KubeletServer, pki: Pki) -> None:
    ws = WSClient(pki.configuration(server.port),
                  f"wss://127.0.0.1:{server.port}/exec/default/p/c?command=echo&command=hi&output=1",
                  {"sec-websocket-protocol": "v4.base64.channel.k8s.io"}, capture_all=True)
    assert ws.subprotocol == "v4.base64.channel.k8s.io"
    received = []
    while ws.is_open():
        opcode, frame = ws.sock.recv_data_frame(True)
        if opcode == 1:
            received.append(frame.data.decode())
        if opcode == 8:
            break
    assert received[:2] == ["1", "1aGkK"]  # "connected", then "hi\n" on channel 1, base64
    assert received[2].startswith("3") and '"Success"' in base64.b64decode(received[2][1:]).decode()


# -- attach -------------------------------------------------------------------------------------


def test_attach_joins_the_containers_stdio(server: KubeletServer, pki: Pki) -> None:
    session = client.connect(("127.0.0.1", server.port), pki.context(), "/attach/default/p/c?input=1&output=1&error=1",
                             ("v4.channel.k8s.io",))
    streams = {kind: session.session.open_stream((("streamType", kind),))
               for kind in ("error", "stdin", "stdout", "stderr")}
    streams["stdin"].write(b"typed\n")
    streams["stdin"].close()
    assert read_all(streams["stdout"]) == b"out\nTYPED\n" and read_all(streams["stderr"]) == b"err\n"
    assert json.loads(read_all(streams["error"]))["status"] == "Success"
    session.close()


# -- port-forward -------------------------------------------------------------------------------


def forward(session: SpdyClient, port: int, request: int) -> tuple[SpdyStream, SpdyStream]:
    headers = (("port", str(port)), ("requestID", str(request)))
    error = session.session.open_stream((("streamType", "error"), *headers))
    error.close()  # as kubectl does: nothing is written to it
    return error, session.session.open_stream((("streamType", "data"), *headers))


def test_port_forward_reports_a_closed_port_on_its_error_stream_and_carries_on(
        server: KubeletServer, pki: Pki, echo_server: int) -> None:
    session = client.connect(("127.0.0.1", server.port), pki.context(), "/portForward/default/p",
                             ("portforward.k8s.io",))
    port = closed_port()
    error, data = forward(session, port, 0)
    assert read_all(error).decode() == (
        f"error forwarding port {port} to pod default/p, uid : failed to connect to localhost:{port} inside "
        f'namespace "{OWN}", IPv4: dial tcp4 127.0.0.1:{port}: connect: connection refused')
    assert read_all(data) == b""
    for request in (1, 2):  # the session goes on, for any number of connections
        error, data = forward(session, echo_server, request)
        data.write(b"ping %d" % request)
        assert data.read() == b"ping %d" % request
        data.close()
        assert read_all(data) == b"" and read_all(error) == b""
    session.close()


def test_port_forward_streams_need_a_port_and_a_type(server: KubeletServer, pki: Pki) -> None:
    session = client.connect(("127.0.0.1", server.port), pki.context(), "/portForward/default/p",
                             ("portforward.k8s.io",))
    for headers in ((("streamType", "data"),), (("streamType", "data"), ("port", "0")),
                    (("streamType", "stdout"), ("port", "80"))):
        with pytest.raises(ConnectionError):
            session.session.open_stream(headers, timeout=5)
    session.close()


def test_port_forward_moves_megabytes_both_ways(server: KubeletServer, pki: Pki, echo_server: int) -> None:
    session = client.connect(("127.0.0.1", server.port), pki.context(), "/portForward/default/p",
                             ("portforward.k8s.io",))
    _, data = forward(session, echo_server, 0)
    payload = os.urandom(8 << 20)
    threading.Thread(target=lambda: (data.write(payload), data.close()), daemon=True).start()
    assert read_all(data) == payload
    session.close()


def test_the_python_client_forwards_ports_on_websocket_channels(server: KubeletServer, pki: Pki,
                                                                echo_server: int) -> None:
    port = closed_port()
    url = f"wss://127.0.0.1:{server.port}/portForward/default/p?port={echo_server}&port={port}"
    forwarder = PortForward(create_websocket(pki.configuration(server.port), url), [echo_server, port])
    connection = forwarder.socket(echo_server)
    connection.setblocking(True)
    connection.sendall(b"over websocket")
    assert connection.recv(100) == b"over websocket"
    refused = forwarder.socket(port)
    refused.setblocking(True)
    assert refused.recv(100) == b""
    assert "connect: connection refused" in (forwarder.error(port) or "")
    assert forwarder.error(echo_server) is None
    forwarder.close()


# -- logs ---------------------------------------------------------------------------------------


def test_container_logs_stream_what_the_runtime_yields(server: KubeletServer, pki: Pki, runtime: FakeRuntime) -> None:
    status, response, body = get(server, pki, "/containerLogs/default/p/c?follow=true&tailLines=10&sinceSeconds=5"
                                              "&timestamps=1&limitBytes=100")
    assert (status, body) == (200, "first line\nsecond line\n")
    assert response.getheader("Transfer-Encoding") == "chunked"
    assert runtime.log_options == LogOptions(follow=True, tail_lines=10, since_seconds=5, timestamps=True,
                                             limit_bytes=100)


# -- what kubectl recorded, replayed ------------------------------------------------------------


def raw_tls(server: KubeletServer, pki: Pki) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    return pki.context().wrap_socket(raw, server_hostname="127.0.0.1")


def read_until(tls: ssl.SSLSocket, done: Callable[[bytes], bool]) -> bytes:
    received = b""
    while not done(received):
        chunk = tls.recv(65536)
        if not chunk:
            break
        received += chunk
    return received


def test_kubectl_1_20_exec_replayed(server: KubeletServer, pki: Pki) -> None:
    with raw_tls(server, pki) as tls:
        tls.sendall((DATA / "kubectl-1.20-exec.up.bin").read_bytes())

        def done(received: bytes) -> bool:
            try:
                return any(isinstance(frame, spdy.GoAway) for frame in frames(received))
            except spdy.SpdyProtocolError:
                return False

        def frames(received: bytes) -> list[spdy.Frame]:
            return spdy.FrameReader().feed(received.partition(b"\r\n\r\n")[2])

        received = read_until(tls, done)
    assert received.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n" in received
    data = {frame.stream_id: frame.data for frame in frames(received) if isinstance(frame, spdy.Data) and frame.data}
    assert data[3] == b"hi\n" and json.loads(data[1])["details"]["causes"][0]["message"] == "3"


def test_kubectl_1_32_exec_with_stdin_replayed(server: KubeletServer, pki: Pki) -> None:
    recorded = (DATA / "kubectl-1.32-exec-stdin.up.bin").read_bytes()
    assert recorded[-8] == 0x88  # the client's close frame, sent once it had the status: not replayed
    websocket = Connection(ConnectionType.CLIENT)
    with raw_tls(server, pki) as tls:
        tls.sendall(recorded[:-8])
        received = read_until(tls, lambda received: b"\x88\x02\x03\xe8" in received)
        websocket.receive_data(received.partition(b"\r\n\r\n")[2])
        events = list(websocket.events())
        tls.sendall(websocket.send(CloseConnection(1000)))
    assert received.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    messages = [bytes(event.data) for event in events if isinstance(event, BytesMessage)]
    assert messages[:2] == [b"\x01", b"\x01hello\n"] and json.loads(messages[2][1:])["status"] == "Success"


def test_kubectl_1_32_port_forward_replayed(server: KubeletServer, pki: Pki) -> None:
    try:
        listener = socket.create_server(("127.0.0.1", RECORDED_PORT))
    except OSError:
        pytest.skip(f"port {RECORDED_PORT}, which the recording forwards to, is in use")
    with listener:
        threading.Thread(target=lambda: _echo_once(listener), daemon=True).start()
        websocket = Connection(ConnectionType.CLIENT)
        with raw_tls(server, pki) as tls:
            tls.sendall((DATA / "kubectl-1.32-portforward.up.bin").read_bytes())
            received = read_until(tls, lambda received: b"ping" in received)
    websocket.receive_data(received.partition(b"\r\n\r\n")[2])
    tunnelled = b"".join(bytes(event.data) for event in websocket.events() if isinstance(event, BytesMessage))
    assert b"\r\nSec-WebSocket-Protocol: SPDY/3.1+portforward.k8s.io\r\n" in received
    assert spdy.Data(3, b"ping") in spdy.FrameReader().feed(tunnelled)


def _echo_once(listener: socket.socket) -> None:
    connection, _ = listener.accept()
    with connection:
        while data := connection.recv(100):
            connection.sendall(data)


HEADS = [recording.read_bytes().partition(b"\r\n\r\n")[0] + b"\r\n\r\n" for recording in
         (DATA / "kubectl-1.20-portforward.up.bin", DATA / "kubectl-1.32-portforward.up.bin",
          DATA / "kubectl-1.20-exec.up.bin")]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(HEADS), st.binary(max_size=300))
def test_garbage_after_an_upgrade_ends_that_connection_only(
        server: KubeletServer, pki: Pki, caplog: pytest.LogCaptureFixture, head: bytes, garbage: bytes) -> None:
    with raw_tls(server, pki) as tls:
        tls.sendall(head + garbage)
    deadline = time.monotonic() + 10
    while server.connections and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.connections == 0
    assert not [record for record in caplog.records if record.levelname == "ERROR"]
    assert get(server, pki, "/healthz")[0] == 200


# -- real kubectl -------------------------------------------------------------------------------


POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default", "uid": "u1"},
       "spec": {"containers": [{"name": "c", "image": "busybox"}]},
       "status": {"phase": "Running", "containerStatuses": [{"name": "c", "ready": True, "restartCount": 0,
                                                               "image": "busybox", "imageID": "",
                                                               "state": {"running": {}}}]}}
DISCOVERY = {
    "/version": {"major": "1", "minor": "32", "gitVersion": "v1.32.0", "platform": "linux/amd64"},
    "/api": {"kind": "APIVersions", "versions": ["v1"],
             "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]},
    "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": []},
    "/api/v1": {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "v1", "resources": [
        {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod", "verbs": ["get", "list"]},
        *({"name": f"pods/{sub}", "singularName": "", "namespaced": True, "kind": kind, "verbs": ["create", "get"]}
          for sub, kind in (("exec", "PodExecOptions"), ("attach", "PodAttachOptions"),
                            ("portforward", "PodPortForwardOptions")))]},
    "/api/v1/namespaces/default/pods/p": POD,
}


class Front:
    """kubectl's API server in miniature (plain HTTP on 127.0.0.1)."""

    def __init__(self, kubelet_port: int, context: ssl.SSLContext, record: str | None = None) -> None:
        self.kubelet_port, self.context, self.record = kubelet_port, context, record
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def kubeconfig(self, directory: Path) -> str:
        path = directory / "kubeconfig"
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "front",
            "clusters": [{"name": "front", "cluster": {"server": f"http://127.0.0.1:{self.port}"}}],
            "users": [{"name": "u", "user": {"token": "x"}}],
            "contexts": [{"name": "front", "context": {"cluster": "front", "user": "u"}}]}))
        return str(path)

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        buffered = b""
        while True:
            while b"\r\n\r\n" not in buffered:
                chunk = connection.recv(65536)
                if not chunk:
                    connection.close()
                    return
                buffered += chunk
            head, buffered = buffered.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ")
            path = target.partition("?")[0]
            if path in DISCOVERY:
                body = json.dumps(DISCOVERY[path]).encode()
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                                   + str(len(body)).encode() + b"\r\n\r\n" + body)
            else:
                self._proxy(connection, method, target, lines[1:], buffered)
                return

    def _proxy(self, downstream: socket.socket, method: str, target: str, headers: list[str], early: bytes) -> None:
        upstream = self.context.wrap_socket(socket.create_connection(("127.0.0.1", self.kubelet_port)),
                                            server_hostname="127.0.0.1")
        headers = [line for line in headers if not line.lower().startswith("host:")] + ["Host: 127.0.0.1"]
        request = "\r\n".join([f"{method} {_kubelet_path(target)} HTTP/1.1", *headers])
        sent, received = [request.encode() + b"\r\n\r\n" + early], []
        upstream.sendall(sent[0])
        down = threading.Thread(target=_pump, args=(upstream, downstream, received), daemon=True)
        down.start()
        _pump(downstream, upstream, sent)
        down.join(10)
        if self.record:
            (DATA / f"{self.record}.up.bin").write_bytes(b"".join(sent))
            (DATA / f"{self.record}.down.bin").write_bytes(b"".join(received))
        downstream.close()
        upstream.close()


def _pump(source: socket.socket, destination: socket.socket, log: list[bytes]) -> None:
    try:
        while data := source.recv(65536):
            log.append(data)
            destination.sendall(data)
        destination.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def _kubelet_path(target: str) -> str:
    """The API server's streaming subresource as the kubelet's path, as kube-apiserver rewrites it."""
    parts = urlsplit(target)
    query = parse_qs(parts.query, keep_blank_values=True)
    match = re.fullmatch(r"/api/v1/namespaces/([^/]+)/pods/([^/]+)/(exec|attach|portforward)", parts.path)
    assert match, target
    namespace, pod, subresource = match.groups()
    if subresource == "portforward":
        ports = [("port", port) for value in query.get("ports", []) for port in value.split(",")]
        return f"/portForward/{namespace}/{pod}" + (f"?{urlencode(ports)}" if ports else "")
    params = [("command", command) for command in query.get("command", [])]
    params += [(new, "1") for old, new in (("stdin", "input"), ("stdout", "output"), ("stderr", "error"),
                                           ("tty", "tty")) if query.get(old, ["false"])[0] == "true"]
    return f"/{subresource}/{namespace}/{pod}/{query.get('container', ['c'])[0]}?{urlencode(params)}"


def _kubectl_1_32() -> str:
    """The dispatcher's own 1.32 when it is there (no dispatching), else whatever kubectl is
    installed: the dispatcher picks 1.32 from the Front's /version."""
    found = shutil.which("kubectl")
    if found is None:
        return ""
    versioned = Path(found).resolve().parent / "kubectl.1.32"
    return str(versioned) if versioned.exists() else found


KUBECTLS = {
    "1.32": _kubectl_1_32(),
    "1.20": next((str(path) for path in (Path(__file__).parents[1] / "artifacts/kubectl-1.20/usr/bin/kubectl",
                                         Path("/tmp/k120/usr/bin/kubectl")) if path.exists()), ""),
}


@pytest.fixture(params=list(KUBECTLS), ids=[f"kubectl {version}" for version in KUBECTLS])
def kubectl(request: pytest.FixtureRequest, server: KubeletServer, pki: Pki, tmp_path: Path) -> list[str]:
    binary = KUBECTLS[request.param]
    if not binary:
        pytest.skip(f"no kubectl {request.param} here")
    return [binary, "--kubeconfig", Front(server.port, pki.context()).kubeconfig(tmp_path)]


def test_kubectl_exec_exits_with_the_commands_code(kubectl: list[str]) -> None:
    done = subprocess.run([*kubectl, "exec", "-i", "p", "--", "sh", "-c", "cat; echo err >&2; exit 3"],
                          input=b"round trip\n", capture_output=True, timeout=60)
    assert (done.returncode, done.stdout) == (3, b"round trip\n"), done.stderr
    assert done.stderr == b"err\ncommand terminated with exit code 3\n"


def test_kubectl_port_forward_carries_connections(kubectl: list[str], echo_server: int) -> None:
    local = closed_port()
    forwarding = subprocess.Popen([*kubectl, "port-forward", "p", f"{local}:{echo_server}"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert forwarding.stdout is not None and b"Forwarding from" in forwarding.stdout.readline()
        for attempt in range(2):
            with socket.create_connection(("127.0.0.1", local), timeout=10) as connection:
                connection.sendall(b"hello %d" % attempt)
                assert connection.recv(100) == b"hello %d" % attempt
    finally:
        forwarding.terminate()
        forwarding.wait(10)
