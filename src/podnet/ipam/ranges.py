"""Range sets as host-local defines them: each set yields one address, its ranges
are tried in order, and the network address, the gateway and (IPv4 only, since
IPv6 has no broadcast) the broadcast address are never handed out."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Union

Address = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


class RangeError(ValueError):
    """A range that cannot be allocated from; the message names it."""


@dataclass(frozen=True)
class Range:
    subnet: Network
    start: Address
    end: Address
    gateway: Address | None

    @classmethod
    def build(cls, subnet: str, range_start: str | None = None, range_end: str | None = None,
              gateway: str | None = None) -> Range:
        try:
            network = ipaddress.ip_network(subnet, strict=False)
        except ValueError as err:
            raise RangeError(f"invalid subnet {subnet!r}: {err}") from None
        if network.prefixlen > network.max_prefixlen - 2:
            raise RangeError(f"Network {network} too small to allocate from")
        first = network.network_address + 1
        last = network.broadcast_address - (1 if network.version == 4 else 0)
        start = _address_in(range_start, network, "rangeStart") or first
        end = _address_in(range_end, network, "rangeEnd") or last
        if start < first or end > last or start > end:
            raise RangeError(f"range {start}-{end} is not inside the usable part of {network}")
        gw = _address_in(gateway, network, "gateway") if gateway else first
        return cls(network, start, end, gw)

    def __contains__(self, address: Address) -> bool:
        return address.version == self.start.version and self.start <= address <= self.end

    def addresses(self) -> Iterator[Address]:
        current = self.start
        while current <= self.end:
            if current != self.gateway:
                yield current
            current += 1

    @property
    def size(self) -> int:
        return int(self.end) - int(self.start) + 1 - (1 if self.gateway and self.gateway in self else 0)

    def __str__(self) -> str:
        return f"{self.start}-{self.end}"


def _address_in(text: str | None, network: Network, name: str) -> Address | None:
    if text is None:
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise RangeError(f"{name} {text!r} is not an IP address") from None
    if address not in network:
        raise RangeError(f"{name} {address} is not in {network}")
    return address


@dataclass(frozen=True)
class RangeSet:
    ranges: tuple[Range, ...]

    def __post_init__(self) -> None:
        if not self.ranges:
            raise RangeError("empty range set")
        versions = {r.subnet.version for r in self.ranges}
        if len(versions) > 1:
            raise RangeError("a range set mixes IPv4 and IPv6")
        for i, first in enumerate(self.ranges):
            for second in self.ranges[i + 1:]:
                if first.start <= second.end and second.start <= first.end:
                    raise RangeError(f"ranges {first} and {second} overlap")

    def range_for(self, address: Address) -> Range | None:
        return next((r for r in self.ranges if address in r), None)

    def iterate_after(self, last: Address | None) -> Iterator[tuple[Address, Range]]:
        """Every allocatable address once, starting after `last` and wrapping
        round, which is host-local's round-robin."""
        pivot = None
        if last is not None:
            for index, r in enumerate(self.ranges):
                if last in r:
                    pivot = (index, last)
        if pivot is None:
            for r in self.ranges:
                for address in r.addresses():
                    yield address, r
            return
        index, last = pivot
        current_range = self.ranges[index]
        for address in _from(current_range, last + 1):
            yield address, current_range
        for r in self.ranges[index + 1:] + self.ranges[:index]:
            for address in r.addresses():
                yield address, r
        for address in _from_start_until(current_range, last):
            yield address, current_range

    @property
    def size(self) -> int:
        return sum(r.size for r in self.ranges)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.ranges)


def _from(r: Range, start: Address) -> Iterator[Address]:
    current = start
    while current <= r.end:
        if current != r.gateway:
            yield current
        current += 1


def _from_start_until(r: Range, last: Address) -> Iterator[Address]:
    for address in r.addresses():
        if address > last:
            return
        yield address
