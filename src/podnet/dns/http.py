"""/health, /ready and /metrics, served on the DNS server's own event loop, so a
loop that stops answering also stops answering /health (as CoreDNS's health)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

Page = Callable[[], tuple[int, str, bytes]]  # status, content type, body
_REASONS = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}


async def serve_pages(host: str, port: int, pages: dict[str, Page]) -> asyncio.AbstractServer:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            path = request.split(b" ", 2)[1].decode(errors="replace").split("?", 1)[0]
            page = pages.get(path)
            status, kind, body = page() if page else (404, "text/plain", b"not found\n")
            writer.write(f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {kind}\r\n"
                         f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
            await writer.drain()
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, IndexError,
                ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, host, port)
