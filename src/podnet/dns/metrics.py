"""Prometheus metrics of the DNS server, named after CoreDNS's.

The answering path only bumps plain integers; they become metric families when
Prometheus scrapes (a custom collector), so a query pays no lock for its counting.
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
    from podnet.dns.server import Resolver


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


class _DnsCollector(Collector):
    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver

    def collect(self) -> Iterator[Metric]:
        cache, forwarder = self.resolver.cache, self.resolver.forwarder
        counts = Counts()
        for each in self.resolver.counters:
            counts.requests.update(each.requests)
            counts.responses.update(each.responses)
            counts.cache_hits += each.cache_hits
            counts.requests["udp"] += sum(each.fast_rcodes)
            counts.responses.update({rcode: n for rcode, n in enumerate(each.fast_rcodes) if n})
        requests = CounterMetricFamily("podnet_dns_requests", "Queries received.", labels=["proto"])
        for transport, number in sorted(counts.requests.items()):
            requests.add_metric([transport], number)
        responses = CounterMetricFamily("podnet_dns_responses", "Replies sent, by rcode.", labels=["rcode"])
        for rcode, number in sorted(counts.responses.items()):
            responses.add_metric([dns.rcode.to_text(rcode)], number)
        yield requests
        yield responses
        yield CounterMetricFamily("podnet_dns_cache_hits", "Forwarded names answered from the cache.",
                                  cache.hits + counts.cache_hits)
        yield CounterMetricFamily("podnet_dns_cache_misses", "Forwarded names not in the cache.", cache.misses)
        yield CounterMetricFamily("podnet_dns_cache_prefetches", "Answers refreshed before expiry.", cache.prefetches)
        yield GaugeMetricFamily("podnet_dns_cache_entries", "Answers in the cache.", len(cache))
        forwarded = CounterMetricFamily("podnet_dns_forward_requests", "Queries sent upstream.", labels=["to"])
        failed = CounterMetricFamily("podnet_dns_forward_failures", "Upstream timeouts and errors.", labels=["to"])
        for upstream in forwarder.upstreams if forwarder else ():
            label = f"{upstream[0]}:{upstream[1]}"
            forwarded.add_metric([label], forwarder.sent[upstream])  # type: ignore[union-attr]
            failed.add_metric([label], forwarder.failed[upstream])  # type: ignore[union-attr]
        yield forwarded
        yield failed
        yield GaugeMetricFamily("podnet_dns_zone_records", "Names in the cluster zone.", len(self.resolver.source.zone))
        yield GaugeMetricFamily("podnet_dns_forwarding_loop", "1 when a forwarding loop was detected.",
                                int(self.resolver.looping))


def exposition(resolver: Resolver) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_DnsCollector(resolver))
    return generate_latest(registry)
