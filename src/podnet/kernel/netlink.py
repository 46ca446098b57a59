"""An open netlink handle on one network namespace, made of one part per concern:
links (links.py), VXLAN devices (vxlan.py), neighbours and FDB entries
(neighbours.py), addresses (addresses.py) and routes (routes.py).

A handle stays open for a batch of operations. Every operation is "ensure"
style: it states what must exist and does nothing when it already does.
Messages are pyroute2's; they travel over podnet.kernel.rtnl's synchronous socket.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

from podnet.errors import KernelError
from podnet.kernel import netns
from podnet.kernel.addresses import Addresses
from podnet.kernel.neighbours import Neighbours
from podnet.kernel.route import Route
from podnet.kernel.routes import Routes
from podnet.kernel.rtnl import RtnlSocket
from podnet.kernel.vxlan import Vxlan


def _netlink_socket() -> socket.socket:
    """A route-netlink socket belongs to the namespace it was made in, for good.

    Made on a thread that has entered the namespace, this costs a fraction of
    pyroute2's own NetNS, which forks a helper process for every handle.
    """
    return socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, socket.NETLINK_ROUTE)


class Netns(Vxlan, Neighbours, Addresses, Routes):
    """An open netlink handle on one network namespace: a podnet namespace by
    name, or (for CNI) a runtime's namespace by path, never the machine's own
    unless its operator allowed it (netns.path, netns.guard_root)."""

    def __init__(self, name: str, ns_path: str | None = None) -> None:
        self.name = name
        if ns_path is None:
            ns_path = str(netns.path(name))
            if not os.path.exists(ns_path):
                raise KernelError(f"network namespace {name} does not exist")
        self.path = ns_path
        self._nl = RtnlSocket(netns.run_in_path(ns_path, _netlink_socket))
        self._indexes = {}

    def close(self) -> None:
        self._nl.close()


@contextmanager
def open_namespace(name: str) -> Iterator[Netns]:
    handle = Netns(name)
    try:
        yield handle
    finally:
        handle.close()


@contextmanager
def open_path(ns_path: str, purpose: str) -> Iterator[Netns]:
    """A runtime's namespace by path (CNI_NETNS), or "/proc/thread-self/ns/net" for
    our own.

    Refuses the machine's root namespace, so a plugin run by mistake on the host
    of a lab machine changes nothing there."""
    if not os.path.exists(ns_path):
        raise KernelError(f"network namespace {ns_path} does not exist")
    netns.guard_root(ns_path, purpose)
    handle = Netns(ns_path, ns_path)
    try:
        yield handle
    finally:
        handle.close()


def own_routes() -> set[Route]:
    """The routes podnet installed in the caller's own namespace, read only: how
    `podnet node status` looks at a real machine without the agent's permission
    to change it."""
    handle = Netns("own", netns.OWN)
    try:
        return handle.routes()
    finally:
        handle.close()
