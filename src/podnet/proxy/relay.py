"""One proxied TCP connection: client <-> server through splice(2), driven by the
event loop's readiness callbacks.

No coroutine, task or future is made per connection: the seed's ipvs walk-through
is a stream of short curls, and that machinery cost more than the connection's
own system calls. Bytes move socket -> pipe -> socket without entering Python,
and the pipes are kept for the next connection (an emptied pipe is as good as new).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
from collections.abc import Callable

log = logging.getLogger("podnet.proxy.userspace")
_CHUNK = 1 << 16
_SPLICE = os.SPLICE_F_NONBLOCK | os.SPLICE_F_MOVE
_KEPT_PIPES = 256


class Pipes:
    """Pipes for splice, reused: two per connection would otherwise be four system
    calls to make and four to close."""

    def __init__(self) -> None:
        self._free: list[tuple[int, int]] = []

    def take(self) -> tuple[int, int]:
        return self._free.pop() if self._free else os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def give(self, pipe: tuple[int, int], empty: bool) -> None:
        if empty and len(self._free) < _KEPT_PIPES:
            self._free.append(pipe)
        else:
            os.close(pipe[0])
            os.close(pipe[1])


class _Way:
    """The bytes going one way: from `source` through a pipe to `target`."""

    __slots__ = ("source", "target", "pipe", "held", "ended")

    def __init__(self, source: socket.socket, target: socket.socket, pipe: tuple[int, int]) -> None:
        self.source, self.target, self.pipe = source, target, pipe
        self.held = 0  # bytes in the pipe, not yet written to target
        self.ended = False  # the source's end closed and everything was passed on


class Relay:
    """Connects to the server, then moves bytes both ways until both ends close.
    `client_closed` is called when the client has closed its side (the
    connection is then inactive, as a connection in FIN_WAIT is to IPVS), and
    again when everything is closed; the caller counts only the first."""

    def __init__(self, loop: asyncio.AbstractEventLoop, pipes: Pipes, client: socket.socket,
                 server: tuple[str, int], client_closed: Callable[[], None]) -> None:
        self.loop, self.pipes, self.client, self.client_closed = loop, pipes, client, client_closed
        self.upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.upstream.setblocking(False)
        client.setblocking(False)
        self.ways: list[_Way] = []
        self.closed = False
        self.server = server
        code = self.upstream.connect_ex(server)
        if code not in (0, errno.EINPROGRESS):
            self._fail(OSError(code, os.strerror(code)))
            return
        loop.add_writer(self.upstream.fileno(), self._connected)

    def _connected(self) -> None:
        self.loop.remove_writer(self.upstream.fileno())
        code = self.upstream.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self._fail(OSError(code, os.strerror(code)))
            return
        self.ways = [_Way(self.client, self.upstream, self.pipes.take()),
                     _Way(self.upstream, self.client, self.pipes.take())]
        for way in self.ways:
            self.loop.add_reader(way.source.fileno(), self._readable, way)
        self._readable(self.ways[0])  # the client's request is usually there already: no wait for the loop

    def _readable(self, way: _Way) -> None:
        """Reads until nothing is left, so an answer and the FIN behind it take one
        turn of the loop, not two."""
        while not self.closed:
            try:
                moved = os.splice(way.source.fileno(), way.pipe[1], _CHUNK, flags=_SPLICE)
            except BlockingIOError:
                return
            except OSError:
                self._close()
                return
            if moved == 0:
                self.loop.remove_reader(way.source.fileno())
                way.ended = True
                self._finish(way)
                return
            way.held += moved
            self._flush(way)
            if way.held:
                return  # the target is full: its writability resumes the reading

    def _flush(self, way: _Way) -> None:
        """Writes what the pipe holds; while the target cannot take it all, the
        source is not read (the pipe would fill), and the target's writability resumes."""
        try:
            while way.held:
                way.held -= os.splice(way.pipe[0], way.target.fileno(), way.held, flags=_SPLICE)
        except BlockingIOError:
            if not way.ended:
                self.loop.remove_reader(way.source.fileno())
            self.loop.add_writer(way.target.fileno(), self._writable, way)
            return
        except OSError:
            self._close()
            return
        if way.ended:
            self._finish(way)

    def _writable(self, way: _Way) -> None:
        self.loop.remove_writer(way.target.fileno())
        self._flush(way)
        if not way.held and not way.ended and not self.closed:
            self.loop.add_reader(way.source.fileno(), self._readable, way)

    def _finish(self, way: _Way) -> None:
        """The source closed: once the pipe is empty, the target is told (FIN)."""
        if way.held:
            self._flush(way)
            return
        try:
            way.target.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        if way.source is self.client:
            self.client_closed()
        if all(w.ended and not w.held for w in self.ways):
            self._close()

    def _fail(self, err: OSError) -> None:
        log.info("%s:%d unreachable: %s", *self.server, err)
        self._close()

    def _close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for sock in (self.client, self.upstream):
            fd = sock.fileno()
            if fd >= 0:
                self.loop.remove_reader(fd)
                self.loop.remove_writer(fd)
            sock.close()
        for way in self.ways:
            self.pipes.give(way.pipe, empty=not way.held)
        self.client_closed()
