"""SPDY/3.1 framing and sessions, against the bytes real kubectl sends.

The recordings in data/streaming/ are what kubectl 1.20 (Debian's, SPDY) sent
and what our server answered, captured by test_streaming_server's stub API
server while `kubectl exec p -- sh -c 'echo hi; exit 3'` and `kubectl
port-forward p 23470:47613` (one connection, "ping" echoed) ran. Every header
block in them is compressed in one context per direction, with the spec's
dictionary, so parsing them at all proves both."""

from __future__ import annotations

import queue
import threading
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from podnet.streaming import spdy
from podnet.streaming.spdy_session import SESSION_WINDOW, STREAM_WINDOW, SpdySession, SpdyStream, \
    StreamClosedError

DATA = Path(__file__).parent / "data" / "streaming"


def recorded(name: str) -> bytes:
    """A recording's SPDY bytes: what follows the HTTP upgrade's headers."""
    return (DATA / name).read_bytes().partition(b"\r\n\r\n")[2]


def frames_of(data: bytes) -> list[spdy.Frame]:
    return spdy.FrameReader().feed(data)


def test_the_dictionary_is_the_one_kubectl_compresses_with() -> None:
    first_block = recorded("kubectl-1.20-exec.up.bin")[18:]  # after the SYN_STREAM's 8 + 10 bytes
    assert first_block[:2] == b"\x78\xf9"  # zlib, with a preset dictionary...
    assert first_block[2:6] == zlib.adler32(spdy.DICTIONARY).to_bytes(4, "big")  # ...which is ours


def test_kubectl_exec_opens_error_stdout_and_stderr_streams_in_turn() -> None:
    frames = frames_of(recorded("kubectl-1.20-exec.up.bin"))
    assert [(frame.stream_id, spdy.header(frame.headers, "streamType")) for frame in frames
            if isinstance(frame, spdy.SynStream)] == [(1, "error"), (3, "stdout"), (5, "stderr")]


def test_our_answer_to_kubectl_exec_carries_the_output_and_the_exit_status() -> None:
    frames = frames_of(recorded("kubectl-1.20-exec.down.bin"))
    assert [frame.stream_id for frame in frames if isinstance(frame, spdy.SynReply)] == [1, 3, 5]
    out = b"".join(frame.data for frame in frames if isinstance(frame, spdy.Data) and frame.stream_id == 3)
    status = b"".join(frame.data for frame in frames if isinstance(frame, spdy.Data) and frame.stream_id == 1)
    assert out == b"hi\n"
    assert b'"reason":"NonZeroExitCode"' in status and b'{"reason":"ExitCode","message":"3"}' in status
    assert isinstance(frames[-1], spdy.GoAway) and frames[-1].last_good_stream_id == 5


def test_kubectl_port_forward_pairs_an_error_and_a_data_stream_by_request_id() -> None:
    frames = frames_of(recorded("kubectl-1.20-portforward.up.bin"))
    opened = [dict(frame.headers) for frame in frames if isinstance(frame, spdy.SynStream)]
    assert opened == [{"streamtype": "error", "port": "47613", "requestid": "0"},
                      {"streamtype": "data", "port": "47613", "requestid": "0"}]
    data = [(frame.stream_id, frame.data, frame.fin) for frame in frames if isinstance(frame, spdy.Data)]
    assert data == [(1, b"", True), (3, b"ping", False), (3, b"", True)]  # the error stream is closed at once


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 600), max_size=12))
def test_any_split_of_the_bytes_gives_the_same_frames(cuts: list[int]) -> None:
    data = recorded("kubectl-1.20-portforward.up.bin")
    reader, frames, start = spdy.FrameReader(), [], 0
    for cut in sorted(cut for cut in cuts if cut <= len(data)) + [len(data)]:
        frames += reader.feed(data[start:cut])
        start = cut
    assert frames == frames_of(data)


