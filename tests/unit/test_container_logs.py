"""Container logs in the CRI format (agent/logs.py, agent/log_reader.py): the
records the shim's writer appends (F and P, the 16 KiB cut, a partial line
shown when its pipe goes quiet), rotation keeping max_files, and the files
read back as kubelet's /containerLogs serves them: tail, since, limit,
timestamps, and following the log across a rotation until the container
exits. Real files in a temporary directory; no root."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podnet.agent.log_reader import parse_record, read_log, timestamp_nanoseconds
from podnet.agent.logs import (
    MAX_LINE, LogWriter, container_log_dir, files_of, instance_log, record,
)
from podnet.streaming.runtime import LogOptions

RECORD_LINE = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (stdout|stderr) (F|P) .*\n")
NOW = time.time_ns()  # set again before each test: a suite may reach these long after it imported them
HOUR = 3600 * 1_000_000_000


@pytest.fixture(autouse=True)
def _now() -> None:
    global NOW
    NOW = time.time_ns()


Options = LogOptions  # what the kubelet's containerLogs passes the reader


def lines_of(data: bytes) -> list[bytes]:
    """Lines ended by "\\n" only, each with its newline (bytes.splitlines also splits at "\\r")."""
    return re.findall(rb"[^\n]*\n", data)


def records(path: Path) -> list[tuple[str, str, bytes]]:
    """(stream, tag, content) of each record in a file, every line checked to be one."""
    lines = lines_of(path.read_bytes())
    assert b"".join(lines) == path.read_bytes()
    assert all(RECORD_LINE.fullmatch(line) for line in lines), lines
    parsed = [parse_record(line[:-1]) for line in lines]
    return [(r.stream, "P" if r.partial else "F", r.content) for r in parsed if r is not None]


def read_all(log: Path, **options: object) -> bytes:
    return b"".join(read_log(files_of(log), Options(**options)))  # type: ignore[arg-type]


def test_a_line_becomes_one_record_that_parses_back(tmp_path: Path) -> None:
    log = tmp_path / "0.log"
    with LogWriter(log) as writer:
        writer.write("stdout", b"hello world\n")
    [line] = log.read_bytes().splitlines()
    found = parse_record(line)
    assert found is not None and (found.stream, found.partial, found.content) == ("stdout", False, b"hello world")
    assert abs(timestamp_nanoseconds(found.timestamp) - time.time_ns()) < 5 * 1_000_000_000
    assert line == found.timestamp + b" stdout F hello world"


LONG = b"x" * MAX_LINE


@pytest.mark.parametrize(("writes", "expected"), [
    pytest.param([b"a\nb\n"], [("F", b"a"), ("F", b"b")], id="two-lines-in-one-read"),
    pytest.param([b"he", b"llo\n"], [("F", b"hello")], id="a-line-in-two-reads"),
    pytest.param([b"\n"], [("F", b"")], id="an-empty-line"),
    pytest.param([b"dos\r\n"], [("F", b"dos\r")], id="carriage-return-kept"),
    pytest.param([b"no newline"], [("P", b"no newline")], id="last-line-unended-at-close"),
    pytest.param([LONG + b"\n"], [("F", LONG)], id="exactly-16KiB-is-one-record"),
    pytest.param([LONG + b"y\n"], [("P", LONG), ("F", b"y")], id="16KiB-and-one-byte"),
    pytest.param([LONG + LONG + b"\n"], [("P", LONG), ("F", LONG)], id="32KiB"),
    pytest.param([LONG + b"yz", b"\n"], [("P", LONG), ("F", b"yz")], id="cut-before-the-newline-arrives"),
])
def test_records_of_writes(tmp_path: Path, writes: list[bytes], expected: list[tuple[str, bytes]]) -> None:
    log = tmp_path / "0.log"
    with LogWriter(log) as writer:
        for data in writes:
            writer.write("stdout", data)
    assert records(log) == [("stdout", tag, content) for tag, content in expected]


def test_a_long_unended_line_is_written_in_16KiB_parts_at_once(tmp_path: Path) -> None:
    log = tmp_path / "0.log"
    writer = LogWriter(log)
    writer.write("stderr", LONG + b"rest")
    assert records(log) == [("stderr", "P", LONG)]  # the rest waits for its newline
    writer.close()
    assert records(log) == [("stderr", "P", LONG), ("stderr", "P", b"rest")]


def test_flush_partial_shows_a_prompt_and_the_reader_joins_it_to_its_end(tmp_path: Path) -> None:
    log = tmp_path / "0.log"
    writer = LogWriter(log)
    writer.write("stdout", b"name? ")
    writer.write("stderr", b"warning: ")
    assert log.read_bytes() == b""  # held: more may come
    writer.flush_partial("stdout")
    writer.flush_partial("stdout")  # nothing left: no empty record
    assert records(log) == [("stdout", "P", b"name? ")]
    writer.write("stdout", b"ada\n")
    writer.write("stderr", b"low disk\n")
    writer.close()
    assert records(log) == [("stdout", "P", b"name? "), ("stdout", "F", b"ada"), ("stderr", "F", b"warning: low disk")]
    assert read_all(log) == b"name? ada\nwarning: low disk\n"
    stamped = read_all(log, timestamps=True).splitlines()
    assert [line.split(b" ", 1)[1] for line in stamped] == [b"name? ada", b"warning: low disk"]  # one time a line


def test_writer_refuses_an_unknown_stream(tmp_path: Path) -> None:
    with LogWriter(tmp_path / "0.log") as writer, pytest.raises(ValueError, match="stdout or stderr"):
        writer.write("stdin", b"x\n")


def test_layout_is_kubelets(tmp_path: Path) -> None:
    directory = container_log_dir(tmp_path, "shop", "cart-0", "1f2e", "echo")
    assert directory == tmp_path / "shop_cart-0_1f2e" / "echo"
    assert instance_log(directory, 3) == directory / "3.log"
    assert files_of(instance_log(directory, 0)) == [directory / "0.log"]  # the one to follow, not yet there
    assert read_all(directory / "0.log") == b""


@pytest.mark.parametrize("max_files", [1, 2, 4])
def test_rotation_keeps_max_files_and_the_reader_reads_them_oldest_first(tmp_path: Path, max_files: int) -> None:
    log = tmp_path / "0.log"
    with LogWriter(log, max_bytes=400, max_files=max_files) as writer:
        for i in range(100):
            writer.write("stdout", b"line %03d\n" % i)
    files = files_of(log)
    assert len(files) == max_files and files[-1] == log
    assert all(re.fullmatch(r"0\.log\.\d{8}-\d{6}\.\d{9}", f.name) for f in files[:-1])
    assert files[:-1] == sorted(files[:-1], key=lambda f: f.stat().st_mtime_ns)
    assert all(f.stat().st_size <= 400 for f in files)
    per_file = 400 // len(record(NOW, "stdout", b"F", b"line 000"))
    kept = 100 % per_file + per_file * (max_files - 1)
    assert read_all(log).splitlines() == [b"line %03d" % i for i in range(100 - kept, 100)]  # only the oldest gone


def test_a_record_larger_than_max_bytes_gets_a_file_of_its_own(tmp_path: Path) -> None:
    log = tmp_path / "0.log"
    with LogWriter(log, max_bytes=100, max_files=5) as writer:
        writer.write("stdout", b"short\n" + b"z" * 300 + b"\nafter\n")
    assert [records(f) for f in files_of(log)] == [
        [("stdout", "F", b"short")], [("stdout", "F", b"z" * 300)], [("stdout", "F", b"after")]]


def write_records(path: Path, *lines: tuple[int, str, str, bytes]) -> None:
    """Records written directly, at the times given (nanoseconds)."""
    with path.open("ab") as out:
        for at, stream, tag, content in lines:
            out.write(record(at, stream, tag.encode(), content))


@pytest.fixture
def rotated(tmp_path: Path) -> Path:
    """A log in three files: o1..o3 and e1 (begun in P records across a file boundary), o4..o6."""
    log = tmp_path / "0.log"
    write_records(tmp_path / "0.log.20240101-000000.000000000", (NOW - 3 * HOUR, "stdout", "F", b"o1"),
                  (NOW - 3 * HOUR, "stdout", "F", b"o2"))
    write_records(tmp_path / "0.log.20240101-000001.000000000", (NOW - 2 * HOUR, "stdout", "F", b"o3"),
                  (NOW - 2 * HOUR, "stderr", "P", b"e1-a "))
    write_records(log, (NOW - HOUR, "stdout", "F", b"o4"), (NOW - HOUR, "stderr", "P", b"e1-b "),
                  (NOW - 60 * 1_000_000_000, "stdout", "F", b"o5"), (NOW, "stderr", "F", b"e1-c"),
                  (NOW, "stdout", "F", b"o6"))
    return log


@pytest.mark.parametrize(("tail", "expected"), [
    pytest.param(None, b"o1\no2\no3\no4\no5\ne1-a e1-b e1-c\no6\n", id="all"),
    pytest.param(0, b"", id="none"),
    pytest.param(1, b"o6\n", id="one"),
    pytest.param(2, b"e1-a e1-b e1-c\no6\n", id="a-line-begun-two-files-back-is-whole"),
    pytest.param(5, b"o3\no4\no5\ne1-a e1-b e1-c\no6\n", id="across-files"),
    pytest.param(50, b"o1\no2\no3\no4\no5\ne1-a e1-b e1-c\no6\n", id="more-than-there-is"),
])
def test_tail(rotated: Path, tail: int | None, expected: bytes) -> None:
    assert read_all(rotated, tail_lines=tail) == expected


def test_since_keeps_lines_begun_after_it(rotated: Path) -> None:
    assert read_all(rotated, since_seconds=90 * 60) == b"o4\no5\no6\n"  # e1 began two hours ago
    assert read_all(rotated, since_seconds=120) == b"o5\no6\n"
    recent = datetime.now(timezone.utc) - timedelta(seconds=120)
    assert read_all(rotated, since_time=recent) == b"o5\no6\n"
    assert read_all(rotated, since_seconds=5 * HOUR // 1_000_000_000, since_time=recent) == b"o5\no6\n"  # the later


def test_limit_bytes_cuts_the_output(rotated: Path) -> None:
    assert read_all(rotated, limit_bytes=7) == b"o1\no2\no"
    assert read_all(rotated, limit_bytes=7, tail_lines=2) == b"e1-a e1"
    assert read_all(rotated, limit_bytes=10_000) == read_all(rotated)


def test_timestamps_prefix_each_line_with_its_first_records_time(rotated: Path) -> None:
    lines = read_all(rotated, timestamps=True, tail_lines=2).splitlines()
    began = (NOW - 2 * HOUR) // 1_000_000_000
    assert lines[0].startswith(time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(began)).encode())
    assert [line.split(b" ", 1)[1] for line in lines] == [b"e1-a e1-b e1-c", b"o6"]
    assert timestamp_nanoseconds(lines[1].split(b" ")[0]) == NOW


def test_lines_that_are_no_records_pass_through(tmp_path: Path) -> None:
    log = tmp_path / "0.log"
    write_records(log, (NOW, "stdout", "F", b"fine"))
    with log.open("ab") as out:
        out.write(b'{"log":"docker json","stream":"stdout"}\n')
        out.write(b"2016-10-06T00:17:09.669794202Z stdin F not a stream\n")
        out.write(b"2016-10-06T00:17:09.669794202Z stdout F cut sho")
    assert read_all(log) == (b'fine\n{"log":"docker json","stream":"stdout"}\n'
                             b"2016-10-06T00:17:09.669794202Z stdin F not a stream\ncut sho")
    assert read_all(log, tail_lines=2) == b"2016-10-06T00:17:09.669794202Z stdin F not a stream\ncut sho"


def test_timestamps_of_other_writers_parse() -> None:
    assert timestamp_nanoseconds(b"2016-10-06T00:17:09.669794202Z") == 1475713029669794202
    assert timestamp_nanoseconds(b"2016-10-06T00:17:09.6697Z") == 1475713029669700000
    assert timestamp_nanoseconds(b"2016-10-06T02:17:09+02:00") == 1475713029000000000


class Follower:
    """read_log followed in a thread: what arrived, and when."""

    def __init__(self, log: Path, alive: Callable[[], bool] | None, **options: object) -> None:
        self.pieces: list[tuple[float, bytes]] = []
        self.stop = threading.Event()
        self.done = threading.Event()
        self._reader = read_log(files_of(log), Options(follow=True, **options),  # type: ignore[arg-type]
                                alive, self.stop)
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        for piece in self._reader:
            self.pieces.append((time.monotonic(), piece))
        self.done.set()

    @property
    def text(self) -> bytes:
        return b"".join(piece for _, piece in self.pieces)

    def wait_for(self, wanted: bytes, timeout: float = 1.0) -> float:
        """Seconds until the output ended with `wanted`."""
        start = time.monotonic()
        while not self.text.endswith(wanted):
            assert time.monotonic() - start < timeout, self.text
            time.sleep(0.01)
        return time.monotonic() - start


@pytest.fixture
def running() -> Iterator[threading.Event]:
    """Set while the container runs."""
    flag = threading.Event()
    flag.set()
    yield flag
    flag.clear()


def test_follow_sees_new_lines_and_ends_after_the_container_exits(tmp_path: Path, running: threading.Event) -> None:
    log = tmp_path / "0.log"
    writer = LogWriter(log)
    writer.write("stdout", b"before\n")
    follower = Follower(log, running.is_set, tail_lines=1)
    follower.wait_for(b"before\n")
    writer.write("stderr", b"after\n")
    assert follower.wait_for(b"before\nafter\n") < 1.0
    writer.write("stdout", b"prompt> ")
    writer.flush_partial("stdout")
    follower.wait_for(b"prompt> ")  # shown before its line ends
    writer.write("stdout", b"yes\nlast words\n")
    running.clear()
    writer.close()
    assert follower.done.wait(2.0)
    assert follower.text == b"before\nafter\nprompt> yes\nlast words\n"


@pytest.mark.parametrize(("count", "pause", "max_files"), [
    pytest.param(40, 0.01, 2, id="a-rotation-at-a-time"),
    pytest.param(300, 0.0, 100, id="many-rotations-between-two-reads"),
])
def test_follow_goes_on_in_the_files_after_a_rotation(tmp_path: Path, running: threading.Event, count: int,
                                                      pause: float, max_files: int) -> None:
    log = tmp_path / "0.log"
    writer = LogWriter(log, max_bytes=300, max_files=max_files)
    follower = Follower(log, running.is_set, timestamps=True)
    for i in range(count):
        writer.write("stdout", b"line %03d\n" % i)
        time.sleep(pause)
    follower.wait_for(b" line %03d\n" % (count - 1), timeout=2.0)
    running.clear()
    writer.close()
    assert follower.done.wait(2.0)
    assert [line.split(b" ", 1)[1] for line in follower.text.splitlines()] == [b"line %03d" % i for i in range(count)]
    assert len(files_of(log)) == min(max_files, count * 49 // 300 + 1)


def test_follow_waits_for_the_log_to_appear_and_stop_ends_it(tmp_path: Path) -> None:
    log = tmp_path / "0.log"
    follower = Follower(log, None)
    time.sleep(0.1)
    with LogWriter(log) as writer:
        writer.write("stdout", b"started\n")
    follower.wait_for(b"started\n")
    follower.stop.set()
    assert follower.done.wait(1.0)


def test_a_follow_of_an_exited_container_reads_what_is_there_and_ends(rotated: Path) -> None:
    assert b"".join(read_log(files_of(rotated), Options(follow=True, tail_lines=1), lambda: False)) == b"o6\n"


def test_the_reader_does_not_show_a_record_still_being_written_while_following(tmp_path: Path,
                                                                             running: threading.Event) -> None:
    log = tmp_path / "0.log"
    log.write_bytes(record(NOW, "stdout", b"F", b"whole") + record(NOW, "stdout", b"F", b"half")[:-4])
    follower = Follower(log, running.is_set)
    follower.wait_for(b"whole\n")
    time.sleep(0.15)
    assert follower.text == b"whole\n"
    with log.open("ab") as out:
        out.write(b"alf\n")
    follower.wait_for(b"whole\nhalf\n")
    running.clear()
    assert follower.done.wait(1.0)


STDOUT_BYTES = st.sampled_from([b"a", b"b c", b"\n", b"\r\n", b" ", b"F ", b"\xff"])
STDERR_BYTES = st.sampled_from([b"x", b"y", b"\n", b"\t", b"P\n"])


def chunks(alphabet: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    small = st.lists(alphabet, max_size=12).map(b"".join)
    return st.one_of(small, small, small, st.integers(MAX_LINE - 2, MAX_LINE * 2 + 3).map(lambda n: b"q" * n))


WRITES = st.lists(st.one_of(
    st.tuples(st.just("stdout"), chunks(STDOUT_BYTES)), st.tuples(st.just("stderr"), chunks(STDERR_BYTES)),
    st.tuples(st.sampled_from(["flush stdout", "flush stderr"]), st.just(b""))), max_size=30)


def is_interleaving(merged: list[bytes], first: list[bytes], second: list[bytes]) -> bool:
    """Whether merged is first and second woven together, each in its order."""
    if len(merged) != len(first) + len(second):
        return False
    reachable = {(0, 0)}
    for line in merged:
        reachable = {(i + 1, j) for i, j in reachable if i < len(first) and first[i] == line} | \
                    {(i, j + 1) for i, j in reachable if j < len(second) and second[j] == line}
        if not reachable:
            return False
    return True


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(writes=WRITES, max_bytes=st.sampled_from([300, 5000, 10 * 1024 * 1024]), tail=st.integers(0, 40))
def test_any_writes_read_back_as_written_per_stream(tmp_path_factory: pytest.TempPathFactory,
                                                    writes: list[tuple[str, bytes]], max_bytes: int, tail: int) -> None:
    """And the tail of N lines is the last N of them all, however the lines were cut into records and files."""
    log = tmp_path_factory.mktemp("prop") / "0.log"
    written = {"stdout": b"", "stderr": b""}
    with LogWriter(log, max_bytes=max_bytes, max_files=10_000) as writer:
        for action, data in writes:
            if action.startswith("flush "):
                writer.flush_partial(action.split()[1])
            else:
                writer.write(action, data)
                written[action] += data
        for stream in written:  # every line complete
            if not written[stream].endswith(b"\n") and written[stream]:
                writer.write(stream, b"\n")
                written[stream] += b"\n"
    per_stream = {"stdout": b"", "stderr": b""}
    for path in files_of(log):
        for stream, tag, content in records(path):
            per_stream[stream] += content + (b"\n" if tag == "F" else b"")
    assert per_stream == written
    merged = lines_of(read_all(log))
    assert is_interleaving(merged, lines_of(written["stdout"]), lines_of(written["stderr"]))
    assert lines_of(read_all(log, tail_lines=tail)) == merged[max(0, len(merged) - tail):]
