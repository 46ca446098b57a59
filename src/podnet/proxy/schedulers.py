"""The IPVS schedulers, with ipvsadm(8)'s semantics, for the userspace proxy.

Each scheduler picks a real server for a new connection from the servers'
weights and connection counts. As in IPVS, a server's "overhead" is
active * 256 + inactive (recently closed connections still count, which is what
makes wlc give 1/1/98 to weights 1/1/98), and weight 0 means quiescent: the
server keeps its connections but gets no new ones.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from functools import reduce

from podnet.errors import PodnetError


@dataclass
class Server:
    address: str  # "10.244.1.5:80"
    weight: int = 1
    active: int = 0
    inactive: int = 0

    @property
    def overhead(self) -> int:
        return self.active * 256 + self.inactive


class Scheduler:
    name = ""

    def __init__(self, servers: list[Server]) -> None:
        self.servers = servers

    def available(self) -> list[Server]:
        return [s for s in self.servers if s.weight > 0]

    def pick(self, source: str = "", destination: str = "") -> Server | None:
        raise NotImplementedError


def _min_by_ratio(servers: list[Server], cost) -> Server | None:  # type: ignore[no-untyped-def]
    """The server with the least cost/weight, the first one on ties, compared as
    IPVS does, by cross-multiplying to stay in integers."""
    best = None
    for server in servers:
        if best is None or cost(server) * best.weight < cost(best) * server.weight:
            best = server
    return best


class RoundRobin(Scheduler):
    name = "rr"

    def __init__(self, servers: list[Server]) -> None:
        super().__init__(servers)
        self._last = -1

    def pick(self, source: str = "", destination: str = "") -> Server | None:
        count = len(self.servers)
        for step in range(1, count + 1):
            index = (self._last + step) % count
            if self.servers[index].weight > 0:
                self._last = index
                return self.servers[index]
        return None


class WeightedRoundRobin(Scheduler):
    """ip_vs_wrr: walk the servers again and again, lowering a threshold by the
    weights' gcd each round; a server is picked while its weight reaches it."""

    name = "wrr"

    def __init__(self, servers: list[Server]) -> None:
        super().__init__(servers)
        self._index = -1
        self._current = 0

    def pick(self, source: str = "", destination: str = "") -> Server | None:
        weights = [s.weight for s in self.servers if s.weight > 0]
        if not weights:
            return None
        step, top = reduce(math.gcd, weights), max(weights)
        for _ in range(len(self.servers) * (top // step + 1)):
            self._index = (self._index + 1) % len(self.servers)
            if self._index == 0:
                self._current -= step
                if self._current <= 0:
                    self._current = top
            if self.servers[self._index].weight >= self._current:
                return self.servers[self._index]
        return None


class LeastConnection(Scheduler):
    name = "lc"

    def pick(self, source: str = "", destination: str = "") -> Server | None:
        return min(self.available(), key=lambda s: s.overhead, default=None)


class WeightedLeastConnection(Scheduler):
    name = "wlc"

    def pick(self, source: str = "", destination: str = "") -> Server | None:
        return _min_by_ratio(self.available(), lambda s: s.overhead)


class ShortestExpectedDelay(Scheduler):
    name = "sed"

    def pick(self, source: str = "", destination: str = "") -> Server | None:
        return _min_by_ratio(self.available(), lambda s: s.active + 1)


class NeverQueue(Scheduler):
    """An idle server if there is one, else shortest expected delay."""

    name = "nq"

    def pick(self, source: str = "", destination: str = "") -> Server | None:
        idle = next((s for s in self.available() if s.active == 0), None)
        return idle or _min_by_ratio(self.available(), lambda s: s.active + 1)


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def _weighted_slots(servers: list[Server]) -> list[Server]:
    return [s for s in servers for _ in range(s.weight)]


class DestinationHashing(Scheduler):
    name = "dh"

    def pick(self, source: str = "", destination: str = "") -> Server | None:
        slots = _weighted_slots(self.servers)
        return slots[_hash(destination) % len(slots)] if slots else None


class SourceHashing(Scheduler):
    name = "sh"

    def pick(self, source: str = "", destination: str = "") -> Server | None:
        slots = _weighted_slots(self.servers)
        return slots[_hash(source) % len(slots)] if slots else None


def _overloaded(server: Server) -> bool:
    return server.active > server.weight


class LocalityBasedLeastConnection(Scheduler):
    """A destination keeps its server while that server is not overloaded
    (more active connections than its weight); then wlc picks another."""

    name = "lblc"

    def __init__(self, servers: list[Server]) -> None:
        super().__init__(servers)
        self._assigned: dict[str, Server] = {}

    def pick(self, source: str = "", destination: str = "") -> Server | None:
        server = self._assigned.get(destination)
        if server is None or server.weight == 0 or server not in self.servers or _overloaded(server):
            server = _min_by_ratio(self.available(), lambda s: s.overhead)
            if server is not None:
                self._assigned[destination] = server
        return server


class LocalityBasedLeastConnectionReplication(Scheduler):
    """As lblc, but a destination has a set of servers: the least loaded of the set
    serves it, and an overloaded set grows by the least loaded server overall."""

    name = "lblcr"

    def __init__(self, servers: list[Server]) -> None:
        super().__init__(servers)
        self._sets: dict[str, list[Server]] = {}

    def pick(self, source: str = "", destination: str = "") -> Server | None:
        members = [s for s in self._sets.get(destination, []) if s in self.servers and s.weight > 0]
        server = _min_by_ratio(members, lambda s: s.overhead)
        if server is None or _overloaded(server):
            extra = _min_by_ratio(self.available(), lambda s: s.overhead)
            if extra is not None and extra not in members:
                members.append(extra)
            server = extra or server
        self._sets[destination] = members
        return server


class Maglev(Scheduler):
    """Maglev hashing (ip_vs_mh): a lookup table of prime size filled from each
    server's (offset, skip) permutation, weighted; the source address picks a slot,
    and a change of servers moves few sources."""

    name = "mh"
    TABLE_SIZE = 251  # prime; IPVS defaults to 65537, which a userspace proxy does not need

    def __init__(self, servers: list[Server]) -> None:
        super().__init__(servers)
        self._table: list[Server] = []
        self._built_for: tuple[tuple[str, int], ...] = ()

    def _build(self) -> None:
        live = self.available()
        key = tuple((s.address, s.weight) for s in live)
        if key == self._built_for:
            return
        self._built_for = key
        size = self.TABLE_SIZE
        table: list[Server | None] = [None] * size
        if not live:
            self._table = []
            return
        permutations = []
        for server in live:
            offset = _hash("offset" + server.address) % size
            skip = _hash("skip" + server.address) % (size - 1) + 1
            permutations.append((server, offset, skip))
        nexts = [0] * len(live)
        filled = 0
        while filled < size:
            for i, (server, offset, skip) in enumerate(permutations):
                for _ in range(server.weight):  # a server claims as many slots per turn as its weight
                    while True:
                        slot = (offset + nexts[i] * skip) % size
                        nexts[i] += 1
                        if table[slot] is None:
                            break
                    table[slot] = server
                    filled += 1
                    if filled == size:
                        break
                if filled == size:
                    break
        self._table = table  # type: ignore[assignment]

    def pick(self, source: str = "", destination: str = "") -> Server | None:
        self._build()
        return self._table[_hash(source) % len(self._table)] if self._table else None


SCHEDULERS: dict[str, type[Scheduler]] = {cls.name: cls for cls in (
    RoundRobin, WeightedRoundRobin, LeastConnection, WeightedLeastConnection, ShortestExpectedDelay, NeverQueue,
    DestinationHashing, SourceHashing, LocalityBasedLeastConnection, LocalityBasedLeastConnectionReplication, Maglev)}


class SchedulerError(PodnetError):
    pass


def scheduler(name: str, servers: list[Server]) -> Scheduler:
    if name not in SCHEDULERS:
        raise SchedulerError(f"unknown scheduler {name!r} (one of: {', '.join(SCHEDULERS)})")
    return SCHEDULERS[name](servers)
