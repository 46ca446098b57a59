"""Kubernetes' WebSocket channel protocols (apimachinery's wsstream): every message
starts with the channel it belongs to.

- channel.k8s.io, v4.channel.k8s.io, v5.channel.k8s.io: binary messages, the first
  byte the channel (exec: 0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize).
- base64.channel.k8s.io, v4.base64.channel.k8s.io: text messages, the channel as
  an ASCII digit and the data base64-encoded (for browsers).
- v4 and later: the error channel carries a metav1.Status as JSON, which is how
  an exit code travels; before v4 it carries only a failure's message.
- v5: a client half-closes a channel with [255, channel] (stdin's EOF).
- port-forward: two channels per requested port, 2i data and 2i+1 error, each
  opened by the server with the port as two little-endian bytes.
- SPDY/3.1+portforward.k8s.io: no channels at all, SPDY frames carried in binary
  messages (kubectl 1.30+'s port-forward); TunnelTransport unwraps them."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from podnet.streaming.pipe import Pipe
from podnet.streaming.websocket import WebSocketConnection

STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
CLOSE_SIGNAL = 255
TUNNEL_PREFIX = "SPDY/3.1+"
PORT_FORWARD_TUNNEL = TUNNEL_PREFIX + "portforward.k8s.io"


@dataclass(frozen=True)
class ChannelProtocol:
    name: str
    base64: bool = False
    status_json: bool = False  # v4+
    close_signal: bool = False  # v5


_PROTOCOLS = {protocol.name: protocol for protocol in (
    ChannelProtocol("v5.channel.k8s.io", status_json=True, close_signal=True),
    ChannelProtocol("v4.channel.k8s.io", status_json=True),
    ChannelProtocol("v4.base64.channel.k8s.io", base64=True, status_json=True),
    ChannelProtocol("channel.k8s.io"),
    ChannelProtocol("base64.channel.k8s.io", base64=True),
    ChannelProtocol(""),  # a client that names no protocol gets channel.k8s.io
)}
EXEC_PROTOCOLS = tuple(_PROTOCOLS)
PORT_FORWARD_PROTOCOLS = ("v4.channel.k8s.io", "v4.base64.channel.k8s.io", "")  # the kubelet's list


def protocol(name: str) -> ChannelProtocol:
    return _PROTOCOLS[name]


def encode(protocol: ChannelProtocol, channel: int, data: bytes) -> bytes | str:
    if protocol.base64:
        return chr(ord("0") + channel) + base64.b64encode(data).decode("ascii")
    return bytes([channel]) + data


def decode(protocol: ChannelProtocol, message: bytes | str) -> tuple[int, bytes] | None:
    """(channel, data) of a client's message, text or binary alike (wsstream reads
    both as bytes; the Python client sends str stdin as text); None for one to
    drop: empty, or base64 that does not decode."""
    raw = message.encode() if isinstance(message, str) else message
    if not raw:
        return None
    if not protocol.base64:
        return raw[0], raw[1:]
    try:
        return raw[0] - ord("0"), base64.b64decode(raw[1:], validate=True)
    except (binascii.Error, ValueError):
        return None


class ChannelConnection:
    """A WebSocket connection carrying channels: the reader thread calls run()."""

    def __init__(self, ws: WebSocketConnection, protocol: ChannelProtocol) -> None:
        self.ws = ws
        self.protocol = protocol

    def send(self, channel: int, data: bytes) -> None:
        self.ws.send(encode(self.protocol, channel, data))

    def run(self, inputs: dict[int, Pipe]) -> None:
        """Deliver the client's messages to the channels it may write, until it closes;
        then every input ends. Messages for other channels are dropped."""
        try:
            while (message := self.ws.receive()) is not None:
                decoded = decode(self.protocol, message)
                if decoded is None:
                    continue
                channel, data = decoded
                if channel == CLOSE_SIGNAL and self.protocol.close_signal:
                    if data and data[0] in inputs:
                        inputs[data[0]].end()
                elif channel in inputs and data:
                    inputs[channel].put(data)
        except ConnectionError:
            pass
        finally:
            for pipe in inputs.values():
                pipe.end()


class ChannelWriter:
    """One output channel, written like a stream."""

    def __init__(self, connection: ChannelConnection, channel: int) -> None:
        self._connection = connection
        self._channel = channel

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._connection.send(self._channel, bytes(data))

    def close(self) -> None:
        """Nothing to send: a channel's end is the connection's (wsstream sends no close signal)."""


class TunnelTransport:
    """The Transport inside a SPDY/3.1+portforward.k8s.io connection: the binary
    messages' payloads, as one byte stream each way."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws

    def recv(self) -> bytes:
        return self.ws.receive_stream()

    def sendall(self, data: bytes | bytearray | memoryview) -> None:
        self.ws.send(bytes(data))

    def close(self) -> None:
        try:
            self.ws.close()
        except ConnectionError:
            pass
        self.ws.transport.close()
