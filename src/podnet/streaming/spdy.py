"""SPDY/3.1 framing (draft-mbelshe-httpbis-spdy-00 and the 3.1 amendments), the
wire format kubectl's exec, attach and port-forward use when they do not speak
WebSocket.

Frames are immutable values; FrameReader turns bytes into frames incrementally
and encode turns frames into bytes. Name/value header blocks are zlib-compressed
with one context per direction for the connection's whole life, primed with the
spec's fixed dictionary, so a reader and its peer's writer must see every header
block in order. Sans-IO: sockets and threads live in spdy_session."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

VERSION = 3
FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02
FLAG_CLEAR_SETTINGS = 0x01
MAX_LENGTH = (1 << 24) - 1  # the 24-bit length field
MAX_HEADER_BLOCK = 256 * 1024  # decompressed; anything larger is an attack, not kubectl
DEFAULT_WINDOW = 64 * 1024

SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9

# RST_STREAM status codes
PROTOCOL_ERROR, INVALID_STREAM, REFUSED_STREAM, UNSUPPORTED_VERSION, CANCEL, INTERNAL_ERROR = 1, 2, 3, 4, 5, 6
FLOW_CONTROL_ERROR, STREAM_IN_USE, STREAM_ALREADY_CLOSED = 7, 8, 9
# GOAWAY status codes
GOAWAY_OK, GOAWAY_PROTOCOL_ERROR, GOAWAY_INTERNAL_ERROR = 0, 1, 2

SETTINGS_INITIAL_WINDOW_SIZE = 7

_WORDS = ("options head post put delete trace accept accept-charset accept-encoding accept-language "
          "accept-ranges age allow authorization cache-control connection content-base content-encoding "
          "content-language content-length content-location content-md5 content-range content-type date etag "
          "expect expires from host if-match if-modified-since if-none-match if-range if-unmodified-since "
          "last-modified location max-forwards pragma proxy-authenticate proxy-authorization range referer "
          "retry-after server te trailer transfer-encoding upgrade user-agent vary via warning www-authenticate "
          "method get status").split() + ["200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie",
                                          "keep-alive", "origin"]
_TAIL = ("100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
         "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized"
         "403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable"
         "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
         "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
         "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.")
# The spec's header-compression dictionary (section 2.6.10.1): length-prefixed
# words, then a run of text. zlib checks its Adler-32 against the peer's, so one
# wrong byte fails the first header block.
DICTIONARY = b"".join(struct.pack(">I", len(word)) + word.encode() for word in _WORDS) + _TAIL.encode()

_CONTROL = struct.Struct(">HHI")  # control bit + version, type, flags + length
_DATA = struct.Struct(">II")  # stream id, flags + length
_U32 = struct.Struct(">I")
_TWO_U32 = struct.Struct(">II")

Headers = tuple[tuple[str, str], ...]  # lower-case name, one value per pair, in order


class SpdyProtocolError(Exception):
    """The peer broke the framing; the session answers with GOAWAY and closes."""


@dataclass(frozen=True)
class SynStream:
    stream_id: int
    headers: Headers
    fin: bool = False
    unidirectional: bool = False
    associated_to: int = 0
    priority: int = 0


@dataclass(frozen=True)
class SynReply:
    stream_id: int
    headers: Headers = ()
    fin: bool = False


@dataclass(frozen=True)
class RstStream:
    stream_id: int
    status: int


@dataclass(frozen=True)
class Settings:
    values: tuple[tuple[int, int], ...]  # (id, value); the per-entry persistence flags are dropped
    clear: bool = False


@dataclass(frozen=True)
class Ping:
    ping_id: int


@dataclass(frozen=True)
class GoAway:
    last_good_stream_id: int
    status: int = GOAWAY_OK


@dataclass(frozen=True)
class HeadersFrame:
    stream_id: int
    headers: Headers
    fin: bool = False


@dataclass(frozen=True)
class WindowUpdate:
    stream_id: int  # 0 for the session's window (SPDY/3.1)
    delta: int


@dataclass(frozen=True)
class Data:
    stream_id: int
    data: bytes
    fin: bool = False


Frame = SynStream | SynReply | RstStream | Settings | Ping | GoAway | HeadersFrame | WindowUpdate | Data


def header(headers: Headers, name: str) -> str | None:
    """The first value of a header (names are compared lower-case), as Go's Header.Get."""
    name = name.lower()
    return next((value for key, value in headers if key == name), None)


class HeaderCompressor:
    """Our direction's compression context: one per connection, used in send order."""

    def __init__(self) -> None:
        self._zlib = zlib.compressobj(zdict=DICTIONARY)

    def compress(self, headers: Headers) -> bytes:
        grouped: dict[str, list[str]] = {}
        for name, value in headers:
            grouped.setdefault(name.lower(), []).append(value)  # spdystream rejects upper-case names
        parts = [_U32.pack(len(grouped))]
        for name, values in grouped.items():
            raw_name, raw_value = name.encode("latin-1"), "\0".join(values).encode("latin-1")
            parts += [_U32.pack(len(raw_name)), raw_name, _U32.pack(len(raw_value)), raw_value]
        return self._zlib.compress(b"".join(parts)) + self._zlib.flush(zlib.Z_SYNC_FLUSH)


