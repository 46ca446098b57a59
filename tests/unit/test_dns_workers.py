"""Workers' metric tallies: published into shared memory by one process, read by
another, and added up as Prometheus would expect."""

from __future__ import annotations

import os

from podnet.dns.metrics import combined, exposition
from podnet.dns.workers import SharedTallies


def test_a_tally_published_by_a_forked_worker_is_read_by_the_first() -> None:
    tallies = SharedTallies(3)
    pid = os.fork()
    if pid == 0:  # the second worker
        tallies.publish(1, {("podnet_dns_requests", "udp"): 7, ("podnet_dns_zone_records", ""): 12})
        tallies.publish(1, {("podnet_dns_requests", "udp"): 9, ("podnet_dns_zone_records", ""): 12})
        os._exit(0)
    os.waitpid(pid, 0)
    assert tallies.others(0) == [{("podnet_dns_requests", "udp"): 9, ("podnet_dns_zone_records", ""): 12}, {}]


def test_counters_add_up_and_gauges_combine_by_their_meaning() -> None:
    first = {("podnet_dns_requests", "udp"): 5, ("podnet_dns_requests", "tcp"): 1, ("podnet_dns_zone_records", ""): 12,
             ("podnet_dns_cache_entries", ""): 3, ("podnet_dns_forwarding_loop", ""): 0}
    second = {("podnet_dns_requests", "udp"): 9, ("podnet_dns_zone_records", ""): 12,
              ("podnet_dns_cache_entries", ""): 4, ("podnet_dns_forwarding_loop", ""): 1}
    total = combined([first, second])
    assert total[("podnet_dns_requests", "udp")] == 14 and total[("podnet_dns_requests", "tcp")] == 1
    assert total[("podnet_dns_zone_records", "")] == 12  # the same zone, not twice the records
    assert total[("podnet_dns_cache_entries", "")] == 7  # each worker has a cache of its own
    assert total[("podnet_dns_forwarding_loop", "")] == 1
    text = exposition(total).decode()
    assert 'podnet_dns_requests_total{proto="udp"} 14.0' in text and "podnet_dns_zone_records 12.0" in text


def test_a_tally_too_large_for_its_slot_leaves_the_last_one() -> None:
    tallies = SharedTallies(2)
    tallies.publish(1, {("podnet_dns_requests", "udp"): 1})
    tallies.publish(1, {("podnet_dns_forward_requests", f"10.0.{n // 256}.{n % 256}:53"): n for n in range(2000)})
    assert tallies.read(1) == {("podnet_dns_requests", "udp"): 1}
