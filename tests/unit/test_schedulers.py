"""The IPVS schedulers' choices, including the seed's ipvsadm numbers."""

from __future__ import annotations

import collections

import pytest

from podnet.proxy.schedulers import SCHEDULERS, SchedulerError, Server, scheduler


def servers(*weights: int) -> list[Server]:
    return [Server(f"10.244.0.{i + 2}:80", w) for i, w in enumerate(weights)]


def sequential(name: str, pool: list[Server], count: int, source: str = "10.0.0.1") -> collections.Counter:  # type: ignore[type-arg]
    """count connections one after another; each, once closed, counts as inactive
    (TIME_WAIT), as in the seed's `for i in {1..100}; do curl ...; done`."""
    chooser = scheduler(name, pool)
    got: collections.Counter[str] = collections.Counter()
    for _ in range(count):
        server = chooser.pick(source, "10.96.0.2")
        assert server is not None
        got[server.address] += 1
        server.inactive += 1
    return got


def test_rr_splits_100_as_34_33_33() -> None:
    assert sorted(sequential("rr", servers(1, 1, 1), 100).values()) == [33, 33, 34]


def test_wlc_with_weights_1_1_98_gives_1_1_98() -> None:
    got = sequential("wlc", servers(1, 1, 98), 100)
    assert sorted(got.values()) == [1, 1, 98]


def test_wrr_follows_the_weights() -> None:
    got = sequential("wrr", servers(4, 3, 2), 90)
    assert [got[s.address] for s in servers(4, 3, 2)] == [40, 30, 20]


def test_quiescent_servers_get_no_new_connections() -> None:
    for name in SCHEDULERS:
        pool = servers(1, 0, 1)
        picked = {scheduler(name, pool).pick(f"10.0.0.{i}", f"10.96.0.{i}").address for i in range(20)}  # type: ignore[union-attr]
        assert pool[1].address not in picked, name


def test_least_connection_family() -> None:
    pool = servers(1, 1, 1)
    pool[0].active, pool[1].active, pool[2].active = 3, 1, 2
    assert scheduler("lc", pool).pick().address == pool[1].address  # type: ignore[union-attr]
    weighted = servers(1, 4)
    weighted[0].active, weighted[1].active = 1, 3  # expected delays 2/1 and 4/4
    assert scheduler("sed", weighted).pick().address == weighted[1].address  # type: ignore[union-attr]
    weighted[0].active = 0
    assert scheduler("nq", weighted).pick().address == weighted[0].address  # type: ignore[union-attr]


def test_hashing_schedulers_are_sticky() -> None:
    pool = servers(1, 1, 1)
    for name, argument in (("sh", "source"), ("dh", "destination"), ("mh", "source")):
        chooser = scheduler(name, pool)
        first = chooser.pick(source="10.0.0.7", destination="10.96.0.9")
        assert all(chooser.pick(source="10.0.0.7", destination="10.96.0.9") is first for _ in range(10)), name
    spread = {scheduler("sh", pool).pick(source=f"10.0.{i}.1").address for i in range(60)}  # type: ignore[union-attr]
    assert len(spread) == 3


def test_maglev_moves_few_sources_when_a_server_goes() -> None:
    pool = servers(1, 1, 1, 1)
    before = {f"10.1.{i}.1": scheduler("mh", pool).pick(source=f"10.1.{i}.1").address for i in range(200)}  # type: ignore[union-attr]
    smaller = pool[:3]
    after = {source: scheduler("mh", smaller).pick(source=source).address for source in before}  # type: ignore[union-attr]
    moved = sum(1 for source in before if before[source] != after[source] and before[source] != pool[3].address)
    assert moved < 40  # sources of the servers that stayed mostly stay (consistent hashing)


def test_locality_schedulers_keep_a_destination_on_its_server() -> None:
    pool = servers(2, 2)
    for name in ("lblc", "lblcr"):
        chooser = scheduler(name, pool)
        first = chooser.pick(destination="10.96.0.5")
        assert chooser.pick(destination="10.96.0.5") is first
        first.active = 5  # overloaded: more active connections than its weight
        assert chooser.pick(destination="10.96.0.5") is not first


def test_unknown_scheduler() -> None:
    with pytest.raises(SchedulerError, match="unknown scheduler 'fifo'"):
        scheduler("fifo", servers(1))
