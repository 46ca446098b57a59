"""Proxied TCP connections: client <-> server through splice(2), on an epoll set of
their own that the event loop watches as one file descriptor.

The seed's ipvs walk-through is a stream of short curls, so what a connection
costs to set up and tear down is what users feel. asyncio's add_reader and
remove_reader make a handle and an epoll_ctl each time, several times per
connection; here each socket is registered once, edge-triggered for both
directions, and leaves the set when it is closed. No coroutine, task or future
is made per connection. Bytes move socket -> pipe -> socket without entering
Python, and the pipes are kept for the next connection.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import select
import socket
import weakref
from collections.abc import Callable

log = logging.getLogger("podnet.proxy.userspace")
_CHUNK = 1 << 16
_SPLICE = os.SPLICE_F_NONBLOCK | os.SPLICE_F_MOVE
_KEPT_PIPES = 256
_READS = select.EPOLLIN | select.EPOLLET
_READS_AND_WRITES = _READS | select.EPOLLOUT
_READABLE = select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR
_WRITABLE = select.EPOLLOUT | select.EPOLLHUP | select.EPOLLERR
_BATCH = 256  # events taken per turn of the loop; more wait for the next turn


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


class Hub:
    """One epoll set per event loop for every relayed socket; the loop sees only
    its file descriptor, and a readable set is drained in one callback."""

    _of: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.pipes = Pipes()
        self._epoll = select.epoll()
        self._handlers: dict[int, Callable[[int], None]] = {}
        loop.add_reader(self._epoll.fileno(), self._dispatch)

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> Hub:
        hub = cls._of.get(loop)
        if hub is None:
            hub = cls._of[loop] = cls(loop)
        return hub

    def watch(self, sock: socket.socket, handler: Callable[[int], None], writes: bool) -> None:
        """Until `forget`, `handler(events)` is called when the socket becomes
        readable, or writable if `writes` (edges: it must read or write until EAGAIN)."""
        self._handlers[sock.fileno()] = handler
        self._epoll.register(sock.fileno(), _READS_AND_WRITES if writes else _READS)

    def watch_writes(self, sock: socket.socket) -> None:
        """Writability too, from now on (an edge comes at once if it is writable)."""
        self._epoll.modify(sock.fileno(), _READS_AND_WRITES)

    def forget(self, sock: socket.socket) -> None:
        """Before the socket is closed; closing it takes it out of the set."""
        self._handlers.pop(sock.fileno(), None)

    def _dispatch(self) -> None:
        for fd, events in self._epoll.poll(0, _BATCH):
            handler = self._handlers.get(fd)
            if handler is not None:  # else closed earlier in this batch
                handler(events)


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

    def __init__(self, hub: Hub, client: socket.socket, server: tuple[str, int],
                 client_closed: Callable[[], None]) -> None:
        self.hub, self.client, self.client_closed = hub, client, client_closed
        family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET  # the endpoint's, whatever the client's
        self.upstream = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
        client.setblocking(False)
        self.outward: _Way | None = None  # client -> server, once connected
        self.inward: _Way | None = None  # server -> client
        self.closed = False
        self.client_writes_watched = False  # until a write to the client would block
        self.server = server
        code = self.upstream.connect_ex(server)
        if code not in (0, errno.EINPROGRESS):
            self._fail(code)
            return
        hub.watch(self.upstream, self._upstream_event, writes=True)  # the connect ends in writability
        hub.watch(client, self._client_event, writes=False)

    def _upstream_event(self, events: int) -> None:
        if self.outward is None or self.inward is None:
            self._connected(events)
            return
        if events & _READABLE:
            self._read(self.inward)
        if events & _WRITABLE and not self.closed:
            self._writable(self.outward)

    def _client_event(self, events: int) -> None:
        if self.outward is None or self.inward is None:
            return  # what the client sends waits in its socket until the server answers the connect
        if events & _READABLE:
            self._read(self.outward)
        if events & _WRITABLE and not self.closed:
            self._writable(self.inward)

    def _connected(self, events: int) -> None:
        if events & select.EPOLLERR:
            self._fail(self.upstream.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
            return
        pipes = self.hub.pipes
        self.outward = _Way(self.client, self.upstream, pipes.take())
        self.inward = _Way(self.upstream, self.client, pipes.take())
        self._read(self.outward)  # the client's edges before the connect were not acted on
        if events & _READABLE:
            self._read(self.inward)

    def _read(self, way: _Way) -> None:
        """Reads until nothing is left, so an answer and the FIN behind it take one
        turn of the loop, not two. While the pipe holds bytes the target would not
        take, the source is left alone; the target's writability resumes it."""
        while not self.closed and not way.held and not way.ended:
            try:
                moved = os.splice(way.source.fileno(), way.pipe[1], _CHUNK, flags=_SPLICE)
            except BlockingIOError:
                return
            except OSError:
                self._close()
                return
            if moved == 0:
                way.ended = True
                self._finish(way)
                return
            way.held = moved
            self._flush(way)

    def _flush(self, way: _Way) -> None:
        try:
            while way.held:
                way.held -= os.splice(way.pipe[0], way.target.fileno(), way.held, flags=_SPLICE)
        except BlockingIOError:
            if way.target is self.client and not self.client_writes_watched:
                self.client_writes_watched = True
                self.hub.watch_writes(self.client)
        except OSError:
            self._close()

    def _writable(self, way: _Way) -> None:
        if not way.held:
            return  # nothing was waiting for this
        self._flush(way)
        self._read(way)  # a way with bytes held has not ended: its source is read again once they are out

    def _finish(self, way: _Way) -> None:
        """The source closed, and the pipe is empty (it is read only when empty): the
        target is told (FIN), by closing both sockets once the other way has ended too."""
        if way.source is self.client:
            self.client_closed()
        other = self.inward if way is self.outward else self.outward
        if other is not None and other.ended and not other.held:
            self._close()
            return
        try:
            way.target.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _fail(self, code: int) -> None:
        log.info("%s:%d unreachable: %s", *self.server, os.strerror(code))
        self._close()

    def _close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for sock in (self.client, self.upstream):
            self.hub.forget(sock)
            sock.close()
        for way in (self.outward, self.inward):
            if way is not None:
                self.hub.pipes.give(way.pipe, empty=not way.held)
        self.client_closed()
