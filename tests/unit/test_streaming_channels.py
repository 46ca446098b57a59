"""Kubernetes' WebSocket channel protocols, WebSocket itself as wsproto frames it,
and the SPDY-in-WebSocket tunnel, against what kubectl 1.32 sent.

The recordings in data/streaming/ were captured by test_streaming_server's stub
API server: `kubectl exec -i p -- cat` (v5.channel.k8s.io, "hello\\n" on stdin),
`kubectl exec p -- sh -c 'echo hi; exit 3'` and `kubectl port-forward p
23470:47613` (SPDY/3.1+portforward.k8s.io, one connection, "ping" echoed)."""

from __future__ import annotations

import base64
import json
import os
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage

from podnet.streaming import channels, spdy
from podnet.streaming.channels import ChannelConnection, TunnelTransport
from podnet.streaming.http1 import Refusal
from podnet.streaming.pipe import Pipe
from podnet.streaming.remotecommand import TerminalSize, terminal_sizes
from podnet.streaming.websocket import CompiledMasker, WebSocketConnection, accept_headers, negotiate

DATA = Path(__file__).parent / "data" / "streaming"


class Replay:
    """A transport that yields recorded bytes in pieces, then the end; keeps what is sent."""

    def __init__(self, data: bytes, piece: int = 1 << 20) -> None:
        self.pieces = [data[start:start + piece] for start in range(0, len(data), piece)]
        self.sent = bytearray()
        self.closed = False

    def recv(self) -> bytes:
        return self.pieces.pop(0) if self.pieces else b""

    def sendall(self, data: bytes | bytearray | memoryview) -> None:
        self.sent += data

    def close(self) -> None:
        self.closed = True


def recording(name: str) -> tuple[str, bytes]:
    """A recording's HTTP request head and the WebSocket bytes after it."""
    head, _, body = (DATA / name).read_bytes().partition(b"\r\n\r\n")
    return head.decode(), body


def messages(ws: WebSocketConnection) -> list[bytes | str]:
    received = []
    while (message := ws.receive()) is not None:
        received.append(message)
    return received


def client_frames(*events: BytesMessage | TextMessage | Ping | CloseConnection) -> bytes:
    client = Connection(ConnectionType.CLIENT)
    return b"".join(client.send(event) for event in events)


def test_kubectl_exec_asks_for_v5_only_and_half_closes_stdin_with_the_close_signal() -> None:
    head, body = recording("kubectl-1.32-exec-stdin.up.bin")
    assert "Sec-WebSocket-Protocol: v5.channel.k8s.io\r\n" in head
    ws = WebSocketConnection(Replay(body, piece=7))
    protocol = channels.protocol("v5.channel.k8s.io")
    assert [channels.decode(protocol, message) for message in messages(ws)] == [
        (channels.STDIN, b"hello\n"), (channels.CLOSE_SIGNAL, bytes([channels.STDIN]))]


def test_our_answer_to_kubectl_exec_is_output_then_the_status_then_a_normal_close() -> None:
    _, body = recording("kubectl-1.32-exec.down.bin")
    client = Connection(ConnectionType.CLIENT)
    client.receive_data(body)
    events = list(client.events())
    data = [bytes(event.data) for event in events if isinstance(event, BytesMessage)]
    assert data[:2] == [bytes([channels.STDOUT]), bytes([channels.STDOUT]) + b"hi\n"]  # "connected", then output
    status = json.loads(data[2][1:])
    assert data[2][0] == channels.ERROR and status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    assert isinstance(events[-1], CloseConnection) and events[-1].code == 1000


def test_the_port_forward_tunnel_carries_kubectls_spdy_frames_in_binary_messages() -> None:
    head, body = recording("kubectl-1.32-portforward.up.bin")
    assert "Sec-WebSocket-Protocol: SPDY/3.1+portforward.k8s.io\r\n" in head
    tunnel = TunnelTransport(WebSocketConnection(Replay(body, piece=5)))
    reader, frames = spdy.FrameReader(), []
    while chunk := tunnel.recv():
        frames += reader.feed(chunk)
    opened = [dict(frame.headers) for frame in frames if isinstance(frame, spdy.SynStream)]
    assert opened == [{"streamtype": "error", "port": "47613", "requestid": "0"},
                      {"streamtype": "data", "port": "47613", "requestid": "0"}]
    assert spdy.Data(3, b"ping") in frames


