"""The plugin's own (host) namespace, where the bridge lives.

A netlink handle on it is opened afresh for every call: its socket answers one
caller at a time and the link indexes it learns hold for one call, while the
agent serves each call on a thread of its own. Its nftables are one NetlinkNft
per namespace for the life of the process, shared by those threads (it sends
each batch under its own lock): no socket is opened per call, and the sets one
call declared lay out the elements the next call sends alone.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from podnet.kernel import netns
from podnet.kernel.netlink import Netns, open_path
from podnet.kernel.nftables.nfnl import NetlinkNft

HOST_NETNS = netns.OWN  # the namespace the plugin runs in

_host_nfts: dict[tuple[int, int], NetlinkNft] = {}  # by the namespace's identity (device, inode)
_host_nfts_lock = threading.Lock()


@contextmanager
def host_namespace(purpose: str) -> Iterator[Netns]:
    with open_path(HOST_NETNS, purpose) as handle:
        yield handle


def host_nft() -> NetlinkNft:
    """nftables of the calling thread's namespace: the agent's threads all share
    the agent's; a thread that entered another namespace gets that one's."""
    identity = os.stat(HOST_NETNS)
    key = (identity.st_dev, identity.st_ino)
    with _host_nfts_lock:
        nft = _host_nfts.get(key)
        if nft is None:
            nft = _host_nfts[key] = NetlinkNft(HOST_NETNS)
        return nft
