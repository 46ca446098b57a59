"""One container's keeper, as conmon or containerd's shim is: it starts the
container's process in a session and process group of its own, copies its stdout
and stderr into the container's CRI log file, serves attach on a socket, and
when the process exits writes how it ended and goes.

The kubelet starts one per container instance, inside the pod's sandbox, and
never waits on it: the shim outlives an agent that is killed, and everything the
agent needs later is in the instance's files, in the container's directory:

    N.spec.json   what to run (the kubelet writes it before it starts the shim)
    N.lock        held (flock) while the shim lives: a free lock is a dead shim
    N.state.json  the process's pid and start time, once it runs
    N.exit.json   its exit code, signal, reason and times, once it has ended
    N.sock        attach: framed output out, framed stdin in (see `frame`)

Kept to the standard library and podnet.agent.logs: one starts with every
container.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import select
import signal
import socket
import struct
import sys
import termios
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from podnet.agent.logs import LogWriter

STDIN, STDOUT, STDERR, CLOSE_STDIN, RESIZE = 0, 1, 2, 3, 4  # attach frames' kinds
HEADER = struct.Struct(">BI")  # kind, length
FLUSH_AFTER = 0.1  # a partial line waits this long for the rest before it is logged as P
DRAIN = 0.2  # after the process exits, how long its pipes may still bring output (children holding them)
START_ERROR_CODE = 128  # as runc reports a process that could not be started


def frame(kind: int, data: bytes = b"") -> bytes:
    return HEADER.pack(kind, len(data)) + data


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _write_json(path: Path, value: dict[str, Any]) -> None:
    """Whole or not at all: the kubelet may read it at any moment."""
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(value))
    os.replace(partial, path)


class Shim:
    def __init__(self, directory: Path, instance: int) -> None:
        self.directory = directory
        self.instance = instance
        self.spec: dict[str, Any] = json.loads((directory / f"{instance}.spec.json").read_text())
        self.log = LogWriter(Path(self.spec["log"]))
        self.pid = 0
        self.started_at = ""
        self.outputs: dict[int, int] = {}  # fd -> STDOUT or STDERR (a TTY has only STDOUT)
        self.stdin_fd: int | None = None
        self.pty_fd: int | None = None
        self.clients: dict[socket.socket, bytearray] = {}  # attached: each one's unread input
        self.listener: socket.socket | None = None
        self.pending: dict[str, float] = {}  # stream -> when its partial line was last written to

    # Starting

    def start(self) -> str | None:
        """The container's process; the reason it could not start, if it could not."""
        tty, stdin = bool(self.spec.get("tty")), bool(self.spec.get("stdin"))
        failed_r, failed_w = os.pipe2(os.O_CLOEXEC)
        if tty:
            master, slave = os.openpty()
            ends = (slave, slave, slave)
            self.pty_fd = master
            self.outputs = {master: STDOUT}
            if stdin:
                self.stdin_fd = master
        else:
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            in_r, in_w = os.pipe() if stdin else (os.open(os.devnull, os.O_RDONLY), -1)
            ends = (in_r, out_w, err_w)
            self.outputs = {out_r: STDOUT, err_r: STDERR}
            if stdin:
                self.stdin_fd = in_w
        stops = {signal.SIGTERM, signal.SIGINT}
        signal.pthread_sigmask(signal.SIG_BLOCK, stops)  # none may land between fork and the child's own handlers
        self.pid = os.fork()
        if self.pid == 0:
            self._become_container(ends, tty, failed_w)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stops)
        os.close(failed_w)
        for fd in set(ends):
            os.close(fd)
        for fd in self.outputs:
            os.set_blocking(fd, False)
        failure = os.read(failed_r, 4096).decode(errors="replace")
        os.close(failed_r)
        self.started_at = now_rfc3339()
        _write_json(self.directory / f"{self.instance}.state.json", {"pid": self.pid, "startedAt": self.started_at})
        return failure or None

    def _become_container(self, ends: tuple[int, int, int], tty: bool, failed: int) -> None:
        """In the child: its own session, its stdio, its directory, its command."""
        try:
            for stop in (signal.SIGTERM, signal.SIGINT):
                signal.signal(stop, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})  # a stop sent meanwhile lands
            if tty:
                os.login_tty(ends[0])  # a session led by it, the terminal its controlling one
            else:
                os.setsid()
                for target, fd in enumerate(ends):
                    os.dup2(fd, target)
            os.chdir(self.spec.get("workingDir") or "/")  # an image's default WORKDIR
            argv = self.spec["argv"]
            os.execvpe(argv[0], argv, self.spec["env"])
        except OSError as err:
            what = f'chdir to "{self.spec.get("workingDir")}"' if err.filename == self.spec.get("workingDir") \
                else f'exec: "{self.spec["argv"][0]}"'
            os.write(failed, f"{what}: {err.strerror}".encode())
        finally:
            os._exit(START_ERROR_CODE)

    # Running

    def serve(self) -> tuple[int, int | None]:
        """Copy output to the log and attached clients until the process exits;
        its exit code and the signal that ended it, if one did."""
        self._listen()
        status: int | None = None
        drain_until = 0.0
        while True:
            if status is None:
                status = self._reaped()
                if status is not None:
                    drain_until = time.monotonic() + DRAIN
            if status is not None and (not self.outputs or time.monotonic() > drain_until):
                break
            watched = [*self.outputs, *self.clients]
            if self.listener is not None:
                watched.append(self.listener.fileno())
            try:
                ready, _, _ = select.select(watched, [], [], FLUSH_AFTER / 2)
            except InterruptedError:
                continue
            for fd in ready:
                self._readable(fd)
            self._flush_partials()
        try:
            os.killpg(self.pid, signal.SIGKILL)  # what it left behind goes with it, as with a PID namespace
        except OSError:
            pass
        if os.WIFSIGNALED(status):
            return 128 + os.WTERMSIG(status), os.WTERMSIG(status)
        return os.WEXITSTATUS(status), None

    def _reaped(self) -> int | None:
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            return 0
        return status if pid else None

    def _readable(self, fd: int | socket.socket) -> None:
        if isinstance(fd, socket.socket):
            self._client_input(fd)
        elif self.listener is not None and fd == self.listener.fileno():
            self._accept()
        else:
            self._output(fd)

    def _output(self, fd: int) -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError as err:  # a TTY whose last holder closed it: EIO is its end of file
            if err.errno != errno.EIO:
                raise
            data = b""
        kind = self.outputs[fd]
        stream = "stdout" if kind == STDOUT else "stderr"
        if not data:
            del self.outputs[fd]
            if fd != self.pty_fd:
                os.close(fd)
            self.log.flush_partial(stream)
            return
        self.log.write(stream, data)
        self.pending[stream] = time.monotonic()
        for client in list(self.clients):
            try:
                client.sendall(frame(kind, data))
            except OSError:
                self._drop(client)

    def _flush_partials(self) -> None:
        now = time.monotonic()
        for stream, written in list(self.pending.items()):
            if now - written >= FLUSH_AFTER:
                self.log.flush_partial(stream)
                del self.pending[stream]

    # Attach

    def _listen(self) -> None:
        """Bound by a name relative to the container's directory (the shim's own):
        a socket's path may not be longer than 107 bytes."""
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        name = f"{self.instance}.sock"
        try:
            os.unlink(name)
        except FileNotFoundError:
            pass
        self.listener.bind(name)
        self.listener.listen(8)

    def _accept(self) -> None:
        assert self.listener is not None
        client, _ = self.listener.accept()
        self.clients[client] = bytearray()

    def _client_input(self, client: socket.socket) -> None:
        try:
            data = client.recv(65536)
        except OSError:
            data = b""
        if not data:
            self._drop(client)
            return
        buffer = self.clients[client]
        buffer += data
        while len(buffer) >= HEADER.size:
            kind, length = HEADER.unpack_from(buffer)
            if len(buffer) < HEADER.size + length:
                break
            body = bytes(buffer[HEADER.size:HEADER.size + length])
            del buffer[:HEADER.size + length]
            self._command(kind, body)

    def _command(self, kind: int, body: bytes) -> None:
        if kind == STDIN and self.stdin_fd is not None:
            try:
                os.write(self.stdin_fd, body)
            except OSError:
                pass
        elif kind == CLOSE_STDIN and self.stdin_fd is not None and self.spec.get("stdinOnce"):
            if self.stdin_fd == self.pty_fd:
                os.write(self.stdin_fd, b"\x04")  # a terminal's end of file
            else:
                os.close(self.stdin_fd)
            self.stdin_fd = None
        elif kind == RESIZE and self.pty_fd is not None:
            try:
                size = json.loads(body)
                fcntl.ioctl(self.pty_fd, termios.TIOCSWINSZ,
                            struct.pack("HHHH", int(size["Height"]), int(size["Width"]), 0, 0))
            except (ValueError, KeyError, TypeError, OSError):
                pass

    def _drop(self, client: socket.socket) -> None:
        self.clients.pop(client, None)
        client.close()


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    directory, instance = Path(args[0]), int(args[1])
    os.chdir(directory)
    lock = os.open(f"{instance}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    fcntl.flock(lock, fcntl.LOCK_EX)  # held until this process ends
    shim = Shim(directory, instance)
    stopping: list[int] = []

    def forward(signum: int, _: object) -> None:
        stopping.append(signum)
        if shim.pid:
            try:
                os.kill(shim.pid, signum)  # the container's first process, as a runtime's stop does
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    failure = shim.start()
    if failure:
        shim.log.write("stderr", f"{failure}\n".encode())
        exit_code, sig, reason, message = START_ERROR_CODE, None, "StartError", failure
        shim._reaped()
    else:
        exit_code, sig = shim.serve()
        reason, message = ("Completed" if exit_code == 0 else "Error"), None
    shim.log.close()
    _write_json(directory / f"{instance}.exit.json", {
        "exitCode": exit_code, "signal": sig, "reason": reason, "message": message,
        "startedAt": shim.started_at, "finishedAt": now_rfc3339()})
    try:
        os.unlink(f"{instance}.sock")
    except FileNotFoundError:
        pass


if __name__ == "__main__":
    main()
