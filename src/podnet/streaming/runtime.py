"""What the streaming server asks of the container runtime: where a container's
commands run, its stdio for attach, its pod's network namespace and its logs.

The runtime raises StreamError for anything the client should hear about (no such
pod, container not running); the server answers it as an HTTP status before any
upgrade, so kubectl prints the message as the API server's error."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


class StreamError(Exception):
    """A refusal with the HTTP status the client gets (404 no such pod, 409 not running)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ExecTarget:
    """How to run a command in a container: argv_prefix enters it (e.g. ``ip netns
    exec pn-...``) and the command is appended; env is the whole environment."""

    argv_prefix: tuple[str, ...]
    env: dict[str, str]
    working_dir: str | None
    netns_path: str


@dataclass(frozen=True)
class LogOptions:
    """kubectl logs' options, as the kubelet's containerLogs query carries them."""

    follow: bool = False
    tail_lines: int | None = None
    since_seconds: int | None = None
    timestamps: bool = False
    previous: bool = False
    limit_bytes: int | None = None
    since_time: datetime | None = None  # sinceTime, as the API server passes it on (UTC, to the second)


class Attachment(Protocol):
    """A running container's stdio, for attach."""

    def read(self) -> tuple[int, bytes] | None:
        """The next output, (1 stdout | 2 stderr, data); None once the container's output ends."""

    def write_stdin(self, data: bytes) -> None: ...

    def close_stdin(self) -> None: ...

    def close(self) -> None: ...


class ContainerRuntime(Protocol):
    def exec_target(self, namespace: str, pod: str, container: str) -> ExecTarget: ...

    def attach(self, namespace: str, pod: str, container: str) -> Attachment: ...

    def pod_netns(self, namespace: str, pod: str) -> str: ...

    def logs(self, namespace: str, pod: str, container: str, options: LogOptions) -> Iterator[bytes]: ...
