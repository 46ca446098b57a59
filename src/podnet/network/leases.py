"""Node subnet leases, as flannel keeps them in etcd: each node claims one subnet
of the pod network (a /24 by default) by creating its key with compare-and-swap,
renews the lease before it expires, and releases it when it leaves.

The store is the only arbiter: however many nodes claim at once, a subnet's key
is created once. An expired lease (its node gone without releasing) may be taken
over, again by compare-and-swap against the revision the taker read.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Iterable
from typing import Union

from podnet.errors import PodnetError
from podnet.store.base import Entry, Store

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
PREFIX = "/registry/subnets/"
LEASE_SECONDS = 24 * 3600  # flannel's
RENEW_EVERY = 3600  # a node renews its lease long before it runs out


class LeaseError(PodnetError):
    pass


def _key(cidr: str) -> str:
    return PREFIX + cidr.replace("/", "-")


def _cidr(key: str) -> str:
    return key.removeprefix(PREFIX).replace("-", "/")


class SubnetLeases:
    def __init__(self, store: Store, pod_subnet: Network, mask: int, clock: Callable[[], float] = time.time,
                 lease_seconds: float = LEASE_SECONDS) -> None:
        self.store = store
        self.pod_subnet = pod_subnet
        self.mask = mask
        self.clock = clock
        self.lease_seconds = lease_seconds

    def _value(self, node: str, node_ip: str) -> dict[str, object]:
        return _lease(node, node_ip, self.clock() + self.lease_seconds)

    def _entries(self) -> list[Entry]:
        """The leases of this pod network (a dual-stack cluster keeps another's beside them)."""
        entries, _ = self.store.list(PREFIX)
        return [e for e in entries if _within(_cidr(e.key), self.pod_subnet)]

    def held(self) -> dict[str, str]:
        """subnet -> node, for every lease that has not expired."""
        now = self.clock()
        return {_cidr(e.key): str(e.value["node"]) for e in self._entries() if float(e.value.get("expires", 0)) > now}

    def acquire(self, node: str, node_ip: str) -> str:
        """The node's subnet: the one it already holds (renewed), or the first free
        or expired one, claimed with compare-and-swap."""
        entries = self._entries()
        for entry in entries:
            if entry.value.get("node") == node and self._swap(entry, node, node_ip):
                return _cidr(entry.key)
        taken = {e.key: e for e in entries}
        for subnet in self.pod_subnet.subnets(new_prefix=self.mask):
            key = _key(str(subnet))
            entry = taken.get(key)
            if entry is None:
                if self.store.compare_and_swap(key, self._value(node, node_ip), 0) is not None:
                    return str(subnet)
                entry = self.store.get(key)  # someone was faster: look at what they hold
            if entry is not None and float(entry.value.get("expires", 0)) <= self.clock() and \
                    self._swap(entry, node, node_ip):
                return str(subnet)
        raise LeaseError(f"no free /{self.mask} left in the pod network {self.pod_subnet} for node {node}")

    def renew(self, node: str, node_ip: str, cidr: str) -> bool:
        return renew(self.store, node, node_ip, cidr, self.clock() + self.lease_seconds)

    def release(self, node: str, cidr: str) -> None:
        entry = self.store.get(_key(cidr))
        if entry is not None and entry.value.get("node") == node:
            self.store.compare_and_swap(entry.key, None, entry.mod_revision)

    def _swap(self, entry: Entry, node: str, node_ip: str) -> bool:
        return self.store.compare_and_swap(entry.key, self._value(node, node_ip), entry.mod_revision) is not None


def _within(cidr: str, network: Network) -> bool:
    try:
        subnet = ipaddress.ip_network(cidr)
    except ValueError:
        return False
    return subnet.version == network.version and subnet.subnet_of(network)  # type: ignore[arg-type]


class NodeLeases:
    """A node's subnet in each family of the pod network, leased family by
    family in the order given (the primary first), all or none."""

    def __init__(self, store: Store, pod_subnets: Iterable[Network], masks: Callable[[str], int]) -> None:
        self.families = [SubnetLeases(store, subnet, masks("IPv6" if subnet.version == 6 else "IPv4"))
                         for subnet in pod_subnets]

    def acquire(self, node: str, node_ip: str) -> tuple[str, ...]:
        leased: list[str] = []
        try:
            for leases in self.families:
                leased.append(leases.acquire(node, node_ip))
        except BaseException:
            self.release(node, leased)
            raise
        return tuple(leased)

    def release(self, node: str, cidrs: Iterable[str]) -> None:
        for leases in self.families:
            for cidr in cidrs:
                if _within(cidr, leases.pod_subnet):
                    leases.release(node, cidr)


def expiry(store: Store, node: str, cidr: str) -> float | None:
    """When the node's lease of the subnet runs out; None when it does not hold it."""
    entry = store.get(_key(cidr))
    if entry is None or entry.value.get("node") != node:
        return None
    return float(entry.value.get("expires", 0))


def renew(store: Store, node: str, node_ip: str, cidr: str, expires: float | None = None) -> bool:
    """Extend the node's lease (by LEASE_SECONDS from now unless told); False when
    it is no longer the node's. The node agent calls this every RENEW_EVERY."""
    entry = store.get(_key(cidr))
    if entry is None or entry.value.get("node") != node:
        return False
    value = _lease(node, node_ip, expires if expires is not None else time.time() + LEASE_SECONDS)
    return store.compare_and_swap(entry.key, value, entry.mod_revision) is not None


def _lease(node: str, node_ip: str, expires: float) -> dict[str, object]:
    return {"node": node, "nodeIP": node_ip, "expires": expires}
