"""WebSocket (RFC 6455) over a Transport, framed by wsproto: the server side of the
opening handshake, whole messages in, messages out from any thread, pings
answered, and the closing handshake.

wsproto unmasks what clients send (all of it is masked) in pure Python, at about
two CPU-seconds per GiB here: the slowest step of kubectl's port-forward uploads.
aiohttp, already a dependency, ships the same XOR compiled; when it is there,
wsproto's masker class is swapped for one that calls it (same bytes out)."""

from __future__ import annotations

import threading
from collections import deque

from wsproto import frame_protocol
from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Event, Message, Ping, Pong, TextMessage
from wsproto.frame_protocol import CloseReason
from wsproto.utilities import LocalProtocolError, generate_accept_token

from podnet.streaming.http1 import Refusal
from podnet.streaming.transport import Transport

MAX_MESSAGE = 16 * 1024 * 1024


class CompiledMasker:
    """wsproto's XorMaskerSimple, with the XOR done by aiohttp's compiled mask."""

    def __init__(self, masking_key: bytes | bytearray) -> None:
        self._key = bytes(masking_key)

    def process(self, data: bytes | bytearray) -> bytearray:
        data = bytearray(data)
        if data:
            _compiled_mask(self._key, data)
            turn = len(data) % 4  # the next piece of the frame goes on where this one stopped
            self._key = self._key[turn:] + self._key[:turn]
        return data


try:
    from aiohttp._websocket.mask import _websocket_mask_cython as _compiled_mask
except ImportError:  # an aiohttp without its extensions: wsproto's own masker stays
    pass
else:
    frame_protocol.XorMaskerSimple = CompiledMasker  # type: ignore[misc]


def negotiate(offered: list[str], supported: tuple[str, ...]) -> str:
    """The first protocol the client offers that we speak ("" if it offers none and
    "" is allowed), as wsstream's handshake chooses; Refusal otherwise."""
    for name in offered or [""]:
        if name in supported:
            return name
    shown = [name for name in supported if name]
    raise Refusal(403, f"requested protocol(s) are not supported: {offered}; supports {shown}")


def accept_headers(key: str | None, version: str | None, protocol: str) -> list[tuple[str, str]]:
    """The 101 response's headers for a client's Sec-WebSocket-Key and -Version."""
    if not key:
        raise Refusal(400, "websocket: the client did not send Sec-WebSocket-Key")
    if version != "13":
        raise Refusal(400, f"websocket: unsupported Sec-WebSocket-Version {version!r}; 13 is spoken")
    headers = [("Upgrade", "websocket"), ("Connection", "Upgrade"),
               ("Sec-WebSocket-Accept", generate_accept_token(key.encode("latin-1")).decode())]
    return headers + ([("Sec-WebSocket-Protocol", protocol)] if protocol else [])


class WebSocketConnection:
    """One thread calls receive(); any thread may send()."""

    def __init__(self, transport: Transport, trailing_data: bytes = b"") -> None:
        self.transport = transport
        self._ws = Connection(ConnectionType.SERVER)
        self._state_lock = threading.Lock()  # wsproto's state
        self._send_lock = threading.Lock()  # frame order on the wire; taken before _state_lock
        self._pending = trailing_data
        self._events: deque[Event] = deque()

    def receive(self) -> bytes | str | None:
        """The next whole message; None once the connection is closed or broken."""
        parts: list[bytes | str] = []
        size = 0
        while True:
            while self._events:
                event = self._events.popleft()
                if isinstance(event, Message):
                    parts.append(event.data)
                    size += len(event.data)
                    if size > MAX_MESSAGE:
                        self.close(CloseReason.MESSAGE_TOO_BIG, f"messages are limited to {MAX_MESSAGE} bytes")
                        return None
                    if event.message_finished:
                        if isinstance(event, TextMessage):
                            return "".join(part for part in parts if isinstance(part, str))
                        return b"".join(part for part in parts if isinstance(part, bytes | bytearray))
                elif not self._control(event):
                    return None
            if not self._more():
                return None

    def receive_stream(self) -> bytes:
        """Binary messages' payloads as one byte stream, as much as has arrived (for
        a tunnel, where message boundaries mean nothing); b"" at the end, or at a
        text message, which a tunnel's peer refuses too."""
        pieces: list[bytes] = []
        while True:
            while self._events:
                event = self._events.popleft()
                if isinstance(event, BytesMessage):
                    pieces.append(bytes(event.data))
                    continue
                if any(pieces):  # what came before the end is still delivered
                    self._events.appendleft(event)
                    return b"".join(pieces)
                if isinstance(event, TextMessage):
                    self.close(CloseReason.UNSUPPORTED_DATA, "binary messages only")
                if isinstance(event, TextMessage) or not self._control(event):
                    self._events.clear()
                    return b""
            if pieces and any(pieces):
                return b"".join(pieces)
            if not self._more():
                return b""

    def _control(self, event: Event) -> bool:
        """Answer a ping or the closing handshake; False once the connection is closing."""
        if isinstance(event, Ping):
            self._send_event(event.response())
        elif isinstance(event, CloseConnection):
            self._send_event(event.response())  # the closing handshake's answer, if ours is owed
            return False
        return True

    def _more(self) -> bool:
        """Read from the network and parse; False once there is nothing more to read."""
        if self.state is ConnectionState.CLOSED:
            return False
        data, self._pending = self._pending or self.transport.recv(), b""
        with self._state_lock:
            self._ws.receive_data(data or None)  # None: the peer went without a closing handshake
            self._events.extend(self._ws.events())
        return True

    def send(self, data: bytes | bytearray | str) -> None:
        """One message, binary for bytes and text for str; ConnectionError once closing."""
        message = TextMessage(data) if isinstance(data, str) else BytesMessage(data)
        if not self._send_event(message):
            raise ConnectionError("the WebSocket connection is closing")

    def close(self, code: int = CloseReason.NORMAL_CLOSURE, reason: str = "") -> None:
        """Start the closing handshake; receive() returns None once the client answers."""
        self._send_event(CloseConnection(code, reason or None))

    @property
    def state(self) -> ConnectionState:
        return self._ws.state

    def _send_event(self, event: BytesMessage | TextMessage | CloseConnection | Pong) -> bool:
        with self._send_lock:
            with self._state_lock:
                try:
                    data = self._ws.send(event)
                except LocalProtocolError:
                    return False  # the state does not allow it any more (closing, closed)
            self.transport.sendall(data)
            return True