ROUND_TRIP = [
    spdy.SynStream(1, (("streamtype", "data"), ("port", "80"), ("port", "81")), fin=True, priority=3),
    spdy.SynReply(1, ()),
    spdy.SynReply(3, (("x-stream-protocol-version", "v4.channel.k8s.io"),), fin=True),
    spdy.HeadersFrame(5, (("a", "b"),), fin=True),
    spdy.RstStream(7, spdy.CANCEL),
    spdy.Settings(((spdy.SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20), (4, 100)), clear=True),
    spdy.Ping(9),
    spdy.GoAway(11, spdy.GOAWAY_PROTOCOL_ERROR),
    spdy.WindowUpdate(0, 65536),
    spdy.Data(13, b"x" * 70000, fin=True),
    spdy.Data(15, b""),
]


def test_every_frame_type_survives_encode_and_read_in_one_compression_context() -> None:
    compressor = spdy.HeaderCompressor()
    wire = b"".join(spdy.encode(frame, compressor) for frame in ROUND_TRIP)
    assert frames_of(wire) == ROUND_TRIP


def test_header_blocks_are_lower_case_and_flushed_so_a_go_reader_can_stop_at_the_frame_end() -> None:
    block = spdy.HeaderCompressor().compress((("StreamType", "error"),))
    assert block.endswith(b"\x00\x00\xff\xff")  # Z_SYNC_FLUSH: everything decodable now
    assert spdy.HeaderDecompressor().decompress(block) == (("streamtype", "error"),)


def _control(kind: int, body: bytes, flags: int = 0, version: int = 3) -> bytes:
    return (0x80000000 | version << 16 | kind).to_bytes(4, "big") + (flags << 24 | len(body)).to_bytes(4, "big") + body


def _block(raw: bytes) -> bytes:
    compressor = zlib.compressobj(zdict=spdy.DICTIONARY)
    return compressor.compress(raw) + compressor.flush(zlib.Z_SYNC_FLUSH)


def _pairs(*pairs: tuple[bytes, bytes], count: int | None = None) -> bytes:
    body = b"".join(len(name).to_bytes(4, "big") + name + len(value).to_bytes(4, "big") + value
                    for name, value in pairs)
    return (len(pairs) if count is None else count).to_bytes(4, "big") + body


MALFORMED = {
    "SPDY/2": (_control(spdy.PING, b"\0\0\0\1", version=2), "SPDY version 2"),
    "short RST_STREAM": (_control(spdy.RST_STREAM, b"\0" * 7), "RST_STREAM frame of 7 bytes, not 8"),
    "long PING": (_control(spdy.PING, b"\0" * 5), "PING frame of 5 bytes, not 4"),
    "SYN_STREAM on stream 0": (_control(spdy.SYN_STREAM, b"\0" * 10 + _block(_pairs())), "on stream 0"),
    "DATA on stream 0": (b"\0\0\0\0\0\0\0\1x", "DATA frame on stream 0"),
    "short SYN_STREAM": (_control(spdy.SYN_STREAM, b"\0\0\0\1"), "shorter than 10"),
    "not zlib": (_control(spdy.SYN_REPLY, b"\0\0\0\1" + b"not zlib at all"), "bad compressed header block"),
    "repeated name": (_control(spdy.HEADERS, b"\0\0\0\1" + _block(_pairs((b"a", b"1"), (b"a", b"2")))),
                      "repeated name"),
    "empty name": (_control(spdy.HEADERS, b"\0\0\0\1" + _block(_pairs((b"", b"1")))), "empty or repeated name"),
    "count too high": (_control(spdy.HEADERS, b"\0\0\0\1" + _block(_pairs((b"a", b"1"), count=2))), "claims 2"),
    "cut pair": (_control(spdy.HEADERS, b"\0\0\0\1" + _block(_pairs((b"abc", b"1"))[:-2])), "ends inside"),
    "zip bomb": (_control(spdy.HEADERS, b"\0\0\0\1" + _block(_pairs((b"a", b"x" * (spdy.MAX_HEADER_BLOCK + 1))))),
                 "larger than"),
    "settings count": (_control(spdy.SETTINGS, b"\0\0\0\2" + b"\0" * 8), "does not hold 2 entries"),
    "zero window delta": (_control(spdy.WINDOW_UPDATE, b"\0\0\0\1\0\0\0\0"), "zero delta"),
}


