"""Workers' metric tallies: published into shared memory by one process, read by
another, and added up as Prometheus would expect."""

from __future__ import annotations

import os

from podnet.dns.metrics import combined, exposition
from podnet.dns.workers import SharedTallies

REQUESTS, UDP_A, TCP_A = "coredns_dns_requests", "dns://:53|.||udp|1|A", "dns://:53|.||tcp|1|A"
ENTRIES, SUCCESS = "coredns_cache_entries", "dns://:53|success|.|"


def test_a_tally_published_by_a_forked_worker_is_read_by_the_first() -> None:
    tallies = SharedTallies(3)
    pid = os.fork()
    if pid == 0:  # the second worker
        tallies.publish(1, {(REQUESTS, UDP_A): 7, ("podnet_dns_zone_records", ""): 12})
        tallies.publish(1, {(REQUESTS, UDP_A): 9, ("podnet_dns_zone_records", ""): 12})
        os._exit(0)
    os.waitpid(pid, 0)
    assert tallies.others(0) == [{(REQUESTS, UDP_A): 9, ("podnet_dns_zone_records", ""): 12}, {}]


def test_counters_add_up_and_gauges_combine_by_their_meaning() -> None:
    first = {(REQUESTS, UDP_A): 5, (REQUESTS, TCP_A): 1, ("podnet_dns_zone_records", ""): 12,
             (ENTRIES, SUCCESS): 3, ("podnet_dns_forwarding_loop", ""): 0}
    second = {(REQUESTS, UDP_A): 9, ("podnet_dns_zone_records", ""): 12,
              (ENTRIES, SUCCESS): 4, ("podnet_dns_forwarding_loop", ""): 1}
    total = combined([first, second])
    assert total[(REQUESTS, UDP_A)] == 14 and total[(REQUESTS, TCP_A)] == 1
    assert total[("podnet_dns_zone_records", "")] == 12  # the same zone, not twice the records
    assert total[(ENTRIES, SUCCESS)] == 7  # each worker has a cache of its own
    assert total[("podnet_dns_forwarding_loop", "")] == 1
    text = exposition(total).decode()
    assert 'coredns_dns_requests_total{family="1",proto="udp",server="dns://:53",type="A",view="",zone="."} 14.0' \
        in text and "podnet_dns_zone_records 12.0" in text


def test_a_tally_too_large_for_its_slot_leaves_the_last_one() -> None:
    tallies = SharedTallies(2)
    tallies.publish(1, {(REQUESTS, UDP_A): 1})
    tallies.publish(1, {("podnet_dns_forward_requests", f"10.0.{n // 256}.{n % 256}:53"): n for n in range(2000)})
    assert tallies.read(1) == {(REQUESTS, UDP_A): 1}
