"""DNS over TCP: length-prefixed queries on one connection, answered in turn
(how a client asks again after a truncated UDP reply)."""

from __future__ import annotations

import asyncio
import struct

from podnet.dns.metrics import question_type, transport_of
from podnet.dns.resolver import Resolver


async def serve_connection(resolver: Resolver, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    transport = transport_of(True, sock.family if sock is not None else 0)  # counted by the family it came over
    try:
        while True:
            (length,) = struct.unpack("!H", await reader.readexactly(2))
            query = await reader.readexactly(length)
            reply = await resolver.answer(query, udp=False)
            resolver.counts.answered(transport, reply.source, question_type(query), reply.wire)
            if reply.wire is None:
                break
            writer.write(struct.pack("!H", len(reply.wire)) + reply.wire)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()
