"""A container's log read back as kubelet's /containerLogs serves it: each
line's content, stdout and stderr interleaved in the order written, a line's
P records joined to the F that ends it, with the options of a PodLogOptions:
the last N lines over the rotated files and the current one, lines newer than
a time, a byte limit, the timestamp before each line, and following the log
(across rotations) until the container has exited and all of it is read.

Unlike kubelet, a line split into P records carries one timestamp, not one
per record, and the tail counts lines rather than records. A line that is no
CRI record (a file of another format, a damaged line) is passed through as it
is. The files are polled while following, at most POLL_SECONDS apart.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple, Protocol

from podnet.agent.logs import PARTIAL, files_of

POLL_SECONDS = 0.05
BLOCK = 64 * 1024
RECORD = re.compile(rb"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:\d\d)) (stdout|stderr) ([^ ]+) ")


class LogRequest(Protocol):
    """What read_log needs of a request: the fields of streaming.runtime's
    LogOptions (the pod log query's), and since_time when it has one. Read
    only, so a frozen dataclass is one."""

    @property
    def follow(self) -> bool: ...
    @property
    def tail_lines(self) -> int | None: ...
    @property
    def since_seconds(self) -> int | None: ...
    @property
    def timestamps(self) -> bool: ...
    @property
    def limit_bytes(self) -> int | None: ...


class Record(NamedTuple):
    timestamp: bytes  # as written: RFC 3339, UTC, to the nanosecond
    stream: str
    partial: bool
    content: bytes  # without the record's newline


def parse_record(line: bytes) -> Record | None:
    """A CRI record (without its newline), or None for a line that is not one."""
    found = RECORD.match(line)
    if found is None:
        return None
    timestamp, stream, tags = found.groups()
    return Record(timestamp, stream.decode(), tags.split(b":")[0] == PARTIAL, line[found.end():])


def timestamp_nanoseconds(text: bytes) -> int:
    """Nanoseconds since the epoch of a record's timestamp (any offset, any
    number of fraction digits)."""
    whole, _, rest = text.decode().partition(".")
    digits = re.match(r"\d*", rest)
    fraction = digits.group() if digits else ""
    zone = rest[len(fraction):] if rest else whole[19:]
    moment = datetime.fromisoformat(whole[:19] + ("+00:00" if zone in ("", "Z") else zone))
    return int(moment.timestamp()) * 1_000_000_000 + int((fraction + "000000000")[:9])


def read_log(files: list[Path], options: LogRequest, alive: Callable[[], bool] | None = None,
             stop: threading.Event | None = None) -> Iterator[bytes]:
    """The log's output, in pieces as they are read. `files` are oldest first,
    the last one the log being written (as logs.files_of lists them): followed
    when options.follow, and waited for if it is not there yet. A follow ends
    once alive() has said the container exited and what it wrote is read
    (never, without alive), or when stop is set."""
    output = _output(files, options, alive, stop)
    left = options.limit_bytes
    try:
        for piece in output:
            if left is not None and len(piece) >= left:
                if left > 0:
                    yield piece[:left]
                return
            if left is not None:
                left -= len(piece)
            yield piece
    finally:
        output.close()


def _since(options: LogRequest) -> int | None:
    """The earliest time shown, in nanoseconds: the later of since_seconds and since_time, as kubelet takes it."""
    candidates: list[int] = []
    if options.since_seconds is not None:
        candidates.append(time.time_ns() - options.since_seconds * 1_000_000_000)
    since_time: datetime | None = getattr(options, "since_time", None)
    if since_time is not None:
        moment = since_time if since_time.tzinfo else since_time.replace(tzinfo=timezone.utc)
        candidates.append(int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000)
    return max(candidates) if candidates else None


def _output(files: list[Path], options: LogRequest, alive: Callable[[], bool] | None,
            stop: threading.Event | None) -> Generator[bytes, None, None]:
    lines = _Lines(_since(options), options.timestamps)
    tail = options.tail_lines if options.tail_lines is not None and options.tail_lines >= 0 else None
    with _Files(files) as log:
        if tail is not None:
            log.seek(*_tail_start(log.fds, tail))
        written = _pieces(lines, log, final=not options.follow)
        if tail is None:
            yield from (piece.data for piece in written)
        else:
            kept = deque(written, maxlen=tail)
            for stream in lines.open_streams() - {piece.stream for piece in kept if piece.open}:
                lines.skip_rest(stream)  # a line begun before the last N: the rest of it is not shown either
            yield from (piece.data for piece in kept)
        if not options.follow:
            return
        ending = False
        while stop is None or not stop.is_set():
            found = False
            for piece in _pieces(lines, log, final=ending):
                found = True
                yield piece.data
            if ending:
                return
            if found:
                continue
            if alive is not None and not alive():
                ending = True  # one more read: what was written before it exited
                continue
            if stop is not None:
                stop.wait(POLL_SECONDS)
            else:
                time.sleep(POLL_SECONDS)


def _pieces(lines: _Lines, log: _Files, final: bool) -> Iterator[_Piece]:
    """Everything written since the last read, then the lines still open so far."""
    for raw, ended in log.lines(final):
        piece = lines.add(raw, ended)
        if piece is not None:
            yield piece
    yield from lines.flush_open()


@dataclass(frozen=True)
class _Piece:
    stream: str | None  # None: a line that is no record
    data: bytes
    open: bool = False  # the start of a line still being written


@dataclass
class _Line:
    """A line of one stream begun and not yet ended: its parts not yet shown."""

    skipped: bool
    parts: list[bytes] = field(default_factory=list)


class _Lines:
    """Records joined into lines, filtered by time, given their timestamps."""

    def __init__(self, since: int | None, timestamps: bool) -> None:
        self.since, self.timestamps = since, timestamps
        self._open: dict[str, _Line] = {}  # in the order the lines began

    def add(self, raw: bytes, ended: bool) -> _Piece | None:
        """The line a record ends (or a line that is no record), else None."""
        found = parse_record(raw)
        if found is None:
            return _Piece(None, raw + b"\n" if ended else raw)
        line = self._open.get(found.stream)
        if line is None:
            skipped = self.since is not None and timestamp_nanoseconds(found.timestamp) < self.since
            line = self._open[found.stream] = _Line(skipped, [found.timestamp + b" "] if self.timestamps else [])
        if not line.skipped:
            line.parts.append(found.content)
        if found.partial:
            return None
        del self._open[found.stream]
        if line.skipped:
            return None
        return _Piece(found.stream, b"".join(line.parts) + (b"\n" if ended else b""))

    def flush_open(self) -> list[_Piece]:
        """What lines not yet ended hold, to show now rather than when they end."""
        pieces = []
        for stream, line in self._open.items():
            if line.parts and not line.skipped:
                pieces.append(_Piece(stream, b"".join(line.parts), open=True))
                line.parts.clear()
        return pieces

    def open_streams(self) -> set[str]:
        return set(self._open)

    def skip_rest(self, stream: str) -> None:
        self._open[stream].skipped = True


class _Files:
    """A log's files, read forward in order from a position, and followed
    across rotations: once the log's path names another file, the old one is
    read to its end, then each file written after it (rotated since, or the
    log itself), from its start."""

    def __init__(self, paths: list[Path]) -> None:
        self.path = paths[-1] if paths else None
        self.fds: list[int] = []
        for path in paths:
            fd = _open(path)
            if fd is not None:  # else rotated away since it was listed: the next one has its lines
                self.fds.append(fd)
        self._index = 0
        self._carry = b""  # the start of a line not yet ended

    def __enter__(self) -> _Files:
        return self

    def __exit__(self, *_: object) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds.clear()

    def seek(self, index: int, offset: int) -> None:
        self._index = index
        if index < len(self.fds):
            os.lseek(self.fds[index], offset, os.SEEK_SET)

    def lines(self, final: bool) -> Iterator[tuple[bytes, bool]]:
        """Each line written since the last call, and whether it ended with a
        newline. The log's unended rest waits for the rest of its line, unless
        final; a rotated file's is all there will be."""
        while True:
            if self._index < len(self.fds):
                while chunk := os.read(self.fds[self._index], BLOCK):
                    *complete, self._carry = (self._carry + chunk).split(b"\n")
                    for line in complete:
                        yield line, True
            newest = self._index >= len(self.fds) - 1
            if newest and self._open_newer():
                continue  # the old file once more, for what was written between the read and the rename
            held = newest and not final and self._is_log(self.fds[-1] if self.fds else None)
            if self._carry and not held:
                yield self._carry, False
                self._carry = b""
            if newest:
                return
            self._index += 1

    def _is_log(self, fd: int | None) -> bool:
        """Whether fd is the file the log's path names (not one rotated away)."""
        if fd is None or self.path is None:
            return False
        try:
            return _same_file(os.stat(self.path), os.fstat(fd))
        except FileNotFoundError:
            return False

    def _open_newer(self) -> bool:
        """Whether files were written after the last one open (a rotation, or
        the log's first file), opened as the next to read, oldest first. The
        log is opened before the rotated files are listed, so a rotation in
        between leaves none out: each rotated file listed before the log's
        own comes after the last one open."""
        if self.path is None or (self.fds and self._is_log(self.fds[-1])):
            return False
        last = os.fstat(self.fds[-1]) if self.fds else None
        log = _open(self.path)
        log_file = os.fstat(log) if log is not None else None
        newer: list[int] = []
        for path in files_of(self.path):
            fd = _open(path) if path != self.path else None
            if fd is None:
                continue
            found = os.fstat(fd)
            if log_file is not None and _same_file(found, log_file):  # rotated since: read from the log's fd
                os.close(fd)
                break
            newer.append(fd)
            if last is not None and _same_file(found, last):  # the file being read, renamed: only later ones
                for older in newer:
                    os.close(older)
                newer = []
        if log is not None:
            newer.append(log)
        self.fds.extend(newer)
        return bool(newer)


