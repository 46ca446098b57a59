"""The API server's side of a node's kubelet endpoint: where a node's kubelet
listens (its InternalIP, port 10250 unless the node says otherwise), the TLS it
is reached with (the API server's kubelet-client certificate, the kubelet's own
checked against the cluster's CA, for the node's address), and one HTTP/1.1
exchange with it, read with h11: an answer streamed as it comes (a log), or a
switch to another protocol, after which the connection is raw bytes for
splice.py. Failures are kube-apiserver's: `dial tcp 10.0.0.2:10250: connect:
connection refused`."""

from __future__ import annotations

import asyncio
import errno
import os
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import h11

from podnet.apiserver.status import ApiError
from podnet.model.families import host_port

KUBELET_PORT = 10250  # kubelet's default --port, when the node does not say
DIAL_TIMEOUT = 10.0
MAX_ERROR_BODY = 50_000  # how much of a refusal's body is passed on, as kube-apiserver reads it
BODY_QUEUE_HIGH, BODY_QUEUE_LOW = 16, 4  # log chunks held before the kubelet is paused, and resumed
CONNECT_ERRORS = (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ETIMEDOUT)  # connect(2)'s own
NO_CREDENTIALS = ("the API server has no kubelet client credentials (--kubelet-client-certificate, "
                  "--kubelet-client-key, --kubelet-certificate-authority), so it cannot reach kubelets for "
                  "exec, attach, port-forward or logs")


class KubeletError(Exception):
    """The kubelet did not answer as HTTP/1.1 should; str() says how."""


class KubeletUnreachable(KubeletError):
    """The kubelet could not be dialled; str() is Go's wording, which kube-apiserver's messages carry."""


def client_context(cert_file: str, key_file: str, ca_file: str) -> ssl.SSLContext:
    """TLS to kubelets: the API server's certificate presented, theirs checked
    against the cluster's CA and for the node's address."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    context.load_cert_chain(cert_file, key_file)
    return context


def kubelet_address(node: dict[str, Any]) -> tuple[str, int]:
    """The node's InternalIP and its kubelet's port (status.daemonEndpoints)."""
    status = node.get("status") or {}
    addresses = [a for a in status.get("addresses") or () if isinstance(a, dict)]
    internal = next((str(a.get("address")) for a in addresses if a.get("type") == "InternalIP" and a.get("address")),
                    None)
    if internal is None:
        known = " ".join(f"{{{a.get('type')} {a.get('address')}}}" for a in addresses)
        raise ApiError(500, f"no preferred addresses found; known addresses: [{known}]", "Unknown")
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
    return internal, port if isinstance(port, int) and 0 < port < 65536 else KUBELET_PORT


@dataclass(frozen=True)
class Head:
    """The kubelet's answer before its body: status and headers as it sent them."""
    status: int
    headers: list[tuple[str, str]]


class Kubelets:
    """Dials kubelets with the API server's credentials; without them, every
    attempt is refused with a Status saying so."""

    def __init__(self, context: ssl.SSLContext | None) -> None:
        self.context = context

    async def request(self, host: str, port: int, method: str, target: str,
                      headers: list[tuple[str, str]]) -> KubeletExchange:
        """The request sent; the exchange to read its answer from."""
        if self.context is None:
            raise ApiError(500, NO_CREDENTIALS)
        loop = asyncio.get_running_loop()
        where = host_port(host, port)
        try:
            _, exchange = await asyncio.wait_for(
                loop.create_connection(lambda: KubeletExchange(loop), host, port, ssl=self.context,
                                       server_hostname=host), DIAL_TIMEOUT)
        except (asyncio.TimeoutError, TimeoutError):
            raise KubeletUnreachable(f"dial tcp {where}: i/o timeout") from None
        except ssl.SSLCertVerificationError as err:
            raise KubeletUnreachable(f"tls: failed to verify certificate: {err.verify_message}") from None
        except ssl.SSLError as err:
            raise KubeletUnreachable(f"remote error: tls: {err.reason or err}") from None
        except OSError as err:
            why = os.strerror(err.errno).lower() if err.errno else str(err)
            step = "connect: " if err.errno in CONNECT_ERRORS else ""
            raise KubeletUnreachable(f"dial tcp {where}: {step}{why}") from None
        try:
            exchange.send(method, target, [("Host", where), *headers])
        except h11.LocalProtocolError as err:
            exchange.close()
            raise ApiError(400, f"the request cannot be passed on to the kubelet: {err}") from None
        return exchange


