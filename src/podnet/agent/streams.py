"""What the kubelet's streaming server (podnet/streaming) reaches through the
agent: a container's exec target (its sandbox, environment and working
directory, from its running instance's spec), its shim's attach socket, its pod's
network namespace for port-forward, and its log files.

A container is named as the API names it (namespace, pod, container) and found
by the sandbox naming the kubelet uses."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

from podnet.agent import logs
from podnet.agent.containers import ContainerKey, Containers, Instance
from podnet.agent.log_reader import read_log
from podnet.agent.pods import KubeletConfig
from podnet.agent.shim import CLOSE_STDIN, HEADER, STDIN, frame
from podnet.kernel import netns
from podnet.streaming.runtime import ExecTarget, LogOptions, StreamError


class KubeletRuntime:
    def __init__(self, config: KubeletConfig, containers: Containers) -> None:
        self.config = config
        self.containers = containers

    def exec_target(self, namespace: str, pod: str, container: str) -> ExecTarget:
        key, instance = self._running(namespace, pod, container)
        return ExecTarget(tuple(netns.exec_argv(key.sandbox, [])), dict(instance.spec["env"]),
                          instance.spec.get("workingDir") or "/", str(netns.path(key.sandbox)))

    def attach(self, namespace: str, pod: str, container: str) -> ShimAttachment:
        key, instance = self._running(namespace, pod, container)
        return ShimAttachment(self.containers.directory(key), instance.number)

    def pod_netns(self, namespace: str, pod: str) -> str:
        sandbox = self.config.sandbox_of(namespace, pod)
        if not netns.is_live(sandbox):
            raise StreamError(404, f'pod "{pod}" in namespace "{namespace}" has no sandbox on this node')
        return str(netns.path(sandbox))

    def logs(self, namespace: str, pod: str, container: str, options: LogOptions) -> Iterator[bytes]:
        key = ContainerKey(self.config.sandbox_of(namespace, pod), container)
        instance = self.containers.inspect(key)
        if instance is None:
            raise StreamError(400, f'container "{container}" in pod "{pod}" is waiting to start: ContainerCreating')
        number = instance.number
        if options.previous:
            if number == 0 or (previous := instance.last) is None or previous.kind != "terminated":
                raise StreamError(400, f'previous terminated container "{container}" in pod "{pod}" not found')
            number -= 1
        log = logs.instance_log(instance.log.parent, number)

        def alive() -> bool:
            now = self.containers.inspect(key)
            return now is not None and now.number == number and now.running

        return read_log(logs.files_of(log), options, alive)

    def _running(self, namespace: str, pod: str, container: str) -> tuple[ContainerKey, Instance]:
        key = ContainerKey(self.config.sandbox_of(namespace, pod), container)
        instance = self.containers.inspect(key)
        if instance is None:
            raise StreamError(404, f'container "{container}" not found in pod "{pod}"')
        if not instance.running:
            raise StreamError(400, f'container "{container}" in pod "{pod}" is not running')
        return key, instance


class ShimAttachment:
    """A client of a container's shim (agent/shim.py): its output as frames, our
    stdin to it. The socket is reached through the directory's descriptor, as
    its path may be longer than a socket's address can hold."""

    def __init__(self, directory: Path, number: int) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            self.sock.connect(f"/proc/self/fd/{fd}/{number}.sock")
        except OSError as err:
            self.sock.close()
            raise StreamError(400, f"cannot attach to the container: {err.strerror}") from None
        finally:
            os.close(fd)

    def read(self) -> tuple[int, bytes] | None:
        header = self._exactly(HEADER.size)
        if header is None:
            return None
        kind, length = HEADER.unpack(header)
        body = self._exactly(length)
        return None if body is None else (kind, body)

    def write_stdin(self, data: bytes) -> None:
        self.sock.sendall(frame(STDIN, data))

    def close_stdin(self) -> None:
        try:
            self.sock.sendall(frame(CLOSE_STDIN))
        except OSError:
            pass

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # a read blocked on another thread returns
        except OSError:
            pass
        self.sock.close()

    def _exactly(self, size: int) -> bytes | None:
        data = bytearray()
        while len(data) < size:
            try:
                piece = self.sock.recv(size - len(data))
            except OSError:
                return None
            if not piece:
                return None
            data += piece
        return bytes(data)
