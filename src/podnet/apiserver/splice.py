"""The byte splice behind exec, attach and port-forward: once the kubelet has
switched protocols (SPDY/3.1, WebSocket) the client's connection and the
kubelet's carry each other's bytes unread, as kube-apiserver's
UpgradeAwareHandler copies them.

Both directions run in transport callbacks: what one side reads is written to
the other in the chunk it came in (no queue, no copy, no task per chunk). When
one side's write buffer is full, reading from the other is paused until it
drains, so a fast sender never grows the API server's memory. Either side
ending ends both.

aiohttp hands over the client's connection the way its WebSocketResponse takes
it: the splice is the connection's payload parser (`set_parser`), so it is fed
every byte after the upgrade request, and the handler stays in the splice for
as long as it lasts, with keep-alive off."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter

from podnet.apiserver.kubelet_client import KubeletExchange

log = logging.getLogger("podnet.apiserver")


class Splice:
    def __init__(self, request: web.BaseRequest, kubelet: KubeletExchange) -> None:
        self._client = request.transport
        self._client_protocol = request.protocol
        self._kubelet = kubelet.transport
        self._tail = kubelet.switched_tail
        self._writer: AbstractStreamWriter | None = None
        self._draining: asyncio.Task[None] | None = None
        self._ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def take_client(self) -> None:
        """From now on the client's bytes are the kubelet's: call before the 101 goes
        out, so nothing the client sends after it is read as HTTP."""
        self._client_protocol.set_parser(self)  # type: ignore[arg-type]
        self._client_protocol.keep_alive(False)

    async def run(self, writer: AbstractStreamWriter) -> None:
        """Splice until either side ends (the 101 already sent through `writer`)."""
        self._writer = writer
        try:
            if self._client is None or self._kubelet is None or self._kubelet.is_closing():
                self.from_kubelet(self._tail)
                return
            self._kubelet.set_protocol(_KubeletSide(self))
            if self._tail:
                self.from_kubelet(self._tail)
            self._kubelet.resume_reading()
            await self._ended
        finally:
            self.end()

    def end(self) -> None:
        if self._draining is not None:
            self._draining.cancel()
        if self._kubelet is not None:
            self._kubelet.close()  # what it was given is still sent
        if self._client is not None:
            self._client.close()
        if not self._ended.done():
            self._ended.set_result(None)

    # The client's side: aiohttp feeds the splice as its payload parser.

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if self._kubelet is not None and not self._kubelet.is_closing():
            self._kubelet.write(data)
        return False, b""

    def feed_eof(self) -> None:
        self.end()

    # The kubelet's side, called by _KubeletSide.

    def from_kubelet(self, data: bytes) -> None:
        if self._client is None or self._client.is_closing() or not data:
            return
        self._client.write(data)
        if self._client_protocol.writing_paused and self._draining is None and self._kubelet is not None:
            self._kubelet.pause_reading()
            self._draining = asyncio.ensure_future(self._drain_client())

    async def _drain_client(self) -> None:
        assert self._writer is not None
        try:
            await self._writer.drain()
        except ConnectionError:
            self._draining = None
            self.end()
            return
        self._draining = None
        if self._kubelet is not None and not self._kubelet.is_closing():
            self._kubelet.resume_reading()

    def kubelet_writing(self, paused: bool) -> None:
        if self._client is not None and not self._client.is_closing():
            if paused:
                self._client.pause_reading()
            else:
                self._client.resume_reading()


class _KubeletSide(asyncio.Protocol):
    """The kubelet's connection, once spliced."""

    def __init__(self, splice: Splice) -> None:
        self._splice = splice

    def data_received(self, data: bytes) -> None:
        self._splice.from_kubelet(data)

    def eof_received(self) -> bool:
        return False  # the kubelet is done: close, and the splice ends

    def pause_writing(self) -> None:
        self._splice.kubelet_writing(paused=True)

    def resume_writing(self) -> None:
        self._splice.kubelet_writing(paused=False)

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            log.debug("a kubelet's spliced connection was lost: %s", exc)
        self._splice.end()
