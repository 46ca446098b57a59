"""A node's kernel in memory, for unit tests of controllers: the same calls the
agent makes on a real namespace, recorded as state a test can read and change
(to play drift)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from podnet.errors import KernelError
from podnet.kernel.nftables.fake import Fake
from podnet.kernel.route import ForwardingEntry, Neighbour, Route


@dataclass
class FakeNetlink:
    links: dict[str, str] = field(default_factory=dict)  # name -> kind
    addresses: dict[str, set[str]] = field(default_factory=dict)
    routes: set[Route] = field(default_factory=set)
    neighbours: dict[str, set[Neighbour]] = field(default_factory=dict)
    forwarding: dict[str, set[ForwardingEntry]] = field(default_factory=dict)

    def ensure_bridge(self, ifname: str, mtu: int | None = None, *, up: bool = True) -> int:
        self.links.setdefault(ifname, "bridge")
        return list(self.links).index(ifname) + 1

    def index(self, ifname: str) -> int | None:
        return list(self.links).index(ifname) + 1 if ifname in self.links else None

    def ensure_vxlan(self, ifname: str, vni: int, local: str, port: int, mac: str, mtu: int,
                     uplink: str | None = None) -> None:
        self.links.setdefault(ifname, "vxlan")

    def _require(self, ifname: str) -> None:
        if ifname not in self.links:
            raise KernelError(f"fake: no link {ifname}")

    def ensure_address(self, ifname: str, cidr: str) -> None:
        self._require(ifname)
        self.addresses.setdefault(ifname, set()).add(cidr)

    def sync_neighbours(self, ifname: str, desired: Iterable[Neighbour]) -> tuple[set[Neighbour], set[Neighbour]]:
        self._require(ifname)
        return _sync(self.neighbours.setdefault(ifname, set()), set(desired))

    def sync_forwarding(self, ifname: str,
                        desired: Iterable[ForwardingEntry]) -> tuple[set[ForwardingEntry], set[ForwardingEntry]]:
        self._require(ifname)
        return _sync(self.forwarding.setdefault(ifname, set()), set(desired))

    def sync_routes(self, desired: Iterable[Route]) -> tuple[set[Route], set[Route]]:
        for route in desired:
            if route.dev:
                self._require(route.dev)
        return _sync(self.routes, set(desired))


def _sync(present: set, wanted: set) -> tuple[set, set]:  # type: ignore[type-arg]
    added, removed = wanted - present, present - wanted
    present.clear()
    present.update(wanted)
    return added, removed


@dataclass
class FakeNodeKernel:
    nft: Fake = field(default_factory=Fake)
    links: FakeNetlink = field(default_factory=FakeNetlink)
    sysctls: dict[str, str] = field(default_factory=dict)
    forgotten: list[dict[str, str | None]] = field(default_factory=list)  # conntrack deletions asked for

    @contextmanager
    def netlink(self) -> Iterator[FakeNetlink]:
        yield self.links

    def ensure_sysctl(self, key: str, value: str) -> bool:
        changed = self.sysctls.get(key) != value
        self.sysctls[key] = value
        return changed

    def forget_udp(self, *, reply_source: str | None = None, original_destination: str | None = None) -> None:
        self.forgotten.append({"reply_source": reply_source, "original_destination": original_destination})
