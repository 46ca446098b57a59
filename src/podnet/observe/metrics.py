"""The node agent's Prometheus metrics, served on its /metrics: how long each
controller's pass takes, the network programming latency (an EndpointSlice's
change until this node's service table has it, as kube-proxy measures it), CNI
calls by command and result, flows by verdict, drops by reason, connections
per service, and how full conntrack's table is.

One AgentMetrics per agent process (a process is one node's agent), kept as
plain numbers by podnet.observe.tally until Prometheus asks.
"""

from __future__ import annotations

from collections.abc import Callable

from podnet.kernel import netns
from podnet.kernel.conntrack import table_fill
from podnet.observe.tally import Family, Tally, Timings, exposition

FAMILIES = (
    Family("podnet_sync_duration_seconds", "One controller's pass over a snapshot of the store.", "histogram",
           ("controller",)),
    Family("podnet_network_programming_duration_seconds",
           "From an EndpointSlice's change (its last-change-trigger-time) until this node's service table has it.",
           "histogram"),
    Family("podnet_cni_operation_duration_seconds", "CNI calls served for this node's plugins.", "histogram",
           ("command", "result")),
    Family("podnet_flows_total", "Flows recorded, by verdict.", labels=("verdict",)),
    Family("podnet_drops_total", "Packets dropped or rejected, by reason.", labels=("reason",)),
    Family("podnet_flows_lost_total", "Packets the kernel logged that the flow recorder never read."),
    Family("podnet_flow_recorder_restarts_total", "Times the flow recorder's reading thread died and was started again."),
    Family("podnet_service_connections_total", "New connections through each service port.", labels=("service",)),
    Family("podnet_conntrack_entries", "Connections tracked on the node.", "gauge"),
    Family("podnet_conntrack_entries_limit", "The most connections the node's conntrack table holds.", "gauge"),
)


class AgentMetrics:
    def __init__(self) -> None:
        self.timings = {family.name: Timings() for family in FAMILIES if family.kind == "histogram"}
        self._tallies: list[Callable[[], Tally]] = []  # the flow recorder's, conntrack's: read when scraped

    def read_when_scraped(self, *tallies: Callable[[], Tally]) -> None:
        self._tallies += tallies

    def sync_took(self, controller: str, seconds: float) -> None:
        self.timings["podnet_sync_duration_seconds"].observe(controller, seconds)

    def programmed(self, seconds: float) -> None:
        self.timings["podnet_network_programming_duration_seconds"].observe("", seconds)

    def cni_took(self, command: str, result: str, seconds: float) -> None:
        self.timings["podnet_cni_operation_duration_seconds"].observe(f"{command}|{result}", seconds)

    def exposition(self) -> bytes:
        values: Tally = {}
        for tally in self._tallies:
            values.update(tally())
        return exposition(FAMILIES, values, self.timings)


AGENT = AgentMetrics()


def conntrack_tally(namespace: str) -> Tally:
    """How full the node's conntrack table is, asked when scraped."""
    entries, limit = netns.run_in(namespace, table_fill)
    return {("podnet_conntrack_entries", ""): entries, ("podnet_conntrack_entries_limit", ""): limit}
