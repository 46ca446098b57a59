"""Bytes handed from a connection's reader thread to whoever consumes them (a SPDY
stream's data, a WebSocket channel's).

Either a consumer thread reads them, the pipe bounded so a consumer that stops
reading stops the reader rather than filling memory (as the Go servers' pipes
do), or the consumer asks for them to be diverted: the reader thread then hands
each chunk straight to a sink, the way port-forward writes to the pod's socket.
A hand-off between threads costs a wake-up and a GIL round trip per chunk, which
at a gigabit is most of the CPU a byte costs."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

DEFAULT_LIMIT = 4 * 1024 * 1024

Sink = Callable[[bytes], None]  # gets each chunk in order, then b"" once at the end


class Pipe:
    def __init__(self, limit: int = DEFAULT_LIMIT, on_consumed: Callable[[int], None] | None = None) -> None:
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._limit = limit
        self._ended = False  # the writer is done: readers drain what is left, then see EOF
        self._aborted = False  # nobody wants the data any more: both sides stop now
        self._ready = threading.Condition()
        self._on_consumed = on_consumed
        self._sink: Sink | None = None

    def put(self, data: bytes) -> bool:
        """Queue data for the reader (waiting while the pipe is full), or give it to
        the sink; False once nobody will take it."""
        with self._ready:
            while self._buffered >= self._limit and not self._aborted and self._sink is None:
                self._ready.wait()
            if self._aborted or self._ended:
                return False
            sink = self._sink
            if sink is None:
                self._chunks.append(data)
                self._buffered += len(data)
                self._ready.notify_all()
                return True
        sink(data)
        self._consumed(len(data))
        return True

    def read(self) -> bytes:
        """The next chunk as it was put; b"" at the end."""
        with self._ready:
            while not self._chunks and not self._ended and not self._aborted:
                self._ready.wait()
            if self._aborted or not self._chunks:
                return b""
            data = self._chunks.popleft()
            self._buffered -= len(data)
            self._ready.notify_all()
        self._consumed(len(data))
        return data

    def divert(self, sink: Sink) -> None:
        """From now on chunks go to sink on the writer's thread; what is buffered goes first."""
        with self._ready:
            while self._chunks:
                data = self._chunks.popleft()
                sink(data)
                self._consumed(len(data))
            self._buffered = 0
            self._sink = sink
            finished = self._ended or self._aborted
            self._ready.notify_all()
        if finished:
            sink(b"")

    def end(self) -> None:
        """No more data: the reader gets what is buffered, then EOF."""
        self._finish(aborted=False)

    def abort(self) -> None:
        """Drop what is buffered; the reader sees EOF and the writer stops at once."""
        self._finish(aborted=True)

    @property
    def ended(self) -> bool:
        return self._ended or self._aborted

    def _finish(self, aborted: bool) -> None:
        with self._ready:
            already = self._ended or self._aborted
            self._ended = self._ended or not aborted
            self._aborted = self._aborted or aborted
            if aborted:
                self._chunks.clear()
                self._buffered = 0
            self._ready.notify_all()
            sink = None if already else self._sink
        if sink is not None:
            sink(b"")

    def _consumed(self, size: int) -> None:
        if self._on_consumed is not None:
            self._on_consumed(size)
