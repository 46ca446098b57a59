"""A SPDY/3.1 session over a Transport: streams opened by the peer (or by us, as a
client), each a pair of byte pipes with its own half-close.

One thread runs serve(), reading frames; any thread may write a stream. Writes are
serialised by one lock, which also keeps the header-compression context in step
with the bytes on the wire.

Flow control, as moby/spdystream (kubectl's side) does it: spdystream never sends
WINDOW_UPDATE and ignores ours, so a sender that waited for window would stall
every Go peer after 64 KiB. We therefore never wait for window. For a peer that
does honour windows, the session opens with large ones (SETTINGS and a session
WINDOW_UPDATE, which spdystream ignores too) and sends WINDOW_UPDATEs as our
consumers read, in batches of half a window, so such a peer never stalls and an
update costs nothing per frame. Memory is bounded the way spdystream bounds its
own: a stream whose consumer falls behind by a whole window stops the frame
reader, and TCP pushes back on the peer."""

from __future__ import annotations

import threading
from collections.abc import Callable

from podnet.streaming import spdy
from podnet.streaming.pipe import Pipe, Sink
from podnet.streaming.transport import Transport

STREAM_WINDOW = 4 * 1024 * 1024  # what each stream's pipe holds
SESSION_WINDOW = 16 * 1024 * 1024
MAX_DATA_FRAME = 64 * 1024


class StreamClosedError(ConnectionError):
    """Writing to a stream that we finished, the peer reset, or whose session ended."""


class SpdyStream:
    def __init__(self, session: SpdySession, stream_id: int, headers: spdy.Headers) -> None:
        self.id = stream_id
        self.headers = headers
        self._session = session
        self._incoming = Pipe(STREAM_WINDOW, on_consumed=self._consumed)
        self._replied = threading.Event()  # no DATA may go out before the SYN_REPLY
        self._fin_sent = False
        self._reset = False
        self._unacknowledged = 0

    def header(self, name: str) -> str | None:
        return spdy.header(self.headers, name)

    def read(self) -> bytes:
        """The next data the peer sent; b"" once it finished the stream or reset it."""
        return self._incoming.read()

    def divert(self, sink: Sink) -> None:
        """Have the session's reader hand the peer's data straight to sink (see Pipe.divert)."""
        self._incoming.divert(sink)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._replied.wait()
        view = memoryview(data)
        for start in range(0, len(view), MAX_DATA_FRAME):
            if self._fin_sent or self._reset:
                raise StreamClosedError(f"stream {self.id} is closed")
            self._session.send_data(self.id, view[start:start + MAX_DATA_FRAME])

    def close(self) -> None:
        """Half-close: a FIN, once; the peer may go on sending."""
        self._replied.wait()
        if self._fin_sent or self._reset:
            return
        self._fin_sent = True
        try:
            self._session.send_data(self.id, b"", fin=True)
        except ConnectionError:
            pass
        self._session.forget_if_done(self)

    def discard(self) -> None:
        """Drop what the peer has sent and will send: nobody reads this stream any more."""
        self._incoming.abort()
        self._session.forget_if_done(self)

    def reset(self, status: int = spdy.CANCEL) -> None:
        """Abort both directions."""
        if self._reset:
            return
        self._abandon()
        try:
            self._session.send(spdy.RstStream(self.id, status))
        except ConnectionError:
            pass
        self._session.forget(self)

    @property
    def done(self) -> bool:
        return self._reset or (self._fin_sent and self._incoming.ended)

    def _abandon(self) -> None:
        """Neither side may use the stream any more: readers see its end, writers fail."""
        self._reset = True
        self._incoming.abort()
        self._replied.set()

    def _consumed(self, size: int) -> None:
        self._unacknowledged += size
        stream_delta = 0
        if self._unacknowledged >= STREAM_WINDOW // 2 and not self._incoming.ended:
            stream_delta, self._unacknowledged = self._unacknowledged, 0
        self._session.acknowledge(self.id, stream_delta, size)


