"""The plugin's own (host) namespace, where the bridge lives.

It is opened afresh for every call: pyroute2's handles belong to the thread that
opened them, and the agent serves each call on a thread of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from podnet.kernel import netns
from podnet.kernel.netlink import Netns, open_path
from podnet.kernel.nftables.nfnl import NetlinkNft

HOST_NETNS = netns.OWN  # the namespace the plugin runs in


@contextmanager
def host_namespace(purpose: str) -> Iterator[Netns]:
    with open_path(HOST_NETNS, purpose) as handle:
        yield handle


def host_nft() -> NetlinkNft:
    """nftables of the plugin's own namespace."""
    return NetlinkNft(HOST_NETNS)
