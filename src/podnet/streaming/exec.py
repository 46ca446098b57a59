"""Running an exec'd command for a client: with pipes, or under a pseudo-terminal
that becomes its controlling terminal (so ^C, job control and resizes work).

The process gets a session of its own, so a client that goes away takes the
whole process group with it. Threads that feed the command (stdin, resizes) own
duplicates of the descriptors they use: they may outlive the command until the
client's streams end, and must never write to a number since reused."""

from __future__ import annotations

import errno
import fcntl
import os
import pty
import selectors
import signal
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Callable

from podnet.streaming.remotecommand import SUCCESS, CommandStreams, Reader, Status, Writer, exited, \
    internal_error, terminal_sizes
from podnet.streaming.runtime import ExecTarget

READ_SIZE = 64 * 1024
POLL = 0.5  # how often a command whose output stays open is checked for having exited
GRACE = 1.0  # how long output still open after the command exited (a background child's) is read
END_OF_TRANSMISSION = b"\x04"  # what the end of stdin means to a terminal


class ExecJob:
    def __init__(self, target: ExecTarget, command: list[str]) -> None:
        self.target = target
        self.command = command
        self._process: subprocess.Popen[bytes] | None = None
        self._cancelled = False
        self._lock = threading.Lock()

    def run(self, streams: CommandStreams) -> Status:
        try:
            process, outputs = self._start_with_terminal(streams) if streams.tty else self._start_with_pipes(streams)
        except OSError as err:
            return internal_error(f"error executing command in container: failed to exec in container: "
                                  f"{_describe(err, self.command)}")
        try:
            self._copy_output(process, outputs)
            code = process.wait()
        finally:
            for fd in outputs:
                os.close(fd)
        if code == 0:
            return SUCCESS
        return exited(self.command, code if code > 0 else 128 - code)  # death by a signal, as a shell says it

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            if self._process is not None and self._process.poll() is None:
                try:
                    os.killpg(self._process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def _start_with_pipes(self, streams: CommandStreams) -> tuple[subprocess.Popen[bytes], dict[int, Writer | None]]:
        process = self._spawn(*(subprocess.PIPE if wanted else subprocess.DEVNULL
                                for wanted in (streams.stdin, streams.stdout, streams.stderr)))
        if process.stdin is not None and streams.stdin is not None:
            stdin = process.stdin
            _start(_copy_stdin, streams.stdin, stdin.fileno(), stdin.close)
        outputs = {os.dup(pipe.fileno()): writer for pipe, writer in
                   ((process.stdout, streams.stdout), (process.stderr, streams.stderr)) if pipe is not None}
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()
        return process, outputs

    def _start_with_terminal(self, streams: CommandStreams) -> tuple[subprocess.Popen[bytes], dict[int, Writer | None]]:
        terminal, child_end = pty.openpty()
        try:
            process = self._spawn(child_end, child_end, child_end, terminal=True)
        except OSError:
            os.close(terminal)
            raise
        finally:
            os.close(child_end)
        if streams.stdin is not None:
            fd = os.dup(terminal)
            _start(_copy_stdin, streams.stdin, fd, lambda: _end_terminal_input(fd))
        if streams.resize is not None:
            _start(_apply_resizes, streams.resize, os.dup(terminal))
        return process, {terminal: streams.stdout}

    def _spawn(self, stdin: int, stdout: int, stderr: int, terminal: bool = False) -> subprocess.Popen[bytes]:
        env = self.target.env
        if terminal and "TERM" not in env:
            env = {**env, "TERM": "xterm"}  # what containerd gives a command it runs under a terminal
        with self._lock:
            if self._cancelled:
                raise OSError(errno.ECANCELED, "the client went away")
            self._process = subprocess.Popen(  # the client's command, run as it asked
                [*self.target.argv_prefix, *self.command], stdin=stdin, stdout=stdout, stderr=stderr,
                env=env, cwd=self.target.working_dir, start_new_session=True, bufsize=0,
                preexec_fn=_take_terminal if terminal else None)
            return self._process

    def _copy_output(self, process: subprocess.Popen[bytes], outputs: dict[int, Writer | None]) -> None:
        """Copy the command's output until it ends, or until GRACE after the command
        exited if something else (a background child) still holds it open."""
        selector = selectors.DefaultSelector()
        for fd in outputs:
            selector.register(fd, selectors.EVENT_READ)
        exited_at: float | None = None
        try:
            while selector.get_map():
                for key, _ in selector.select(POLL):
                    try:
                        data = os.read(key.fd, READ_SIZE)
                    except OSError:  # EIO: the terminal's last other end has closed
                        data = b""
                    writer = outputs[key.fd]
                    if not data:
                        selector.unregister(key.fd)
                    elif writer is not None:
                        try:
                            writer.write(data)
                        except ConnectionError:
                            self.cancel()  # the client is gone
                            return
                if process.poll() is not None:
                    exited_at = exited_at or time.monotonic()
                    if time.monotonic() - exited_at > GRACE:
                        return
        finally:
            selector.close()


def _start(target: Callable[..., None], *args: object) -> None:
    threading.Thread(target=target, args=args, name="exec-input", daemon=True).start()


def _take_terminal() -> None:
    """In the child, after setsid: the pty on stdin becomes the controlling terminal."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _copy_stdin(reader: Reader, fd: int, end: Callable[[], None]) -> None:
    """The client's stdin into the command; at its end, end() (close the pipe, or ^D)."""
    try:
        while data := reader.read():
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
    except OSError:
        pass  # the command has exited, or will never read again
    finally:
        end()


def _end_terminal_input(fd: int) -> None:
    try:
        os.write(fd, END_OF_TRANSMISSION)
    except OSError:
        pass
    os.close(fd)


def _apply_resizes(reader: Reader, terminal: int) -> None:
    try:
        for size in terminal_sizes(reader):
            fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", size.height, size.width, 0, 0))
    except OSError:
        pass
    finally:
        os.close(terminal)


def _describe(err: OSError, command: list[str]) -> str:
    """runc's words for a command that cannot start."""
    if err.errno == errno.ENOENT and err.filename == command[0] and "/" not in command[0]:
        return f'exec: "{command[0]}": executable file not found in $PATH'
    return f'exec: "{err.filename or command[0]}": {(err.strerror or str(err)).lower()}'