class KubeletExchange(asyncio.Protocol):
    """One request and its answer. The answer's body is queued as it arrives (the
    kubelet paused while the queue is long); after a 101 the bytes that follow
    are held, the kubelet paused, until the splice takes the connection over."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.transport: asyncio.Transport | None = None
        self._http = h11.Connection(h11.CLIENT)
        self._head: asyncio.Future[Head] = loop.create_future()
        self._body: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._paused = False
        self.switched_tail = b""  # what the kubelet sent after its 101, before the splice took over

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, method: str, target: str, headers: list[tuple[str, str]]) -> None:
        assert self.transport is not None
        request = h11.Request(method=method, target=target, headers=headers)
        self.transport.write(self._http.send(request) + (self._http.send(h11.EndOfMessage()) or b""))

    async def head(self) -> Head:
        return await self._head

    async def body(self) -> AsyncIterator[bytes]:
        """The answer's body, chunk by chunk as it comes."""
        while (chunk := await self._body.get()) is not None:
            if self._paused and self._body.qsize() <= BODY_QUEUE_LOW and self.transport is not None:
                self._paused = False
                self.transport.resume_reading()
            yield chunk

    async def read_body(self, limit: int = MAX_ERROR_BODY) -> bytes:
        read = b""
        async for chunk in self.body():
            read += chunk
            if len(read) >= limit:
                break
        return read[:limit]

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._http.their_state is h11.SWITCHED_PROTOCOL:
            self.switched_tail += data
            return
        self._http.receive_data(data)
        self._read_events()

    def eof_received(self) -> bool:
        if self._http.their_state is not h11.SWITCHED_PROTOCOL:
            self._http.receive_data(b"")
            self._read_events()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._fail("the kubelet closed the connection before it answered" + (f": {exc}" if exc else ""))
        self._body.put_nowait(None)

    def _read_events(self) -> None:
        while True:
            try:
                event = self._http.next_event()
            except h11.RemoteProtocolError as err:
                self._fail(f"the kubelet's answer is not HTTP/1.1: {err}")
                self.close()
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                break
            if isinstance(event, (h11.Response, h11.InformationalResponse)):
                if isinstance(event, h11.InformationalResponse) and event.status_code != 101:
                    continue  # 100 Continue and the like come before the answer
                if not self._head.done():
                    self._head.set_result(Head(event.status_code, [(k.decode("latin-1"), v.decode("latin-1"))
                                                                   for k, v in event.headers.raw_items()]))
            elif isinstance(event, h11.Data):
                self._body.put_nowait(bytes(event.data))
                if not self._paused and self._body.qsize() >= BODY_QUEUE_HIGH and self.transport is not None:
                    self._paused = True
                    self.transport.pause_reading()
            elif isinstance(event, h11.EndOfMessage):
                self._body.put_nowait(None)
            elif isinstance(event, h11.ConnectionClosed):
                self._fail("the kubelet closed the connection before it answered")
                self._body.put_nowait(None)
                break
        if self._http.their_state is h11.SWITCHED_PROTOCOL and self.transport is not None:
            self.switched_tail += self._http.trailing_data[0]
            self.transport.pause_reading()  # until the splice is there to take what follows

    def _fail(self, why: str) -> None:
        if not self._head.done():
            self._head.set_exception(KubeletError(why))
