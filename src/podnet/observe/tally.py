"""Metrics as plain numbers until Prometheus asks for them, shared by the DNS
server and the node agent.

The hot paths (a DNS answer, a CNI call, a controller's pass) only bump
integers or append to bucket counts; the numbers become metric families when
/metrics is scraped, through one custom prometheus-client collector. A Tally is
every counter's and gauge's value at one moment, flat, so the tallies of
several DNS workers add up.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

# (metric, label values) -> value; the label values of a family with several labels are joined by "|"
Tally = dict[tuple[str, str], float]
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class Family:
    name: str
    help: str
    kind: str = "counter"  # counter, gauge or histogram
    labels: tuple[str, ...] = ()
    combine: Callable[[Iterable[float]], float] = sum  # a gauge's value over several workers

    def values(self, label: str) -> list[str]:
        return label.split("|") if self.labels else []


class Timings:
    """Durations by label values, as a histogram's bucket counts."""

    def __init__(self, buckets: Sequence[float] = BUCKETS) -> None:
        self.buckets = tuple(buckets)
        self._counts: dict[str, list[int]] = {}
        self._sums: dict[str, float] = {}
        self._lock = threading.Lock()

    def observe(self, label: str, seconds: float) -> None:
        with self._lock:
            counts = self._counts.get(label)
            if counts is None:
                counts = self._counts[label] = [0] * (len(self.buckets) + 1)
                self._sums[label] = 0.0
            counts[bisect.bisect_left(self.buckets, seconds)] += 1
            self._sums[label] += seconds

    def items(self) -> list[tuple[str, list[tuple[str, float]], float]]:
        """(label, cumulative buckets as prometheus-client takes them, sum) of each label."""
        with self._lock:
            found = []
            for label, counts in sorted(self._counts.items()):
                running, buckets = 0, []
                for bound, count in zip((*map(str, self.buckets), "+Inf"), counts):
                    running += count
                    buckets.append((bound, float(running)))
                found.append((label, buckets, self._sums[label]))
            return found


def combined(tallies: list[Tally], families: Sequence[Family]) -> Tally:
    """Several workers' tallies as one: counters add up, gauges as their family says."""
    combine = {family.name: family.combine for family in families if family.kind == "gauge"}
    keys = {key for each in tallies for key in each}
    return {key: combine.get(key[0], sum)(each.get(key, 0) for each in tallies) for key in keys}


class _Collector(Collector):
    def __init__(self, families: Sequence[Family], values: Tally, timings: dict[str, Timings]) -> None:
        self.families, self.values, self.timings = families, values, timings

    def collect(self) -> Iterator[Metric]:
        for family in self.families:
            labels = list(family.labels)
            if family.kind == "histogram":
                histogram = HistogramMetricFamily(family.name, family.help, labels=labels)
                for label, buckets, total in self.timings[family.name].items() if family.name in self.timings else ():
                    histogram.add_metric(family.values(label), buckets, total)
                yield histogram
                continue
            kind = CounterMetricFamily if family.kind == "counter" else GaugeMetricFamily
            metric = kind(family.name, family.help, labels=labels)
            mine = sorted((label, value) for (name, label), value in self.values.items() if name == family.name)
            if not labels and not mine:
                mine = [("", 0.0)]
            for label, value in mine:
                metric.add_metric(family.values(label), value)
            yield metric


def exposition(families: Sequence[Family], values: Tally, timings: dict[str, Timings] | None = None) -> bytes:
    """The text Prometheus scrapes."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(families, values, timings or {}))
    return generate_latest(registry)