class HeaderDecompressor:
    """The peer's direction's context: every header block it sends, in order."""

    def __init__(self) -> None:
        self._zlib = zlib.decompressobj(zdict=DICTIONARY)

    def decompress(self, block: bytes) -> Headers:
        try:
            raw = self._zlib.decompress(block, MAX_HEADER_BLOCK + 1)
        except zlib.error as err:
            raise SpdyProtocolError(f"bad compressed header block: {err}") from None
        if len(raw) > MAX_HEADER_BLOCK or self._zlib.unconsumed_tail:
            raise SpdyProtocolError(f"header block larger than {MAX_HEADER_BLOCK} bytes")
        return _parse_header_block(raw)


def _parse_header_block(raw: bytes) -> Headers:
    def take(size: int) -> bytes:
        nonlocal offset
        if offset + size > len(raw):
            raise SpdyProtocolError("header block ends inside a name/value pair")
        offset += size
        return raw[offset - size:offset]

    offset = 0
    (count,) = _U32.unpack(take(4))
    if count > len(raw) // 8:  # each pair needs at least its two lengths
        raise SpdyProtocolError(f"header block claims {count} pairs in {len(raw)} bytes")
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for _ in range(count):
        name = take(_U32.unpack(take(4))[0]).decode("latin-1").lower()
        value = take(_U32.unpack(take(4))[0]).decode("latin-1")
        if not name or name in seen:
            raise SpdyProtocolError(f"header block has an empty or repeated name {name!r}")
        seen.add(name)
        pairs += [(name, part) for part in value.split("\0")]
    if offset != len(raw):
        raise SpdyProtocolError("header block has bytes after its last pair")
    return tuple(pairs)


def encode(frame: Frame, compressor: HeaderCompressor) -> bytes:
    """A frame's bytes. Frames with header blocks advance the compressor, so a
    session encodes and sends under one lock."""
    if isinstance(frame, Data):
        return data_header(frame.stream_id, len(frame.data), frame.fin) + frame.data
    if isinstance(frame, SynStream):
        flags = (FLAG_FIN if frame.fin else 0) | (FLAG_UNIDIRECTIONAL if frame.unidirectional else 0)
        body = (_TWO_U32.pack(frame.stream_id & 0x7FFFFFFF, frame.associated_to & 0x7FFFFFFF)
                + bytes([(frame.priority & 7) << 5, 0]) + compressor.compress(frame.headers))
        return _control(SYN_STREAM, flags, body)
    if isinstance(frame, SynReply | HeadersFrame):
        kind = SYN_REPLY if isinstance(frame, SynReply) else HEADERS
        body = _U32.pack(frame.stream_id & 0x7FFFFFFF) + compressor.compress(frame.headers)
        return _control(kind, FLAG_FIN if frame.fin else 0, body)
    if isinstance(frame, RstStream):
        return _control(RST_STREAM, 0, _TWO_U32.pack(frame.stream_id & 0x7FFFFFFF, frame.status))
    if isinstance(frame, Settings):
        body = _U32.pack(len(frame.values)) + b"".join(_TWO_U32.pack(key & 0xFFFFFF, value)
                                                       for key, value in frame.values)
        return _control(SETTINGS, FLAG_CLEAR_SETTINGS if frame.clear else 0, body)
    if isinstance(frame, Ping):
        return _control(PING, 0, _U32.pack(frame.ping_id))
    if isinstance(frame, GoAway):
        return _control(GOAWAY, 0, _TWO_U32.pack(frame.last_good_stream_id & 0x7FFFFFFF, frame.status))
    return _control(WINDOW_UPDATE, 0, _TWO_U32.pack(frame.stream_id & 0x7FFFFFFF, frame.delta & 0x7FFFFFFF))


def data_header(stream_id: int, length: int, fin: bool = False) -> bytes:
    """A DATA frame's 8 header bytes, for senders that write the payload beside it."""
    return _DATA.pack(stream_id & 0x7FFFFFFF, (FLAG_FIN if fin else 0) << 24 | length)


def _control(kind: int, flags: int, body: bytes) -> bytes:
    if len(body) > MAX_LENGTH:
        raise ValueError(f"SPDY control frame of {len(body)} bytes is too long")
    return _CONTROL.pack(0x8000 | VERSION, kind, flags << 24 | len(body)) + body