class SpdySession:
    """serve() reads until the peer goes; accept decides each stream the peer opens."""

    def __init__(self, transport: Transport, accept: Callable[[SpdyStream], bool] | None = None,
                 client: bool = False) -> None:
        self.transport = transport
        self._accept = accept
        self._write_lock = threading.Lock()
        self._compressor = spdy.HeaderCompressor()
        self._streams: dict[int, SpdyStream] = {}
        self._streams_lock = threading.Lock()
        self._last_peer_stream = 0
        self._next_stream = 1 if client else 2
        self._going_away = False
        self._unacknowledged = 0
        self.closed = threading.Event()
        self.error: str | None = None  # why the peer was cut off, when it broke the protocol

    def serve(self) -> None:
        reader = spdy.FrameReader()
        try:
            self.send_all([spdy.Settings(((spdy.SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW),)),
                           spdy.WindowUpdate(0, SESSION_WINDOW - spdy.DEFAULT_WINDOW)])
            while chunk := self.transport.recv():
                for frame in reader.feed(chunk):
                    self._handle(frame)
        except spdy.SpdyProtocolError as err:
            self.error = str(err)
            try:
                self.send(spdy.GoAway(self._last_peer_stream, spdy.GOAWAY_PROTOCOL_ERROR))
            except ConnectionError:
                pass
        except ConnectionError:
            pass
        finally:
            self._terminate()

    def open_stream(self, headers: spdy.Headers, timeout: float = 30.0) -> SpdyStream:
        """A stream of ours (the client's side), once the peer has replied to it."""
        with self._streams_lock:
            stream = SpdyStream(self, self._next_stream, headers)
            self._next_stream += 2
            self._streams[stream.id] = stream
        self.send(spdy.SynStream(stream.id, headers))
        if not stream._replied.wait(timeout) or stream._reset:
            stream.reset()
            raise StreamClosedError(f"the peer did not accept stream {stream.id}")
        return stream

    def send(self, frame: spdy.Frame) -> None:
        self.send_all([frame])

    def send_all(self, frames: list[spdy.Frame]) -> None:
        """Frames in one write (one TLS record, one system call)."""
        with self._write_lock:
            if self.closed.is_set():
                raise StreamClosedError("the SPDY session has ended")
            self.transport.sendall(b"".join(spdy.encode(frame, self._compressor) for frame in frames))

    def send_data(self, stream_id: int, data: bytes | bytearray | memoryview, fin: bool = False) -> None:
        header = spdy.data_header(stream_id, len(data), fin)
        with self._write_lock:
            if self.closed.is_set():
                raise StreamClosedError("the SPDY session has ended")
            self.transport.sendall(header + data if len(data) else header)

    def goaway(self) -> None:
        """No more streams: the peer finishes what it has and closes."""
        self._going_away = True
        try:
            self.send(spdy.GoAway(self._last_peer_stream))
        except ConnectionError:
            pass

    def close(self) -> None:
        self.transport.close()

    def acknowledge(self, stream_id: int, stream_delta: int, consumed: int) -> None:
        """A consumer read `consumed` bytes: reopen the stream's window by stream_delta
        (0: not yet worth a frame) and the session's once half of it is used."""
        frames: list[spdy.Frame] = [spdy.WindowUpdate(stream_id, stream_delta)] if stream_delta else []
        with self._streams_lock:
            self._unacknowledged += consumed
            if self._unacknowledged >= SESSION_WINDOW // 2:
                frames.append(spdy.WindowUpdate(0, self._unacknowledged))
                self._unacknowledged = 0
        if frames:
            try:
                self.send_all(frames)
            except ConnectionError:
                pass

    def forget(self, stream: SpdyStream) -> None:
        with self._streams_lock:
            self._streams.pop(stream.id, None)

    def forget_if_done(self, stream: SpdyStream) -> None:
        if stream.done:
            self.forget(stream)

    def _stream(self, stream_id: int) -> SpdyStream | None:
        with self._streams_lock:
            return self._streams.get(stream_id)

    def _handle(self, frame: spdy.Frame) -> None:
        if isinstance(frame, spdy.Data):
            stream = self._stream(frame.stream_id)
            if stream is None or stream._incoming.ended:
                return  # a stream that is gone: spdystream drops these too
            if frame.data:
                stream._incoming.put(frame.data)
            if frame.fin:
                self._peer_finished(stream)
        elif isinstance(frame, spdy.SynStream):
            self._peer_opened(frame)
        elif isinstance(frame, spdy.SynReply):
            stream = self._stream(frame.stream_id)
            if stream is not None:
                stream._replied.set()
                if frame.fin:
                    self._peer_finished(stream)
        elif isinstance(frame, spdy.HeadersFrame):
            stream = self._stream(frame.stream_id)
            if stream is not None and frame.fin:
                self._peer_finished(stream)
        elif isinstance(frame, spdy.RstStream):
            stream = self._stream(frame.stream_id)
            if stream is not None:
                stream._abandon()
                self.forget(stream)
        elif isinstance(frame, spdy.Ping):
            if frame.ping_id % 2 != self._next_stream % 2:  # the peer's ping, not an answer to ours
                self.send(frame)
        elif isinstance(frame, spdy.GoAway):
            self._going_away = True

    def _peer_opened(self, frame: spdy.SynStream) -> None:
        ours = frame.stream_id % 2 == self._next_stream % 2
        if ours or frame.stream_id <= self._last_peer_stream:
            self.send(spdy.RstStream(frame.stream_id, spdy.PROTOCOL_ERROR))
            return
        self._last_peer_stream = frame.stream_id
        stream = SpdyStream(self, frame.stream_id, frame.headers)
        if self._going_away or self._accept is None or not self._accept(stream):
            self.send(spdy.RstStream(frame.stream_id, spdy.REFUSED_STREAM))
            stream._abandon()
            return
        with self._streams_lock:
            self._streams[stream.id] = stream
        self.send(spdy.SynReply(stream.id, (), fin=frame.unidirectional))
        stream._fin_sent = frame.unidirectional
        stream._replied.set()
        if frame.fin:
            self._peer_finished(stream)

    def _peer_finished(self, stream: SpdyStream) -> None:
        stream._incoming.end()
        self.forget_if_done(stream)

    def _terminate(self) -> None:
        with self._write_lock:
            self.closed.set()
        with self._streams_lock:
            streams, self._streams = list(self._streams.values()), {}
        for stream in streams:
            stream._abandon()
        self.transport.close()
