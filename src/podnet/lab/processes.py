"""Commands a lab runs inside its namespaces: agents, pods' commands, hosts' commands."""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from podnet.errors import LabError
from podnet.kernel import netns
from podnet.model.commands import resolve_command

READY_TIMEOUT = 10.0  # seconds for every command of a lab to start listening


def start(namespace: str, argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None,
          own_etc: bool = True, supervised: bool = False, pass_fds: Sequence[int] = ()) -> int:
    """own_etc=False for what must share the machine's mounts: an agent, which mounts pods' namespaces.
    supervised: started again whenever it exits (podnet.supervise), as a lab's own services are.
    pass_fds: descriptors it inherits (and, supervised, each of its restarts)."""
    command = resolve_command(argv)
    if supervised:
        command = [sys.executable, "-m", "podnet.supervise", *(f"--pass-fd={fd}" for fd in pass_fds), "--", *command]
    return netns.spawn(namespace, command, log_path=log_path, env=env, own_etc=own_etc, pass_fds=pass_fds)


def wait_listening(namespace: str, port: int, deadline: float) -> None:
    """Block until something accepts TCP on the namespace's loopback at port."""

    def probe() -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.2)
            return sock.connect_ex(("127.0.0.1", port)) == 0

    while not netns.run_in(namespace, probe):
        if time.monotonic() > deadline:
            raise LabError(f"nothing listens on port {port} in {namespace}; see the lab's logs")
        time.sleep(0.02)