class FrameReader:
    """Bytes in, frames out, across any split of the input. A payload is copied
    once, when it is complete (its pieces joined), however many reads it spans."""

    def __init__(self) -> None:
        self._decompressor = HeaderDecompressor()
        self._head = bytearray()
        self._pieces: list[memoryview] = []
        self._wanted = 0  # payload bytes still missing for the frame whose head is in _head

    def feed(self, chunk: bytes) -> list[Frame]:
        frames: list[Frame] = []
        view, offset = memoryview(chunk), 0
        while offset < len(view):
            if len(self._head) < 8:
                take = min(8 - len(self._head), len(view) - offset)
                self._head += view[offset:offset + take]
                offset += take
                if len(self._head) < 8:
                    break
                self._wanted = _DATA.unpack(self._head)[1] & MAX_LENGTH
            take = min(self._wanted, len(view) - offset)
            if take:
                self._pieces.append(view[offset:offset + take])
                offset += take
                self._wanted -= take
            if self._wanted == 0:
                frame = self._complete()
                if frame is not None:
                    frames.append(frame)
        return frames

    def _complete(self) -> Frame | None:
        head = bytes(self._head)
        payload = self._pieces[0].tobytes() if len(self._pieces) == 1 else b"".join(self._pieces)
        self._head.clear()
        self._pieces.clear()
        first, second = _DATA.unpack(head)
        flags = second >> 24
        if not first & 0x80000000:
            if first == 0:
                raise SpdyProtocolError("DATA frame on stream 0")
            return Data(first, payload, bool(flags & FLAG_FIN))
        version, kind = (first >> 16) & 0x7FFF, first & 0xFFFF
        if version != VERSION:
            raise SpdyProtocolError(f"SPDY version {version} frame; only version {VERSION} is spoken")
        return self._control_frame(kind, flags, payload)

    def _control_frame(self, kind: int, flags: int, payload: bytes) -> Frame | None:
        fin = bool(flags & FLAG_FIN)
        if kind == SYN_STREAM:
            _need(payload, 10, "SYN_STREAM")
            stream_id, associated = (value & 0x7FFFFFFF for value in _TWO_U32.unpack_from(payload))
            headers = self._decompressor.decompress(payload[10:])
            return SynStream(_stream(stream_id, "SYN_STREAM"), headers, fin, bool(flags & FLAG_UNIDIRECTIONAL),
                             associated, payload[8] >> 5)
        if kind in (SYN_REPLY, HEADERS):
            name = "SYN_REPLY" if kind == SYN_REPLY else "HEADERS"
            _need(payload, 4, name)
            stream_id = _stream(_U32.unpack_from(payload)[0] & 0x7FFFFFFF, name)
            headers = self._decompressor.decompress(payload[4:])
            return SynReply(stream_id, headers, fin) if kind == SYN_REPLY else HeadersFrame(stream_id, headers, fin)
        if kind == RST_STREAM:
            stream_id, status = _exact_pair(payload, "RST_STREAM")
            return RstStream(_stream(stream_id & 0x7FFFFFFF, "RST_STREAM"), status)
        if kind == SETTINGS:
            _need(payload, 4, "SETTINGS")
            (count,) = _U32.unpack_from(payload)
            if len(payload) != 4 + 8 * count:
                raise SpdyProtocolError(f"SETTINGS frame of {len(payload)} bytes does not hold {count} entries")
            values = tuple((key & 0xFFFFFF, value) for key, value in
                           (_TWO_U32.unpack_from(payload, 4 + 8 * index) for index in range(count)))
            return Settings(values, bool(flags & FLAG_CLEAR_SETTINGS))
        if kind == PING:
            if len(payload) != 4:
                raise SpdyProtocolError(f"PING frame of {len(payload)} bytes, not 4")
            return Ping(_U32.unpack(payload)[0])
        if kind == GOAWAY:
            last_good, status = _exact_pair(payload, "GOAWAY")
            return GoAway(last_good & 0x7FFFFFFF, status)
        if kind == WINDOW_UPDATE:
            stream_id, delta = _exact_pair(payload, "WINDOW_UPDATE")
            if not delta & 0x7FFFFFFF:
                raise SpdyProtocolError("WINDOW_UPDATE with a zero delta")
            return WindowUpdate(stream_id & 0x7FFFFFFF, delta & 0x7FFFFFFF)
        return None  # the spec: unknown control frames are ignored


def _need(payload: bytes, size: int, name: str) -> None:
    if len(payload) < size:
        raise SpdyProtocolError(f"{name} frame of {len(payload)} bytes, shorter than {size}")


def _exact_pair(payload: bytes, name: str) -> tuple[int, int]:
    if len(payload) != 8:
        raise SpdyProtocolError(f"{name} frame of {len(payload)} bytes, not 8")
    first, second = _TWO_U32.unpack(payload)
    return first, second


def _stream(stream_id: int, name: str) -> int:
    if stream_id == 0:
        raise SpdyProtocolError(f"{name} frame on stream 0")
    return stream_id