def _open(path: Path) -> int | None:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None


def _same_file(one: os.stat_result, other: os.stat_result) -> bool:
    return (one.st_dev, one.st_ino) == (other.st_dev, other.st_ino)


def _tail_start(fds: list[int], count: int) -> tuple[int, int]:
    """A place to read from that holds the last `count` lines whole: back
    over the files, newest first, until `count` lines have ended, and then
    until each stream seen has ended an earlier line, so no line kept lacks
    its first P records. Reading from there yields some lines more, which the
    caller drops."""
    ended, seen, begun = 0, set[str](), set[str]()
    for index in reversed(range(len(fds))):
        for start, raw in _lines_backward(fds[index]):
            found = parse_record(raw)
            if found is None:
                ended += 1
            else:
                if not found.partial and ended >= count:
                    begun.add(found.stream)  # the end of a line before the last ones: what follows begins a line
                if not found.partial or found.stream not in seen:  # an F, or the P of a line still being written
                    ended += 1
                seen.add(found.stream)
            if ended >= count and seen <= begun:
                return index, start
    return 0, 0


def _lines_backward(fd: int) -> Iterator[tuple[int, bytes]]:
    """A file's lines, last first, each with the offset it starts at."""
    size = os.fstat(fd).st_size
    position, carry = size, b""
    while position > 0:
        start = max(0, position - BLOCK)
        data = os.pread(fd, position - start, start) + carry
        position = start
        spans: list[tuple[int, bytes]] = []
        offset = start
        for piece in data.split(b"\n"):
            spans.append((offset, piece))
            offset += len(piece) + 1
        if start > 0:
            carry = spans.pop(0)[1]  # the end of a line that begins in the block before
        if spans and spans[-1][0] == size:
            spans.pop()  # after the file's last newline: nothing
        yield from reversed(spans)
