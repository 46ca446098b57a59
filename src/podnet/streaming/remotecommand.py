"""exec and attach sessions, over SPDY or WebSocket: which streams the client opens,
what the error stream says at the end, and the threads that run them.

A session is a Job (the process, or the container's stdio) joined to the
client's streams. The connection's thread reads the client; a worker runs the
job and, when it ends, closes the output streams, writes the status and lets
the client close the connection (closing first could reset it while output is
still on its way). If the client goes first, the job is cancelled: the process
is killed."""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from podnet.streaming import channels
from podnet.streaming.channels import ChannelConnection, ChannelWriter
from podnet.streaming.http1 import Request
from podnet.streaming.pipe import Pipe
from podnet.streaming.spdy_session import SpdySession, SpdyStream
from podnet.streaming.transport import Transport

log = logging.getLogger("podnet.streaming")

SPDY_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io",
                  "channel.k8s.io")  # the kubelet's; v5 is v4 on SPDY (its close signal is WebSocket's)
STREAM_CREATION_TIMEOUT = 30.0  # the kubelet's default
LINGER = 300.0  # how long a finished session waits for the client to read the rest and close


class Reader(Protocol):
    def read(self) -> bytes: ...


class Writer(Protocol):
    def write(self, data: bytes | bytearray | memoryview) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class CommandOptions:
    """The query's input/output/error/tty, as the API server passes them on ("1")."""

    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool

    @classmethod
    def from_request(cls, request: Request) -> CommandOptions:
        def flag(name: str) -> bool:
            return (request.param(name) or "").lower() in ("1", "true")

        tty = flag("tty")
        options = cls(flag("input"), flag("output"), flag("error") and not tty, tty)  # a terminal has no stderr
        if not (options.stdin or options.stdout or options.stderr):
            raise ValueError("you must specify at least 1 of stdin, stdout, stderr")
        return options


@dataclass(frozen=True)
class Status:
    """The metav1.Status the error stream carries at the end (the v4+ protocols)."""

    status: str = "Success"
    message: str = ""
    reason: str = ""
    causes: tuple[dict[str, str], ...] = ()
    code: int = 0

    def to_json(self) -> bytes:
        body: dict[str, object] = {"metadata": {}, "status": self.status}
        if self.message:
            body["message"] = self.message
        if self.reason:
            body["reason"] = self.reason
        if self.causes:
            body["details"] = {"causes": list(self.causes)}
        if self.code:
            body["code"] = self.code
        return json.dumps(body, separators=(",", ":")).encode()

    def to_text(self) -> bytes:
        """What the protocols before v4 write: a failure's message, nothing for success."""
        return self.message.encode() if self.status != "Success" else b""


SUCCESS = Status()


def exited(command: list[str], exit_code: int) -> Status:
    """A command's non-zero exit, in containerd's words, which kubectl turns into its own exit code."""
    return Status("Failure", f"command terminated with non-zero exit code: error executing command "
                  f"[{' '.join(command)}], exit code {exit_code}", "NonZeroExitCode",
                  ({"reason": "ExitCode", "message": str(exit_code)},))


def internal_error(message: str) -> Status:
    return Status("Failure", f"Internal error occurred: {message}", "InternalError", ({"message": message},), 500)


@dataclass(frozen=True)
class TerminalSize:
    width: int
    height: int


def terminal_sizes(reader: Reader) -> Iterator[TerminalSize]:
    """The resize stream: JSON objects {"Width": .., "Height": ..} one after another,
    until the stream ends or stops being JSON (as Go's json.Decoder loop stops)."""
    decoder, text = json.JSONDecoder(), ""
    while chunk := reader.read():
        text += chunk.decode("utf-8", "replace")
        while text.strip():
            text = text.lstrip()
            try:
                value, end = decoder.raw_decode(text)
            except json.JSONDecodeError:
                if len(text) > 4096:
                    return
                break
            text = text[end:]
            if not isinstance(value, dict):
                return
            fields = {str(key).lower(): number for key, number in value.items()}
            width, height = fields.get("width", 0), fields.get("height", 0)
            if isinstance(width, int) and isinstance(height, int) and 0 <= width < 65536 and 0 <= height < 65536:
                yield TerminalSize(width, height)


@dataclass
class CommandStreams:
    """The client's end of a session, whichever protocol carries it."""

    tty: bool
    finish: Callable[[Status], None]  # close the outputs, then report the status
    stdin: Reader | None = None
    stdout: Writer | None = None
    stderr: Writer | None = None
    resize: Reader | None = None


