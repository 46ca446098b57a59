"""What a pod runs when its manifest names no command, and which port tells that
it is up.

The kubelet (agent) and the lab (its hosts and its own services) both start
commands this way, so the defaults live here, below both.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from podnet.model.pod import Container

ECHO_PORT = 80  # the echo server every lab pod runs by default
DNS_PORT = 53
_DNS_COMMAND_HEAD = ("podnet", "dns")


def resolve_command(argv: Sequence[str]) -> list[str]:
    """Empty means the echo server; a leading "podnet" means this very podnet,
    so a lab works from a virtualenv that is not on PATH."""
    if not argv:
        return [sys.executable, "-m", "podnet.echo", "--port", str(ECHO_PORT)]
    if argv[0] == "podnet":
        return [sys.executable, "-m", "podnet", *argv[1:]]
    return list(argv)


def container_command(container: Container) -> list[str]:
    """A container's command line. Without a command its "image" is the echo
    server, so args alone are the echo server's (`--port 8080`)."""
    if not container.command and container.args:
        return resolve_command([])[:-2] + list(container.args)
    return resolve_command(container.argv)


def container_readiness_port(container: Container) -> int | None:
    """The port whose opening makes a container Ready when it has no probe: its
    first declared TCP port, the echo server's or the DNS server's; None: ready
    once started."""
    declared = [p.container_port for p in container.ports if p.protocol == "TCP"]
    if declared:
        return declared[0]
    argv = container.argv
    if not container.command:
        ports = [int(value) for flag, value in zip(argv, argv[1:]) if flag == "--port" and value.isdigit()]
        return ports[0] if ports else (None if argv else ECHO_PORT)
    if argv[:2] == _DNS_COMMAND_HEAD:
        return DNS_PORT
    return None