CODECS = {
    "binary": ("v4.channel.k8s.io", b"\x01hi", (1, b"hi")),
    "v5 binary": ("v5.channel.k8s.io", b"\x00in", (0, b"in")),
    "base64": ("base64.channel.k8s.io", "1" + base64.b64encode(b"hi").decode(), (1, b"hi")),
    "v4 base64": ("v4.base64.channel.k8s.io", "0" + base64.b64encode(b"\0\xff").decode(), (0, b"\0\xff")),
}


@pytest.mark.parametrize("name, message, decoded", CODECS.values(), ids=CODECS.keys())
def test_channel_messages_encode_and_decode(name: str, message: bytes | str, decoded: tuple[int, bytes]) -> None:
    protocol = channels.protocol(name)
    assert channels.decode(protocol, message) == decoded
    assert channels.encode(protocol, *decoded) == message


def test_text_messages_count_on_binary_protocols_as_the_python_client_sends_stdin() -> None:
    assert channels.decode(channels.protocol("v5.channel.k8s.io"), "\0typed\n") == (0, b"typed\n")


@pytest.mark.parametrize("message", [b"", "", "1not base64!"])
def test_empty_and_undecodable_messages_are_dropped(message: bytes | str) -> None:
    assert channels.decode(channels.protocol("base64.channel.k8s.io"), message) is None


def run_channels(protocol: str, *events: BytesMessage | TextMessage | Ping | CloseConnection) -> dict[int, bytes]:
    inputs = {channels.STDIN: Pipe(), channels.RESIZE: Pipe()}
    ChannelConnection(WebSocketConnection(Replay(client_frames(*events))), channels.protocol(protocol)).run(inputs)
    return {channel: b"".join(iter(pipe.read, b"")) for channel, pipe in inputs.items()}


def test_the_close_signal_ends_a_channel_on_v5_only() -> None:
    events = (BytesMessage(b"\x00a"), BytesMessage(b"\xff\x00"), BytesMessage(b"\x00b"), BytesMessage(b"\x04{}"))
    assert run_channels("v5.channel.k8s.io", *events) == {channels.STDIN: b"a", channels.RESIZE: b"{}"}
    assert run_channels("v4.channel.k8s.io", *events) == {channels.STDIN: b"ab", channels.RESIZE: b"{}"}


def test_pings_are_answered_fragments_joined_and_a_close_answered() -> None:
    client = Connection(ConnectionType.CLIENT)
    opening = b"".join(client.send(event) for event in (
        Ping(b"hb"), BytesMessage(b"\x00one ", message_finished=False), BytesMessage(b"message")))
    transport = Replay(b"")
    transport.pieces = [opening, client.send(CloseConnection(1000))]
    ws = WebSocketConnection(transport)
    assert messages(ws) == [b"\x00one message"]
    client = Connection(ConnectionType.CLIENT)
    client.receive_data(bytes(transport.sent))
    answers = list(client.events())
    assert isinstance(answers[0], Pong) and answers[0].payload == b"hb"
    assert isinstance(answers[1], CloseConnection) and answers[1].code == 1000


def test_several_messages_in_one_read_are_all_delivered() -> None:
    ws = WebSocketConnection(Replay(client_frames(*(BytesMessage(bytes([n])) for n in range(50)))))
    assert messages(ws) == [bytes([n]) for n in range(50)]


def test_the_tunnel_ignores_message_boundaries_and_refuses_text() -> None:
    tunnel = TunnelTransport(WebSocketConnection(Replay(client_frames(
        BytesMessage(b"ab"), BytesMessage(b"c"), BytesMessage(b""), TextMessage("no")))))
    assert tunnel.recv() == b"abc"
    assert tunnel.recv() == b""


def test_port_forward_channels_open_with_the_port_in_little_endian() -> None:
    transport = Replay(b"")
    connection = ChannelConnection(WebSocketConnection(transport), channels.protocol("v4.channel.k8s.io"))
    connection.send(0, struct.pack("<H", 8080))
    client = Connection(ConnectionType.CLIENT)
    client.receive_data(bytes(transport.sent))
    assert [bytes(event.data) for event in client.events()] == [b"\x00\x90\x1f"]


