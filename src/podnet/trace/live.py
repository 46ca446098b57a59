"""`podnet trace --live`: one real packet, marked for the kernel's trace on every
node it may cross, and what each node's chains report of it, set beside the
computed path.

Each node gets a table of the packet's family (`ip podnet-trace` or `ip6
podnet-trace`, ahead of every other chain) whose rules mark the packet: by its source address and port as sent, and, where the
computed path masquerades it, by the node addresses it may come from and the
destinations it may go to. The kernel clears the mark when a packet changes
namespace, so each node marks it again. The tables go when the trace is read.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from podnet.kernel.nftables import Table, Transaction, base_chain, hooks
from podnet.kernel.nftables.rules import (L4PROTO, TH_DPORT, TH_SPORT, AnonSet, SetTrace, daddr, match, rule, saddr,
                                          target)
from podnet.kernel.nftrace import TraceEvent, TraceReader, open_trace_reader, rule_texts, send_one
from podnet.kernel.node import NamespaceKernel
from podnet.model.families import IPV4, IPV6, family_of, of_family, version
from podnet.network.node import EGRESS_TABLE
from podnet.trace.path import NodePass, Trace

TABLES = {IPV4: Table("ip", hooks.TRACE), IPV6: Table("ip6", hooks.TRACE)}  # a packet is marked in its family
TABLE = TABLES[IPV4]
MODELLED = (hooks.PROXY, hooks.POLICY, EGRESS_TABLE.name)  # the tables the computed path walks (either family's)
ICMPV6 = "58"  # `meta l4proto` of ICMP over IPv6, by number as the netlink packer takes it
SETTLE = 0.3  # seconds to wait for the last node's report once the packet is sent


@dataclass(frozen=True)
class NodeReport:
    """What one node's chains reported of the packet (its first marked one)."""

    node: str
    events: tuple[TraceEvent, ...]
    texts: dict[tuple[str, str, int], str]  # (family, table, handle) -> the rule as nft lists it

    @property
    def verdict(self) -> str:
        """drop, reject or accept: the packet's fate on this node."""
        for event in self.events:
            if event.verdict == "drop":
                return "reject" if "reject" in self.text(event) else "drop"
        return "accept"

    @property
    def chains(self) -> list[str]:
        """`table/chain` of every rule that matched, in the tables the computed path walks."""
        return [f"{e.table}/{e.chain}" for e in self.events
                if e.kind == "rule" and e.handle is not None and e.table in MODELLED]

    def text(self, event: TraceEvent) -> str:
        if event.kind == "rule" and event.handle is not None:
            return self.texts.get((*event.where, event.handle), f"rule handle {event.handle}")
        return {"rule": "(end of chain)", "return": "(return)", "policy": "(the chain's policy)"}.get(event.kind, "")


@dataclass(frozen=True)
class LiveTrace:
    sent: str  # the packet, in words, and what came of sending it
    reports: tuple[NodeReport, ...]


def run_live(computed: Trace, node_namespaces: dict[str, str], source_namespace: str,
             node_addresses: set[str]) -> LiveTrace:
    """Send the computed trace's packet for real and read every node's trace of it."""
    protocol, port = computed.protocol, computed.port
    table = TABLES[family_of(computed.source.address)]
    source_port = random.randint(40000, 59999)
    marks = _marking(computed, source_port, node_addresses)
    readers: dict[str, TraceReader] = {}
    try:
        for node, namespace in node_namespaces.items():
            NamespaceKernel(namespace).nft.run(marks)
            readers[node] = open_trace_reader(namespace)
        outcome = send_one(source_namespace, computed.destination.address, port, protocol, source_port)
        events = {node: reader.read(SETTLE) for node, reader in readers.items()}
    finally:
        for reader in readers.values():
            reader.close()
        for namespace in node_namespaces.values():
            NamespaceKernel(namespace).nft.run(Transaction(table).destroy(table))
    reports = []
    for node, found in events.items():
        first = _first_packet(found)
        if first:
            tables = {e.where for e in first}
            reports.append(NodeReport(node, tuple(first), rule_texts(node_namespaces[node], tables)))
    source, destination = computed.source.address, computed.destination.address
    ends = f"{target(source, source_port)} -> {target(destination, port)}" if port else f"{source} -> {destination}"
    return LiveTrace(f"one {protocol.upper()} packet {ends}: {outcome}", tuple(reports))