@pytest.mark.parametrize("wire, problem", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_frames_are_one_clear_protocol_error(wire: bytes, problem: str) -> None:
    with pytest.raises(spdy.SpdyProtocolError, match=problem):
        frames_of(wire)


def test_unknown_control_frames_are_ignored_as_the_spec_says() -> None:
    assert frames_of(_control(0x77, b"whatever") + _control(spdy.PING, b"\0\0\0\5")) == [spdy.Ping(5)]


def _mutations() -> st.SearchStrategy[bytes]:
    base = recorded("kubectl-1.20-portforward.up.bin")
    flip = st.tuples(st.integers(0, len(base) - 1), st.integers(0, 255)).map(
        lambda change: base[:change[0]] + bytes([change[1]]) + base[change[0] + 1:])
    return st.one_of(flip, st.integers(0, len(base)).map(lambda n: base[:n]), st.binary(max_size=400),
                     st.binary(max_size=64).map(lambda tail: base + tail))


@settings(max_examples=500, deadline=None)
@given(_mutations())
def test_garbage_is_a_protocol_error_or_frames_never_a_crash(wire: bytes) -> None:
    try:
        frames_of(wire)
    except spdy.SpdyProtocolError as err:
        assert str(err) and "\n" not in str(err)


class PipeTransport:
    """The session's side of an in-memory connection: the test feeds the peer's bytes."""

    def __init__(self) -> None:
        self.incoming: queue.Queue[bytes] = queue.Queue()
        self.sent = bytearray()
        self.closed = False
        self._sent_any = threading.Condition()

    def recv(self) -> bytes:
        return b"" if self.closed else self.incoming.get()

    def sendall(self, data: bytes | bytearray | memoryview) -> None:
        if self.closed:
            raise ConnectionError("closed")
        with self._sent_any:
            self.sent += data
            self._sent_any.notify_all()

    def close(self) -> None:
        self.closed = True
        self.incoming.put(b"")

    def frames(self) -> list[spdy.Frame]:
        return frames_of(bytes(self.sent))

    def wait_for(self, predicate: Callable[[list[spdy.Frame]], bool], timeout: float = 5) -> list[spdy.Frame]:
        with self._sent_any:
            assert self._sent_any.wait_for(lambda: predicate(self.frames()), timeout), self.frames()
        return self.frames()


class Peer:
    """The client's side: frames in its own compression context."""

    def __init__(self, transport: PipeTransport) -> None:
        self.transport = transport
        self.compressor = spdy.HeaderCompressor()

    def send(self, *frames: spdy.Frame) -> None:
        self.transport.incoming.put(b"".join(spdy.encode(frame, self.compressor) for frame in frames))


def serving(accept: Callable[[SpdyStream], bool] | None = None
            ) -> tuple[SpdySession, Peer, threading.Thread, list[SpdyStream]]:
    accepted: list[SpdyStream] = []

    def take(stream: SpdyStream) -> bool:
        accepted.append(stream)
        return accept is None or accept(stream)

    transport = PipeTransport()
    session = SpdySession(transport, take)
    thread = threading.Thread(target=session.serve, daemon=True)
    thread.start()
    return session, Peer(transport), thread, accepted


def test_a_session_opens_big_windows_and_answers_streams_and_pings() -> None:
    session, peer, thread, accepted = serving()
    peer.send(spdy.SynStream(1, (("streamtype", "stdin"),)), spdy.Ping(7))
    frames = peer.transport.wait_for(lambda frames: spdy.Ping(7) in frames)
    assert frames[:2] == [spdy.Settings(((spdy.SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW),)),
                          spdy.WindowUpdate(0, SESSION_WINDOW - spdy.DEFAULT_WINDOW)]
    assert spdy.SynReply(1, ()) in frames and [stream.header("streamType") for stream in accepted] == ["stdin"]
    peer.send(spdy.Ping(8))  # an even ID answers a ping of ours: not echoed
    peer.transport.close()
    thread.join(5)
    assert spdy.Ping(8) not in peer.transport.frames() and session.closed.is_set()


def test_stream_data_reads_in_order_then_ends_at_fin_and_window_updates_follow_reading() -> None:
    session, peer, thread, accepted = serving()
    chunk = b"x" * (STREAM_WINDOW // 4)
    peer.send(spdy.SynStream(1, ()), spdy.Data(1, b"a"), spdy.Data(1, chunk), spdy.Data(1, chunk))
    peer.transport.wait_for(lambda frames: spdy.SynReply(1, ()) in frames)
    stream = accepted[0]
    assert [stream.read(), stream.read(), stream.read()] == [b"a", chunk, chunk]
    updates = [frame for frame in peer.transport.frames() if isinstance(frame, spdy.WindowUpdate) and frame.stream_id]
    assert updates == [spdy.WindowUpdate(1, 1 + 2 * len(chunk))]  # one update, once half a window is read
    peer.send(spdy.Data(1, b"", fin=True))
    assert stream.read() == b""
    stream.write(b"answer")
    stream.close()
    frames = peer.transport.wait_for(lambda frames: spdy.Data(1, b"", fin=True) in frames)
    assert spdy.Data(1, b"answer") in frames
    peer.transport.close()
    thread.join(5)


def test_streams_the_peer_may_not_open_are_reset_and_refused_ones_too() -> None:
    session, peer, thread, accepted = serving(accept=lambda stream: stream.header("ok") == "yes")
    peer.send(spdy.SynStream(2, ()), spdy.SynStream(5, (("ok", "no"),)), spdy.SynStream(3, (("ok", "yes"),)),
              spdy.SynStream(7, (("ok", "yes"),)))
    frames = peer.transport.wait_for(lambda frames: spdy.SynReply(7, ()) in frames)
    assert spdy.RstStream(2, spdy.PROTOCOL_ERROR) in frames  # an even ID is the server's to use
    assert spdy.RstStream(5, spdy.REFUSED_STREAM) in frames
    assert spdy.RstStream(3, spdy.PROTOCOL_ERROR) in frames  # IDs only go up
    peer.transport.close()
    thread.join(5)


def test_a_reset_ends_reading_and_writing_and_a_dead_session_ends_every_stream() -> None:
    session, peer, thread, accepted = serving()
    peer.send(spdy.SynStream(1, ()), spdy.SynStream(3, ()), spdy.RstStream(1, spdy.CANCEL))
    peer.transport.wait_for(lambda frames: spdy.SynReply(3, ()) in frames)
    first, second = accepted
    assert first.read() == b""
    with pytest.raises(StreamClosedError):
        first.write(b"late")
    peer.transport.close()
    thread.join(5)
    assert second.read() == b""
    with pytest.raises(StreamClosedError):
        second.write(b"after the end")


def test_a_protocol_error_ends_the_session_with_goaway() -> None:
    session, peer, thread, accepted = serving()
    peer.send(spdy.SynStream(1, ()))
    peer.transport.incoming.put(_control(spdy.PING, b"\0" * 3))
    thread.join(5)
    assert not thread.is_alive() and peer.transport.closed
    assert peer.transport.frames()[-1] == spdy.GoAway(1, spdy.GOAWAY_PROTOCOL_ERROR)
    assert session.error == "PING frame of 3 bytes, not 4"
    assert accepted[0].read() == b""


@settings(max_examples=200, deadline=None)
@given(_mutations())
def test_a_session_fed_garbage_ends_cleanly(wire: bytes) -> None:
    transport = PipeTransport()
    streams: list[SpdyStream] = []
    session = SpdySession(transport, lambda stream: streams.append(stream) is None)
    transport.incoming.put(wire)
    transport.incoming.put(b"")
    session.serve()  # returns: no exception escapes, whatever the bytes
    assert session.closed.is_set() and transport.closed
    for stream in streams:  # the end of the session ends its streams: what they hold, then their end
        assert any(stream.read() == b"" for _ in range(len(wire) + 1))
