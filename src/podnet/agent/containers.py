"""The containers of this node's pods: each instance of each container runs
under a shim of its own (agent/shim.py) inside its pod's sandbox, and what the
kubelet knows of it is read back from the instance's files, so an agent
restarted at any point finds its containers as they are. Beside them, kubelet's
CrashLoopBackOff.

A container's directory is `<state>/containers/<sandbox>/<name>`; instance N is
its Nth restart, and its log is `<logs>/<namespace>_<pod>_<uid>/<name>/N.log`,
as kubelet lays out /var/log/pods.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import sys
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from podnet.agent import logs
from podnet.kernel import netns
from podnet.model.container_status import ContainerState

BACKOFF_FIRST, BACKOFF_MAX = 10.0, 300.0  # kubelet's restart back-off: 10 s doubling to 5 min


@dataclass(frozen=True)
class ContainerKey:
    sandbox: str
    name: str


@dataclass(frozen=True)
class Launch:
    """What one instance runs, as its shim reads it."""
    argv: tuple[str, ...]
    env: dict[str, str]
    working_dir: str | None
    log_dir: Path  # the container's log directory; the instance's file is in it
    stdin: bool = False
    stdin_once: bool = False
    tty: bool = False


@dataclass(frozen=True)
class Instance:
    """A container's latest run as its files tell it."""
    number: int  # its restart count
    state: ContainerState  # running, or terminated
    last: ContainerState | None  # how the one before it ended
    spec: dict[str, Any]

    @property
    def running(self) -> bool:
        return self.state.kind == "running"

    @property
    def log(self) -> Path:
        return Path(self.spec["log"])


class Step(Enum):
    """What to do about a container found stopped."""
    BACK_OFF = "back off"  # just found: say so, and wait the first delay
    WAIT = "wait"
    RESTART = "restart"


@dataclass
class _Delay:
    delay: float = 0.0
    not_before: float = 0.0


class Backoff:
    """Kubelet's CrashLoopBackOff: the first restart waits 10 s, each next one
    twice as long, up to 5 min, until the container is reset (Ready again, or gone)."""

    def __init__(self) -> None:
        self._delays: dict[str, dict[str, _Delay]] = {}  # sandbox -> container name -> its delay

    def step(self, container: ContainerKey, now: float) -> Step:
        delay = self._delays.setdefault(container.sandbox, {}).setdefault(container.name, _Delay())
        if delay.delay == 0.0:
            delay.delay, delay.not_before = BACKOFF_FIRST, now + BACKOFF_FIRST
            return Step.BACK_OFF
        if now < delay.not_before:
            return Step.WAIT
        delay.delay = min(delay.delay * 2, BACKOFF_MAX)
        delay.not_before = now + delay.delay
        return Step.RESTART

    def waiting(self, container: ContainerKey) -> float:
        """The delay it is waiting out, 0 when none."""
        return self._delays.get(container.sandbox, {}).get(container.name, _Delay()).delay

    def reset(self, sandbox: str, name: str | None = None) -> None:
        if name is None:
            self._delays.pop(sandbox, None)  # one call: the prober's and the pod workers' threads reset too
        else:
            self._delays.get(sandbox, {}).pop(name, None)


class Containers:
    def __init__(self, state_dir: Path) -> None:
        self.root = state_dir / "containers"
        self.backoff = Backoff()
        self._children: dict[int, ContainerKey] = {}  # pid -> container, of the shims this agent started
        self._files: dict[Path, dict[str, Any]] = {}  # instances' files read, which never change once written

    def directory(self, key: ContainerKey) -> Path:
        return self.root / key.sandbox / key.name

    def start(self, key: ContainerKey, launch: Launch) -> int:
        """The next instance, under a shim of its own in the sandbox; its number."""
        self._reap()
        directory = self.directory(key)
        directory.mkdir(parents=True, exist_ok=True)
        current = _latest(directory)
        number = 0 if current is None else current + 1
        launch.log_dir.mkdir(parents=True, exist_ok=True)
        spec = {"argv": list(launch.argv), "env": launch.env, "workingDir": launch.working_dir,
                "log": str(logs.instance_log(launch.log_dir, number)), "stdin": launch.stdin,
                "stdinOnce": launch.stdin_once, "tty": launch.tty}
        _write(directory / f"{number}.spec.json", spec)
        pid = netns.spawn(key.sandbox, [sys.executable, "-m", "podnet.agent.shim", str(directory), str(number)],
                          log_path=directory / "shim.log")
        self._children[pid] = key
        return number

    def inspect(self, key: ContainerKey) -> Instance | None:
        """Its latest instance; None when none was started. An instance's files
        never change once written, so each is read once."""
        self._reap()
        directory = self.directory(key)
        number = _latest(directory)
        if number is None:
            return None
        spec = self._once(directory / f"{number}.spec.json")
        if not spec:
            return None
        last = self._ended(directory, number - 1) if number else None
        state = self._ended(directory, number)
        if state is None:
            if self._alive(key, directory, number):
                state = ContainerState("running", started_at=self._once(directory / f"{number}.state.json")
                                       .get("startedAt"))
            else:
                state = self._ended(directory, number) or ContainerState(  # it may have ended just now
                    "terminated", "ContainerStatusUnknown", "The container could not be located", exit_code=137)
        return Instance(number, state, last, spec)

    def _once(self, path: Path) -> dict[str, Any]:
        found = self._files.get(path)
        if found is None:
            found = _read(path)
            if found:
                self._files[path] = found
        return found

    def _ended(self, directory: Path, number: int) -> ContainerState | None:
        ended = self._once(directory / f"{number}.exit.json")
        if not ended:
            return None
        return ContainerState("terminated", ended.get("reason"), ended.get("message"), ended.get("exitCode"),
                              ended.get("signal"), ended.get("startedAt") or None, ended.get("finishedAt"))

    def attach_socket(self, key: ContainerKey, number: int) -> Path:
        return self.directory(key) / f"{number}.sock"

    def stop(self, sandbox: str, grace: float) -> None:
        """SIGTERM to every process in the sandbox, SIGKILL after the grace period.
        Our own shims go by pid too: one just spawned may not have entered the
        namespace yet, and would live on in it once it has no name."""
        netns.kill_processes_in([sandbox], grace=grace)
        for pid, owner in list(self._children.items()):
            if owner.sandbox == sandbox:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self._reap()

    def forget(self, sandbox: str) -> None:
        """Its containers' files, once they have all stopped."""
        shutil.rmtree(self.root / sandbox, ignore_errors=True)
        gone = self.root / sandbox
        for path in [p for p in self._files if p.is_relative_to(gone)]:
            del self._files[path]

    def _alive(self, key: ContainerKey, directory: Path, number: int) -> bool:
        """Its shim holds the instance's lock, or is a child of ours that has not
        taken it yet."""
        if any(owner == key for owner in self._children.values()) and not (directory / f"{number}.lock").exists():
            return True
        try:
            fd = os.open(directory / f"{number}.lock", os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def _reap(self) -> None:
        """Shims this agent started are its children: collect those that exited."""
        for pid in list(self._children):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                self._children.pop(pid, None)  # the pass's thread and the pod workers' reap alike


def _latest(directory: Path) -> int | None:
    try:
        numbers = [int(name.split(".", 1)[0]) for name in os.listdir(directory) if name.endswith(".spec.json")]
    except FileNotFoundError:
        return None
    return max(numbers) if numbers else None


def _read(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _write(path: Path, value: dict[str, Any]) -> None:
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(value))
    os.replace(partial, path)