def _first_packet(events: list[TraceEvent]) -> list[TraceEvent]:
    """The events of the first packet marked. A connection's later packets (the
    handshake's ACK) are marked too, and each begins at a marking rule, the first
    chain of all. (The kernel's trace id does not tell them apart: it changes
    between the hooks of one packet.)"""
    first: list[TraceEvent] = []
    for event in events:
        if first and event.table == TABLE.name and event.kind == "rule" and event.handle is not None:
            break
        first.append(event)
    return first


def _marking(computed: Trace, source_port: int, node_addresses: set[str]) -> Transaction:
    """The packet's family's marking table: its rules name addresses of that family only."""
    family = family_of(computed.source.address)
    table, number = TABLES[family], version(family)
    protocol = ICMPV6 if computed.protocol == "icmp" and family == IPV6 else computed.protocol
    node_addresses = set(of_family(node_addresses, family))
    ports = (match(TH_SPORT, str(source_port)),) if protocol in ("tcp", "udp") else ()
    tx = Transaction(table).replace().add(base_chain(table, "prerouting"), base_chain(table, "output"))
    for chain in ("prerouting", "output"):
        tx.add(rule(chain, match(saddr(number), computed.source.address), match(L4PROTO, protocol), *ports,
                    SetTrace()))
    if any(step.action == "masquerade" for step in computed.steps) and node_addresses:
        destinations = sorted({p.destination for p in computed.passes})
        to_ports = sorted({str(p.port) for p in computed.passes if p.port})
        dports = (match(TH_DPORT, AnonSet(tuple(to_ports))),) if protocol in ("tcp", "udp") and to_ports else ()
        tx.add(rule("prerouting", match(saddr(number), AnonSet(tuple(sorted(node_addresses)))),
                    match(daddr(number), AnonSet(tuple(destinations))), match(L4PROTO, protocol), *dports, SetTrace()))
    return tx


def agreement(computed: Trace, live: LiveTrace) -> tuple[int | None, list[str]]:
    """The computed path the live packet took (None if none), and how the two
    differ: node by node, the chains of the rules that matched, and the fate."""
    best: tuple[int, list[str]] | None = None
    for path in computed.paths():
        differences = _differences(computed.passes_of(path), live)
        if not differences:
            return path, []
        if best is None or len(differences) < len(best[1]):
            best = (path, differences)
    return None, best[1] if best else ["the computed trace has no path"]


def _differences(passes: list[NodePass], live: LiveTrace) -> list[str]:
    reported = {r.node: r for r in live.reports}
    found = []
    if [p.node for p in passes] != [n for n in (p.node for p in passes) if n in reported] or \
            set(reported) != {p.node for p in passes}:
        found.append(f"nodes: computed {', '.join(p.node for p in passes) or '-'}; "
                     f"the kernel reported from {', '.join(sorted(reported)) or 'none'}")
    for computed_pass in passes:
        report = reported.get(computed_pass.node)
        if report is None:
            continue
        if computed_pass.chains != report.chains:
            found.append(f"{computed_pass.node}: computed rules in {computed_pass.chains}; "
                         f"the kernel matched rules in {report.chains}")
        fate = "reject" if computed_pass.verdict.startswith("reject") else computed_pass.verdict
        if fate != report.verdict:
            found.append(f"{computed_pass.node}: computed {fate}; the kernel's verdict {report.verdict}")
    return found