class Job(Protocol):
    def run(self, streams: CommandStreams) -> Status:
        """Join the streams to the process or container until it ends."""

    def cancel(self) -> None:
        """The client has gone: stop now."""


def serve_spdy(transport: Transport, protocol: str, options: CommandOptions, job: Job) -> None:
    """A session on SPDY: wait for the client's streams, then run the job."""
    arrived: queue.Queue[SpdyStream | None] = queue.Queue()

    def accept(stream: SpdyStream) -> bool:
        arrived.put(stream)  # every stream is accepted; those of unknown types are left alone
        return True

    session = SpdySession(transport, accept)
    linger = _timer(session.close)
    worker = threading.Thread(target=_run_on_spdy, args=(session, arrived, protocol, options, job, linger),
                              name="exec-spdy", daemon=True)
    worker.start()
    session.serve()
    linger.cancel()
    arrived.put(None)
    job.cancel()
    worker.join(timeout=10)


def _run_on_spdy(session: SpdySession, arrived: queue.Queue[SpdyStream | None], protocol: str,
                 options: CommandOptions, job: Job, linger: threading.Timer) -> None:
    streams = _await_streams(arrived, protocol, options)
    if streams is None:
        session.close()
        return
    streams.finish(_run(job, streams))
    session.goaway()
    linger.start()


def _await_streams(arrived: queue.Queue[SpdyStream | None], protocol: str,
                   options: CommandOptions) -> CommandStreams | None:
    wanted = {"error"} | {name for name, on in (("stdin", options.stdin), ("stdout", options.stdout),
                                                ("stderr", options.stderr)) if on}
    if options.tty and protocol not in ("v2.channel.k8s.io", "channel.k8s.io"):
        wanted.add("resize")
    found: dict[str, SpdyStream] = {}
    timeout = _timer(lambda: arrived.put(None), STREAM_CREATION_TIMEOUT)
    timeout.start()
    try:
        while not wanted <= found.keys():
            stream = arrived.get()
            if stream is None:
                return None
            kind = stream.header("streamtype") or ""
            if kind in wanted:
                found[kind] = stream
    finally:
        timeout.cancel()
    status_json = protocol in ("v5.channel.k8s.io", "v4.channel.k8s.io")
    error = found["error"]

    def finish(status: Status) -> None:
        for name in ("stdout", "stderr"):
            if name in found:
                found[name].close()
        payload = status.to_json() if status_json else status.to_text()
        try:
            if payload:
                error.write(payload)
        except ConnectionError:
            pass
        error.close()
        for name in ("stdin", "resize"):
            if name in found:
                found[name].discard()

    return CommandStreams(options.tty, finish, found.get("stdin"), found.get("stdout"), found.get("stderr"),
                          found.get("resize"))


def serve_websocket(connection: ChannelConnection, options: CommandOptions, job: Job) -> None:
    """A session on a WebSocket channel protocol: channels are there from the start."""
    wanted = [channel for channel, on in ((channels.STDIN, options.stdin), (channels.RESIZE, options.tty)) if on]
    inputs = {channel: Pipe() for channel in wanted}  # nobody would read the others: they are dropped
    first = channels.STDOUT if options.stdout else channels.STDERR if options.stderr else channels.ERROR
    connection.send(first, b"")  # the kubelet's "connected" signal: an empty message on the first output

    def finish(status: Status) -> None:
        payload = status.to_json() if connection.protocol.status_json else status.to_text()
        for pipe in inputs.values():
            pipe.abort()
        try:
            if payload:
                connection.send(channels.ERROR, payload)
            connection.ws.close()
        except ConnectionError:
            pass

    streams = CommandStreams(options.tty, finish, inputs.get(channels.STDIN),
                             ChannelWriter(connection, channels.STDOUT) if options.stdout else None,
                             ChannelWriter(connection, channels.STDERR) if options.stderr else None,
                             inputs.get(channels.RESIZE))
    linger = _timer(connection.ws.transport.close)

    def run() -> None:
        streams.finish(_run(job, streams))
        linger.start()

    worker = threading.Thread(target=run, name="exec-ws", daemon=True)
    worker.start()
    connection.run(inputs)
    linger.cancel()
    job.cancel()
    worker.join(timeout=10)
    connection.ws.transport.close()


def _run(job: Job, streams: CommandStreams) -> Status:
    try:
        return job.run(streams)
    except Exception as err:  # a bug: it must still end the client's session, not hang it
        log.exception("exec or attach session failed")
        return internal_error(f"{type(err).__name__}: {err}")


def _timer(action: Callable[[], object], seconds: float = LINGER) -> threading.Timer:
    timer = threading.Timer(seconds, action)
    timer.daemon = True
    return timer
