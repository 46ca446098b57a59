"""Prometheus metrics of the DNS server, named after CoreDNS's.

The answering path only bumps plain integers; they become metric families when
Prometheus scrapes (a custom collector), so a query pays no lock for its counting.
With several workers, each publishes its tally and the first one's /metrics
adds them up (podnet.dns.workers).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING

import dns.rcode
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from podnet.dns.resolver import Resolver


class Counts:
    """What the answering path counts: requests by transport, responses by rcode."""

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.responses: Counter[int] = Counter()
        self.cache_hits = 0  # answered from a rendered cache entry, without asking the cache
        self.fast_rcodes = [0] * 16  # UDP replies of the receiving thread's own, by rcode: the cheapest count

    def answered(self, transport: str, reply: bytes | None) -> None:
        self.requests[transport] += 1
        if reply and len(reply) > 3:
            self.responses[reply[3] & 0x0F] += 1


# A tally is every metric's value at one moment: (name, label) -> value, with ""
# for a metric without labels. Flat, so the tallies of several workers add up.
Tally = dict[tuple[str, str], float]

_COUNTERS = {  # name -> (help, label name or "")
    "podnet_dns_requests": ("Queries received.", "proto"),
    "podnet_dns_responses": ("Replies sent, by rcode.", "rcode"),
    "podnet_dns_cache_hits": ("Forwarded names answered from the cache.", ""),
    "podnet_dns_cache_misses": ("Forwarded names not in the cache.", ""),
    "podnet_dns_cache_prefetches": ("Answers refreshed before expiry.", ""),
    "podnet_dns_forward_requests": ("Queries sent upstream.", "to"),
    "podnet_dns_forward_failures": ("Upstream timeouts and errors.", "to"),
    "podnet_dns_forward_healthcheck_failures": ("Health checks an upstream left unanswered.", "to"),
}
_GAUGES = {  # name -> (help, how the workers' values combine)
    "podnet_dns_cache_entries": ("Answers in the caches.", sum),
    "podnet_dns_zone_records": ("Names in the cluster zone.", max),
    "podnet_dns_forwarding_loop": ("1 when a forwarding loop was detected.", max),
}


def tally(resolver: Resolver) -> Tally:
    cache, forwarder = resolver.cache, resolver.forwarder
    requests: Counter[str] = Counter()
    responses: Counter[int] = Counter()
    hits = cache.hits
    for each in resolver.counters:
        requests.update(each.requests)
        responses.update(each.responses)
        hits += each.cache_hits
        requests["udp"] += sum(each.fast_rcodes)
        responses.update({rcode: n for rcode, n in enumerate(each.fast_rcodes) if n})
    values: Tally = {("podnet_dns_requests", transport): n for transport, n in requests.items()}
    values.update({("podnet_dns_responses", dns.rcode.to_text(rcode)): n for rcode, n in responses.items()})
    values.update({("podnet_dns_cache_hits", ""): hits, ("podnet_dns_cache_misses", ""): cache.misses,
                   ("podnet_dns_cache_prefetches", ""): cache.prefetches, ("podnet_dns_cache_entries", ""): len(cache),
                   ("podnet_dns_zone_records", ""): len(resolver.source.zone),
                   ("podnet_dns_forwarding_loop", ""): int(resolver.looping)})
    for upstream in forwarder.upstreams if forwarder else ():
        label = f"{upstream[0]}:{upstream[1]}"
        values["podnet_dns_forward_requests", label] = forwarder.sent[upstream]  # type: ignore[union-attr]
        values["podnet_dns_forward_failures", label] = forwarder.failed[upstream]  # type: ignore[union-attr]
        values["podnet_dns_forward_healthcheck_failures", label] = forwarder.failed_checks[upstream]  # type: ignore[union-attr]
    return values


def combined(tallies: list[Tally]) -> Tally:
    """Several workers' tallies as one: counters add up, gauges as _GAUGES says."""
    keys = {key for each in tallies for key in each}
    return {key: (_GAUGES[key[0]][1] if key[0] in _GAUGES else sum)(each.get(key, 0) for each in tallies)
            for key in keys}


class _TallyCollector(Collector):
    def __init__(self, values: Tally) -> None:
        self.values = values

    def collect(self) -> Iterator[Metric]:
        for name, (text, label) in _COUNTERS.items():
            family = CounterMetricFamily(name, text, labels=[label] if label else None)
            for (metric, value_label), value in sorted(self.values.items()):
                if metric == name:
                    family.add_metric([value_label] if label else [], value)
            yield family
        for name, (text, _) in _GAUGES.items():
            yield GaugeMetricFamily(name, text, self.values.get((name, ""), 0))


def exposition(values: Tally) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_TallyCollector(values))
    return generate_latest(registry)
