"""A container's log files, in the CRI format kubelet reads and containerd and
CRI-O write: one record a line,

    2016-10-06T00:17:09.669794202Z stdout F the line's content

with a tag of F for a record that ends a line and P for a part of one (a line
longer than 16 KiB, or output that has waited for its newline too long), laid
out as kubelet lays out /var/log/pods (`<namespace>_<pod>_<uid>/<container>/
<restart count>.log`) and rotated as kubelet's container log manager rotates.

The writer runs in the small shim process each container runs under, so this
module imports the standard library only, and little of it: the shim starts
for every container and must start fast. Reading the files back is
log_reader.py's business.

Two choices differ from containerd's: a "\\r" before a newline is kept as
output (containerd drops it), so what is read back is what was written; and a
rotated file is named `<name>.<UTC time to the nanosecond>`
(`0.log.20240131-235959.123456789`), which sorts oldest first by name, where
kubelet's `<name>.<local time to the second>` would not for two rotations in
one second.
"""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

STREAMS = ("stdout", "stderr")
FULL, PARTIAL = b"F", b"P"
MAX_LINE = 16 * 1024  # containerd's cut: a longer line becomes P records of this many bytes, then an F
DEFAULT_MAX_BYTES = 10 * 1024 * 1024  # kubelet's containerLogMaxSize
DEFAULT_MAX_FILES = 2  # kubelet's containerLogMaxFiles: the current file and one rotated
ROTATED_STAMP = re.compile(r"\d{8}-\d{6}\.\d{9}")  # a rotated file's time: 20240131-235959.123456789


def timestamp_text(nanoseconds: int) -> bytes:
    """RFC 3339 in UTC with nine digits of fraction, as every record starts."""
    seconds, fraction = divmod(nanoseconds, 1_000_000_000)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(seconds))}.{fraction:09d}Z".encode()


def record(nanoseconds: int, stream: str, tag: bytes, content: bytes) -> bytes:
    """One record, newline included."""
    return b"%s %s %s %s\n" % (timestamp_text(nanoseconds), stream.encode(), tag, content)


def container_log_dir(root: Path, namespace: str, pod: str, uid: str, container: str) -> Path:
    """Where a container's log files live: kubelet's /var/log/pods layout."""
    return root / f"{namespace}_{pod}_{uid}" / container


def instance_log(directory: Path, restart_count: int) -> Path:
    """The log of one run of a container: its restart count names it, so the
    previous run's log (`logs --previous`) is the count before."""
    return directory / f"{restart_count}.log"


def files_of(log_path: Path) -> list[Path]:
    """A log's rotated files, oldest first, then the log itself: always last,
    though it may not be there yet (or, for a moment, while it is rotated),
    so a reader knows which file to follow."""
    try:
        names = os.listdir(log_path.parent)
    except FileNotFoundError:
        names = []
    prefix = log_path.name + "."
    rotated = sorted(name for name in names
                     if name.startswith(prefix) and ROTATED_STAMP.fullmatch(name[len(prefix):]))
    return [*(log_path.parent / name for name in rotated), log_path]


def _rotated_name(log_path: Path, nanoseconds: int) -> Path:
    seconds, fraction = divmod(nanoseconds, 1_000_000_000)
    return log_path.with_name(f"{log_path.name}.{time.strftime('%Y%m%d-%H%M%S', time.gmtime(seconds))}"
                              f".{fraction:09d}")


