"""Prometheus metrics of the DNS server, named after CoreDNS's.

The answering path only bumps plain integers; they become metric families when
Prometheus scrapes (podnet.observe.tally, which the node agent's metrics use
too), so a query pays no lock for its counting.
With several workers, each publishes its tally and the first one's /metrics
adds them up (podnet.dns.workers).
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import dns.rcode

from podnet.observe.tally import Family, Tally
from podnet.observe.tally import combined as combine_tallies
from podnet.observe.tally import exposition as render

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


FAMILIES = (
    Family("podnet_dns_requests", "Queries received.", labels=("proto",)),
    Family("podnet_dns_responses", "Replies sent, by rcode.", labels=("rcode",)),
    Family("podnet_dns_cache_hits", "Forwarded names answered from the cache."),
    Family("podnet_dns_cache_misses", "Forwarded names not in the cache."),
    Family("podnet_dns_cache_prefetches", "Answers refreshed before expiry."),
    Family("podnet_dns_forward_requests", "Queries sent upstream.", labels=("to",)),
    Family("podnet_dns_forward_failures", "Upstream timeouts and errors.", labels=("to",)),
    Family("podnet_dns_forward_healthcheck_failures", "Health checks an upstream left unanswered.", labels=("to",)),
    Family("podnet_dns_cache_entries", "Answers in the caches.", "gauge", combine=sum),
    Family("podnet_dns_zone_records", "Names in the cluster zone.", "gauge", combine=max),
    Family("podnet_dns_forwarding_loop", "1 when a forwarding loop was detected.", "gauge", combine=max),
)


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
    """Several workers' tallies as one."""
    return combine_tallies(tallies, FAMILIES)


def exposition(values: Tally) -> bytes:
    return render(FAMILIES, values)