NEGOTIATIONS = {
    "client's order wins": (["v5.channel.k8s.io", "v4.channel.k8s.io"], channels.EXEC_PROTOCOLS, "v5.channel.k8s.io"),
    "skips what we lack": (["v6.channel.k8s.io", "v4.channel.k8s.io"], channels.EXEC_PROTOCOLS, "v4.channel.k8s.io"),
    "none offered": ([], channels.PORT_FORWARD_PROTOCOLS, ""),
    "python port-forward": (["v5.channel.k8s.io", "v4.channel.k8s.io"], channels.PORT_FORWARD_PROTOCOLS,
                            "v4.channel.k8s.io"),
}


@pytest.mark.parametrize("offered, supported, chosen", NEGOTIATIONS.values(), ids=NEGOTIATIONS.keys())
def test_subprotocols_are_negotiated_as_wsstream_does(offered: list[str], supported: tuple[str, ...],
                                                       chosen: str) -> None:
    assert negotiate(offered, supported) == chosen


def test_no_common_subprotocol_is_403_naming_both_sides() -> None:
    with pytest.raises(Refusal, match=r"not supported: \['v9.channel.k8s.io'\]; supports \['v5") as refused:
        negotiate(["v9.channel.k8s.io"], channels.EXEC_PROTOCOLS)
    assert refused.value.status == 403


def test_the_handshake_accepts_the_rfc_6455_example_key() -> None:
    headers = dict(accept_headers("dGhlIHNhbXBsZSBub25jZQ==", "13", "v5.channel.k8s.io"))
    assert headers["Sec-WebSocket-Accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert headers["Sec-WebSocket-Protocol"] == "v5.channel.k8s.io"
    with pytest.raises(Refusal, match="Sec-WebSocket-Version"):
        accept_headers("dGhlIHNhbXBsZSBub25jZQ==", "8", "")


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=4, max_size=4), st.lists(st.binary(max_size=40), max_size=6))
def test_the_compiled_masker_xors_as_rfc_6455_says_across_pieces(key: bytes, pieces: list[bytes]) -> None:
    masker = CompiledMasker(key)
    whole = b"".join(pieces)
    assert b"".join(masker.process(piece) for piece in pieces) == bytes(
        byte ^ key[index % 4] for index, byte in enumerate(whole))


class Chunks:
    def __init__(self, *chunks: bytes) -> None:
        self.chunks = list(chunks)

    def read(self) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""


def test_resize_events_are_json_objects_across_any_split() -> None:
    stream = b'{"Width":80,"Height":24}\n{"width":100,"height":40}{"Width":1,'
    assert list(terminal_sizes(Chunks(stream[:10], stream[10:33], stream[33:]))) == [
        TerminalSize(80, 24), TerminalSize(100, 40)]
    assert list(terminal_sizes(Chunks(b'{"Width":5,"Height":6} [] {"Width":7,"Height":8}'))) == [TerminalSize(5, 6)]


def _garbage() -> st.SearchStrategy[bytes]:
    valid = client_frames(BytesMessage(b"\x00in"), BytesMessage(b"\xff\x00"), Ping(b"x"), TextMessage("1aGk="))
    flip = st.tuples(st.integers(0, len(valid) - 1), st.integers(0, 255)).map(
        lambda change: valid[:change[0]] + bytes([change[1]]) + valid[change[0] + 1:])
    return st.one_of(flip, st.binary(max_size=300), st.binary(max_size=50).map(lambda tail: valid + tail))


@settings(max_examples=300, deadline=None)
@given(_garbage(), st.sampled_from(channels.EXEC_PROTOCOLS))
def test_garbage_from_a_client_ends_the_channels_never_the_server(wire: bytes, protocol: str) -> None:
    inputs = {channels.STDIN: Pipe(), channels.RESIZE: Pipe()}
    ChannelConnection(WebSocketConnection(Replay(wire, piece=13)), channels.protocol(protocol)).run(inputs)
    assert all(pipe.ended for pipe in inputs.values())


def test_a_big_upload_arrives_whole_through_the_tunnel() -> None:
    payload = os.urandom(300_000)
    pieces = [BytesMessage(payload[start:start + 32768]) for start in range(0, len(payload), 32768)]
    tunnel = TunnelTransport(WebSocketConnection(Replay(client_frames(*pieces), piece=16384)))
    assert b"".join(iter(tunnel.recv, b"")) == payload