class LogWriter:
    """A container's stdout and stderr, as records appended to its log file.

    `write` takes whatever a read of a pipe returned: complete lines become F
    records at once (P records first for each 16 KiB of a longer one), and the
    unfinished rest waits in the stream's buffer for its newline, unless the
    shim calls `flush_partial` when its pipe has been quiet a moment: output
    without a newline (a prompt, a progress bar) shows without waiting.

    Each batch of records is one os.write on an O_APPEND descriptor, so a
    reader sees whole records, in the order they were written. When the file
    would pass max_bytes it is renamed and a new one begun, keeping max_files
    files in all. A write the disk refuses is dropped (and kept in last_error)
    rather than raised: the shim must go on draining the pipes, or the
    container blocks on its output.
    """

    def __init__(self, path: Path, max_bytes: int = DEFAULT_MAX_BYTES, max_files: int = DEFAULT_MAX_FILES) -> None:
        if max_bytes < 1 or max_files < 1:
            raise ValueError(f"a log needs max_bytes >= 1 and max_files >= 1, not {max_bytes} and {max_files}")
        self.path, self.max_bytes, self.max_files = path, max_bytes, max_files
        self.last_error: OSError | None = None
        self._pending = {stream: b"" for stream in STREAMS}
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = self._open()
        self._size = os.fstat(self._fd).st_size
        self._rotated_at = 0  # the last rotation's time, in nanoseconds

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)

    def write(self, stream: str, data: bytes) -> None:
        with self._lock:
            buffered = self._pending[_checked(stream)] + data
            *lines, rest = buffered.split(b"\n")
            now = time.time_ns()
            records = [r for line in lines for r in _line_records(now, stream, line)]
            while len(rest) > MAX_LINE:
                records.append(record(now, stream, PARTIAL, rest[:MAX_LINE]))
                rest = rest[MAX_LINE:]
            self._pending[stream] = rest
            self._append(records)

    def flush_partial(self, stream: str) -> None:
        """The stream's unfinished line written now, as a P record: its pipe has
        been quiet, so nothing more of it is on the way soon."""
        with self._lock:
            self._flush(_checked(stream))

    def close(self) -> None:
        """What is left of either stream written (a last line without its
        newline stays a P record, as containerd leaves it), and the file closed."""
        with self._lock:
            for stream in STREAMS:
                self._flush(stream)
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> LogWriter:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _flush(self, stream: str) -> None:
        if self._pending[stream]:
            self._append([record(time.time_ns(), stream, PARTIAL, self._pending[stream])])
            self._pending[stream] = b""

    def _append(self, records: list[bytes]) -> None:
        if self._fd is None:
            raise ValueError(f"the log {self.path} is closed")
        batch: list[bytes] = []
        batch_size = 0
        for one in records:
            if self._size + batch_size + len(one) > self.max_bytes and self._size + batch_size > 0:
                self._write_out(b"".join(batch))
                batch, batch_size = [], 0
                self._rotate()
            batch.append(one)
            batch_size += len(one)
        if batch:
            self._write_out(b"".join(batch))

    def _write_out(self, data: bytes) -> None:
        assert self._fd is not None
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view):]
        except OSError as err:
            self.last_error = err
        self._size += len(data) - len(view)

    def _rotate(self) -> None:
        """The file renamed aside with the time, the oldest rotated ones removed
        so max_files remain with the new one, and a new file begun. A reader
        following the old file reads it to its end, then moves to the new one."""
        assert self._fd is not None
        os.close(self._fd)
        self._fd = None
        rotated = [path for path in files_of(self.path) if path != self.path]
        self._rotated_at = max(time.time_ns(), self._rotated_at + 1)  # in order, should the clock step back
        target = _rotated_name(self.path, self._rotated_at)
        try:
            os.rename(self.path, target)
            rotated.append(target)
            for old in rotated[:max(0, len(rotated) - (self.max_files - 1))]:
                old.unlink(missing_ok=True)
        except OSError as err:
            self.last_error = err
        self._fd = self._open()
        self._size = os.fstat(self._fd).st_size


def _checked(stream: str) -> str:
    if stream not in STREAMS:
        raise ValueError(f"a log stream is stdout or stderr, not {stream!r}")
    return stream


def _line_records(now: int, stream: str, line: bytes) -> list[bytes]:
    """A complete line: P records of MAX_LINE bytes while more than that is
    left, then an F record with the rest (the empty line is one empty F)."""
    parts = []
    while len(line) > MAX_LINE:
        parts.append(record(now, stream, PARTIAL, line[:MAX_LINE]))
        line = line[MAX_LINE:]
    parts.append(record(now, stream, FULL, line))
    return parts
