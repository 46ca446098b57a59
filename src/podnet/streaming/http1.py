"""HTTP/1.1 on a Transport, parsed by h11: the requests a kubelet gets (upgrades,
and short GETs on a kept-alive connection) and its answers (plain text errors,
streamed logs, the 101 that hands the connection over)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

import h11

from podnet.streaming.transport import Transport

MAX_HEADERS = 64 * 1024
MAX_BODY = 1024 * 1024


class BadRequest(Exception):
    """The bytes are not an HTTP request; the connection answers 400 and closes."""


class Refusal(Exception):
    """A request answered with an error status (and a one-line reason) instead of being served."""

    def __init__(self, status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # still percent-encoded: the router splits it into segments first
    query: dict[str, list[str]]
    headers: tuple[tuple[str, str], ...]  # lower-case names, in order

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((value for key, value in self.headers if key == name), None)

    def values(self, name: str) -> list[str]:
        """Every value of a header that may be repeated or comma-separated."""
        name = name.lower()
        return [part.strip() for key, value in self.headers if key == name for part in value.split(",")
                if part.strip()]

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    @property
    def upgrade(self) -> str:
        """The protocol asked for ("websocket", "spdy/3.1"), lower-case; "" for a plain request."""
        if "upgrade" not in (value.lower() for value in self.values("connection")):
            return ""
        return (self.header("upgrade") or "").strip().lower()


class HttpConnection:
    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADERS)

    def next_request(self) -> Request | None:
        """The next request with its body read (and dropped); None when the client is done."""
        if self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE:
            self._h11.start_next_cycle()
        request: Request | None = None
        body = 0
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as err:
                raise BadRequest(str(err)) from None
            if event is h11.NEED_DATA:
                if self._h11.their_state is h11.DONE:
                    return None  # a connection the client asked to close
                self._h11.receive_data(self.transport.recv())
            elif isinstance(event, h11.Request):
                request = _request(event)
            elif isinstance(event, h11.Data):
                body += len(event.data)
                if body > MAX_BODY:
                    raise BadRequest(f"request body larger than {MAX_BODY} bytes")
            elif isinstance(event, h11.EndOfMessage):
                return request
            else:  # ConnectionClosed, PAUSED before a request
                return None

    def error(self, status: int, message: str, headers: Iterable[tuple[str, str]] = ()) -> None:
        """An error, as Go's http.Error writes one."""
        self.respond(status, message + "\n", headers)

    def respond(self, status: int, text: str, headers: Iterable[tuple[str, str]] = ()) -> None:
        """A short plain-text answer."""
        body = text.encode()
        self._send(h11.Response(status_code=status, reason=_reason(status), headers=[
            ("Content-Type", "text/plain; charset=utf-8"), ("X-Content-Type-Options", "nosniff"),
            ("Content-Length", str(len(body))), *headers]))
        self._send(h11.Data(data=body))
        self._send(h11.EndOfMessage())

    def refuse(self, status: int, text: str) -> None:
        """An answer to bytes that were not a request: h11 allows it once, then the connection closes."""
        try:
            self.error(status, text, [("Connection", "close")])
        except h11.LocalProtocolError:
            pass

    def stream(self, content_type: str, chunks: Iterable[bytes]) -> None:
        """A 200 whose body is sent as it comes (chunked), each chunk flushed at once."""
        self._send(h11.Response(status_code=200, reason=_reason(200), headers=[
            ("Content-Type", content_type), ("X-Content-Type-Options", "nosniff")]))
        for chunk in chunks:
            if chunk:
                self._send(h11.Data(data=chunk))
        self._send(h11.EndOfMessage())

    def switch_protocols(self, headers: list[tuple[str, str]]) -> bytes:
        """Send the 101 and hand the connection over: the bytes the client sent after its request."""
        self._send(h11.InformationalResponse(status_code=101, reason=_reason(101), headers=headers))
        data, _ = self._h11.trailing_data
        return bytes(data)

    @property
    def keep_alive(self) -> bool:
        return self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE

    def _send(self, event: h11.Event) -> None:
        data = self._h11.send(event)
        if data:
            self.transport.sendall(data)


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


def _request(event: h11.Request) -> Request:
    target = urlsplit(event.target.decode("latin-1"))
    return Request(method=event.method.decode("latin-1"), path=target.path,
                   query=parse_qs(target.query, keep_blank_values=True),
                   headers=tuple((bytes(name).decode("latin-1"), bytes(value).decode("latin-1"))
                                 for name, value in event.headers))
