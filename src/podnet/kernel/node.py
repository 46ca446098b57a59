"""A node's kernel as the agent's controllers see it: its namespace's netlink,
sysctls, nftables and conntrack, behind one object passed in.

Controllers never name the kernel themselves, so a unit test hands them fakes
and runs a whole reconcile without root; kernel and e2e tests hand them this.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol

from podnet.kernel import conntrack, sysctl
from podnet.kernel.netlink import Netns, open_namespace
from podnet.kernel.nftables import Nftables
from podnet.kernel.nftables.nfnl import NetlinkNft


class NodeKernel(Protocol):
    nft: Nftables

    def netlink(self) -> AbstractContextManager[Netns]: ...

    def ensure_sysctl(self, key: str, value: str) -> bool: ...

    def forget_udp(self, *, reply_source: str | None = None, original_destination: str | None = None) -> None: ...


class NamespaceKernel:
    """The real thing, in one podnet namespace."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.nft = NetlinkNft.in_namespace(namespace)

    def netlink(self) -> AbstractContextManager[Netns]:
        return open_namespace(self.namespace)

    def ensure_sysctl(self, key: str, value: str) -> bool:
        return sysctl.ensure(self.namespace, key, value)

    def forget_udp(self, *, reply_source: str | None = None, original_destination: str | None = None) -> None:
        conntrack.forget_udp(self.namespace, reply_source=reply_source, original_destination=original_destination)
