"""Handing out ClusterIPs and node ports through the store, each at most once.

Every allocation is a key created with compare-and-swap ("must not exist"), so
two writers racing for the same address cannot both win, whichever process or
machine they run on; the store is the one arbiter, as the API server is.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Iterator
from typing import Union

from podnet.errors import PodnetError
from podnet.store.base import Store

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


class AllocationError(PodnetError):
    pass


class Allocator:
    """One pool (cluster IPs, node ports) of values, with their owners in the store."""

    def __init__(self, store: Store, pool: str, candidates: Callable[[], Iterator[str]]) -> None:
        self.store = store
        self.prefix = f"/registry/allocations/{pool}/"
        self.pool = pool
        self._candidates = candidates  # lazily: a /12 of service addresses is a million of them
        self._cursor = candidates()  # where the last allocation stopped, so n allocations are not n^2 tries

    def check(self, value: str, owner: str) -> None:
        """Fail, naming the holder, if someone else holds this value; writes nothing."""
        holder = self.store.get(self.prefix + value)
        if holder and holder.value.get("owner") != owner:
            raise AllocationError(f"{self.pool} {value} is already allocated to {holder.value.get('owner')}")

    def claim(self, value: str, owner: str) -> bool:
        """Take this exact value, or fail naming who holds it. True if it is taken
        now, False if the owner held it already."""
        if self.store.compare_and_swap(self.prefix + value, {"owner": owner}, 0) is not None:
            return True
        self.check(value, owner)
        return False

    def allocate(self, owner: str) -> str:
        """The next free value in order, wrapping round once before giving up."""
        for cursor in (self._cursor, self._candidates()):
            for value in cursor:
                if self.store.compare_and_swap(self.prefix + value, {"owner": owner}, 0) is not None:
                    self._cursor = cursor
                    return value
        raise AllocationError(f"no {self.pool} left to allocate")

    def release(self, value: str) -> None:
        self.store.delete(self.prefix + value)


def cluster_ips(store: Store, subnet: Network, reserved_offsets: Iterable[int]) -> Allocator:
    reserved = {str(subnet.network_address + offset) for offset in reserved_offsets}
    return Allocator(store, "cluster-ips", lambda: (str(ip) for ip in subnet.hosts() if str(ip) not in reserved))


def node_ports(store: Store, first: int, last: int) -> Allocator:
    return Allocator(store, "node-ports", lambda: (str(port) for port in range(first, last + 1)))
