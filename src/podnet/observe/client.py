"""Asking a node agent's endpoint from outside its namespace: the connection is
made from inside the node's namespace (to its loopback) and read from here."""

from __future__ import annotations

import json
import socket

from podnet.errors import PodnetError
from podnet.kernel import netns
from podnet.observe.server import ADDRESS


class AgentUnreachable(PodnetError):
    """The node's agent does not answer on its endpoint."""


def fetch(namespace: str, path: str, timeout: float = 3.0) -> bytes:
    """The body of GET `path` from the agent of the node whose namespace is given."""
    try:
        if namespace == netns.OWN:  # a real machine's agent, asked from the machine: no namespace to enter
            sock = socket.create_connection(ADDRESS, timeout)
        else:
            sock = netns.run_in(namespace, socket.create_connection, ADDRESS, timeout)
    except OSError as err:
        where = "here" if namespace == netns.OWN else f"in {namespace}"
        raise AgentUnreachable(f"the agent {where} does not answer on {ADDRESS[0]}:{ADDRESS[1]} ({err}); "
                               f"is it running? (its log tells)") from None
    with sock:
        sock.settimeout(timeout)
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: agent\r\n\r\n".encode())
        chunks = []
        while chunk := sock.recv(1 << 16):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1] if head.count(b" ") >= 1 else b"?"
    if status != b"200":
        raise AgentUnreachable(f"the agent in {namespace} answered {path} with {status.decode(errors='replace')}")
    return body


def fetch_json(namespace: str, path: str) -> dict:  # type: ignore[type-arg]
    return json.loads(fetch(namespace, path))
