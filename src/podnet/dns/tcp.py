"""DNS over TCP: length-prefixed queries on one connection, answered in turn
(how a client asks again after a truncated UDP reply)."""

from __future__ import annotations

import asyncio
import struct

from podnet.dns.resolver import Resolver


async def serve_connection(resolver: Resolver, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            (length,) = struct.unpack("!H", await reader.readexactly(2))
            reply = await resolver.answer(await reader.readexactly(length), udp=False)
            resolver.counts.answered("tcp", reply)
            if reply is None:
                break
            writer.write(struct.pack("!H", len(reply)) + reply)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()
