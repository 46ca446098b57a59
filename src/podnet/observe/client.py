"""Asking node agents' endpoints from outside their namespaces: the connection is
made from inside the node's namespace (to its loopback) and read from here; and
every node's flows, merged, as `podnet observe`, `policy drops` and the web view
follow them."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable

from podnet.errors import PodnetError
from podnet.kernel import netns
from podnet.observe.flows import Flow
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


class Merger:
    """Every node's flows, asked from where it was last asked."""

    def __init__(self, namespaces: dict[str, str], ask: Callable[[str, str], dict] = fetch_json) -> None:  # type: ignore[type-arg]
        self.namespaces = namespaces
        self.ask = ask
        self.cursors = {node: 0 for node in namespaces}
        self.lost: dict[str, int] = {}
        self.evicted: dict[str, int] = {}
        self.silent: dict[str, str] = {}  # node -> why its agent did not answer the last poll, or is not recording

    def poll(self, limit: int | None = None) -> list[Flow]:
        """New flows of every node whose agent answers (the others are named in `silent`)."""
        found: list[Flow] = []
        self.silent = {}
        for node, namespace in self.namespaces.items():
            try:
                answer = self.ask(namespace, f"/flows?since={self.cursors[node]}&limit={limit or 0}")
            except AgentUnreachable as err:  # a node whose agent restarts: the others still answer
                self.silent[node] = str(err)
                continue
            if not answer.get("recording", True):
                self.silent[node] = (f"its agent is not recording flows ({answer.get('failure') or 'stopped'}; "
                                     f"{answer.get('restarts', 0)} restarts so far)")
            flows = answer["flows"]
            if flows:
                self.cursors[node] = flows[-1]["number"]
            elif limit is None or self.cursors[node] == 0:
                self.cursors[node] = max(self.cursors[node], answer["recorded"])
            self.lost[node], self.evicted[node] = answer["lost"], answer["evicted"]
            found += [Flow.from_json(flow) for flow in flows]
        return sorted(found, key=lambda f: f.time)

    def losses(self) -> str:
        """What the flows shown miss, in words: losses the kernel's numbering shows, silent agents,
        agents that are not recording."""
        lines = [f"node {node}: {why}" for node, why in sorted(self.silent.items())]
        lost = {node: n for node, n in self.lost.items() if n}
        if lost:
            lines.append("lost (the agent could not keep up; the kernel's numbering shows the gap): " +
                         ", ".join(f"{node} {n}" for node, n in sorted(lost.items())))
        return "\n".join(lines)
