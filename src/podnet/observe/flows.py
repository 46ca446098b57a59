"""Flow records: what a node's logged packets mean, in the cluster's names.

A logged packet arrives with its rule's prefix, which says what happened (a
new connection let through, a policy's drop, a service's reject). A new
connection's conntrack entry, joined to it by the Correlator, says which
service address was asked, which endpoint it was translated to, and whether
the source was masqueraded; its end brings the connection's counters. The
Directory, made from the store, turns addresses into pods, services and
policies. The FlowLog keeps the last flows of a node and counts what it
missed: the kernel numbers every packet it logs, so a gap is a loss.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING

from podnet.store.snapshot import Snapshot
from podnet.kernel.conntrack import Event
from podnet.kernel.nflog import NUMBERS, Logged
from podnet.kernel.nftables.rules import split_target, target
from podnet.policy.evaluator import PolicyView

if TYPE_CHECKING:  # a type only: prometheus_client stays out of `podnet observe` and `policy`
    from podnet.observe.tally import Tally

FORWARDED, TRANSLATED, DROPPED, REJECTED, AUDIT = "FORWARDED", "TRANSLATED", "DROPPED", "REJECTED", "AUDIT"
VERDICTS = (FORWARDED, TRANSLATED, DROPPED, REJECTED, AUDIT)
FLOW_PREFIX = "flow"  # the prefix of the rule that logs each new connection
REASONS = {  # a logged prefix's first two words -> (verdict, reason)
    "reject no-endpoints": (REJECTED, "no endpoints"),
    "reject undefined-port": (REJECTED, "undefined port"),
    "drop no-local-endpoints": (DROPPED, "no local endpoints"),
}


@dataclass(frozen=True)
class Flow:
    time: float
    node: str
    verdict: str
    reason: str  # why it was dropped or rejected: "policy", "no endpoints", ...
    protocol: str
    source: str
    source_port: int | None
    destination: str  # as the source asked: a pod, or a service's address
    destination_port: int | None
    source_pod: str = ""  # namespace/name
    source_labels: Mapping[str, str] = field(default_factory=dict)
    destination_pod: str = ""
    destination_labels: Mapping[str, str] = field(default_factory=dict)
    service: str = ""  # namespace/name:port, when the destination is a service
    endpoint: str = ""  # ip:port it was translated to ([ip]:port for IPv6)
    endpoint_pod: str = ""
    source_node: str = ""  # when the source is a node's own address (its probes, say)
    destination_node: str = ""
    masqueraded_to: str = ""
    tcp_flags: str = ""
    policy: str = ""  # for policy drops: the policies that isolate the pod, and the direction
    ended: float | None = None  # when its conntrack entry went: then its counters, both ways
    bytes: int | None = None
    packets: int | None = None

    @property
    def source_namespace(self) -> str:
        return self.source_pod.split("/")[0] if self.source_pod else ""

    @property
    def destination_namespace(self) -> str:
        pod = self.endpoint_pod or self.destination_pod
        return pod.split("/")[0] if pod else ""

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "source_labels": dict(self.source_labels),
                "destination_labels": dict(self.destination_labels)}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Flow:
        return cls(**{key: value for key, value in data.items() if key in cls.__dataclass_fields__})  # type: ignore[arg-type]


class Directory:
    """Addresses as the store names them, in every family: pods, services and their
    ports, nodes."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.view = PolicyView(snapshot.pods, snapshot.namespaces, snapshot.policies, snapshot.nodes,
                               snapshot.cluster_policies)
        self.pods = {ip: p for p in self.view.pods for ip in p.pod_ips}
        self.services: dict[tuple[str, str, int], str] = {}  # (address, protocol, port) -> ns/name:port
        self.node_ports: dict[tuple[str, int], str] = {}
        for service in snapshot.services:
            for port in service.ports:
                name = f"{service.metadata.key}:{port.name or port.port}"
                for address in (*service.cluster_ips, *service.external_ips, *service.load_balancer_ips):
                    if address and address != "None":
                        self.services[(address, port.protocol, port.port)] = name
                if port.node_port:
                    self.node_ports[(port.protocol, port.node_port)] = name
        self.node_addresses = dict(self.view.node_addresses)  # address -> node: its own, and its pod bridges', every family

    def pod(self, address: str) -> tuple[str, Mapping[str, str]]:
        pod = self.pods.get(address)
        return (pod.metadata.key, pod.metadata.labels) if pod else ("", {})

    def service(self, address: str, protocol: str, port: int | None) -> str:
        if port is None:
            return ""
        found = self.services.get((address, protocol, port))
        if found is None and address in self.node_addresses:
            found = self.node_ports.get((protocol, port))
        return found or ""

    def isolating(self, address: str, direction: str) -> str:
        """The policies that isolate the pod at `address` for `direction`."""
        pod = self.pods.get(address)
        found = self.view.selecting(pod, direction.capitalize()) if pod is not None else []
        return ", ".join(p.metadata.key for p in found)


def flow_of(logged: Logged, node: str, directory: Directory, entry: Event | None = None) -> Flow:
    """What one logged packet means; its conntrack entry (for a new connection)
    tells the connection as it was opened, whatever NAT did to the packet since."""
    words = logged.prefix.split(" ")
    verdict, reason, policy = FORWARDED, "", ""
    source, source_port = logged.source, logged.source_port
    destination, destination_port = logged.destination, logged.port
    endpoint = masqueraded = ""
    if entry is not None:
        original, reply = entry.original, entry.reply
        source, source_port = original.source, original.source_port
        destination, destination_port = original.destination, original.destination_port
        if (reply.source, reply.source_port) != (destination, destination_port):
            endpoint = target(reply.source, reply.source_port) if reply.source_port else reply.source
        if reply.destination != source:
            masqueraded = reply.destination
    if words[0] == FLOW_PREFIX:
        verdict = TRANSLATED if endpoint or masqueraded else FORWARDED
    elif " ".join(words[:2]) in REASONS:
        verdict, reason = REASONS[" ".join(words[:2])]
    elif words[0] in ("drop", "audit"):
        verdict, reason = (DROPPED, "policy") if words[0] == "drop" else (AUDIT, "policy (audit mode)")
        direction = words[1] if len(words) > 1 else "ingress"
        isolated = logged.destination if direction == "ingress" else logged.source  # as the policy saw it: after DNAT
        policy = f"{' '.join(words[2:]) or directory.isolating(isolated, direction) or '?'} ({direction})"
    source_pod, source_labels = directory.pod(source)
    destination_pod, destination_labels = directory.pod(destination)
    endpoint_address = endpoint_address_of(endpoint)
    return Flow(logged.at, node, verdict, reason, logged.protocol, source, source_port, destination,
                destination_port, source_pod, source_labels, destination_pod, destination_labels,
                directory.service(destination, logged.protocol, destination_port), endpoint,
                directory.pod(endpoint_address)[0] if endpoint_address else "",
                directory.node_addresses.get(source, ""), directory.node_addresses.get(destination, ""),
                masqueraded, logged.tcp_flags, policy)


def endpoint_address_of(endpoint: str) -> str:
    """The address of a flow's endpoint (`10.244.1.3:8080`, `[fd00::3]:8080`, or an address alone)."""
    return split_target(endpoint)[0] if endpoint else ""


class Correlator:
    """Joins each logged new connection with its conntrack entry. The packet is
    logged as it leaves (NAT done), so it travels the way of the entry's reply
    tuple inverted; the entry's event comes a moment later, when the kernel
    confirms it. Packets and entries of one tuple pair up in order (a busy
    client reuses its ports).

    An entry destroyed before its making was reported comes as one destroy
    event, and claims its packet all the same.

    A packet that no entry claims within `wait` seconds is recorded without one
    (its event was lost, or the connection died unconfirmed), unless it came
    with another first packet of its tuple that an entry claimed: two datagrams
    that raced to open one connection (as glibc's A and AAAA queries do) give
    the kernel two first packets and one entry. That one is counted as merged."""

    def __init__(self, wait: float = 0.25, together: float = 0.05) -> None:
        self.wait = wait
        self.together = together  # packets of one tuple read this close came in one burst
        self.merged = 0
        self._packets: dict[tuple[object, ...], deque[tuple[float, int | None, Logged]]] = {}
        self._entries: dict[tuple[object, ...], deque[tuple[float, Event]]] = {}
        self._claimed: dict[tuple[object, ...], float] = {}  # tuple -> when its last claimed packet was read
        self._opened: dict[int, float] = {}  # ids of the entries made and not yet destroyed
        self._ready: list[tuple[int | None, Logged, Event | None]] = []

    def packet(self, logged: Logged, now: float) -> None:
        if not logged.prefix.startswith(FLOW_PREFIX):
            self._ready.append((logged.sequence, logged, None))
            return
        key = (NUMBERS.get(logged.protocol), logged.source, logged.source_port, logged.destination, logged.port)
        entries = self._entries.get(key)
        if entries:
            self._claim(key, now, logged.sequence, logged, entries.popleft()[1])
        else:
            self._packets.setdefault(key, deque()).append((now, logged.sequence, logged))

    def entry(self, event: Event, now: float) -> None:
        key = event.reply.inverted_key()
        if event.kind != "new":
            if self._opened.pop(event.id, None) is not None or not self._packets.get(key):
                return
            # an entry that ended before its making was told (the kernel sends one event for both): it
            # still claims its packet
        else:
            self._opened[event.id] = now
        packets = self._packets.get(key)
        if packets:
            read, sequence, logged = packets.popleft()
            self._claim(key, read, sequence, logged, event)
        else:
            self._entries.setdefault(key, deque()).append((now, event))

    def _claim(self, key: tuple[object, ...], read: float, sequence: int | None, logged: Logged, event: Event) -> None:
        self._ready.append((sequence, logged, event))
        self._claimed[key] = read

    def ready(self, now: float) -> list[tuple[int | None, Logged, Event | None]]:
        """What can be recorded now, in the kernel's order."""
        for key, packets in list(self._packets.items()):
            while packets and now - packets[0][0] > self.wait:
                read, sequence, logged = packets.popleft()
                if abs(read - self._claimed.get(key, -1e9)) <= self.together:
                    self.merged += 1
                else:
                    self._ready.append((sequence, logged, None))
            if not packets:
                del self._packets[key]
        for key, entries in list(self._entries.items()):
            while entries and now - entries[0][0] > 10 * self.wait:  # an entry no logged packet claimed
                entries.popleft()
            if not entries:
                del self._entries[key]
        for key, read in list(self._claimed.items()):
            if now - read > 2 * self.wait:
                del self._claimed[key]
        found = sorted(self._ready, key=lambda item: item[0] if item[0] is not None else -1)
        self._ready = []
        return found


class FlowLog:
    """A node's last `capacity` flows, numbered, with what was missed counted."""

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._flows: deque[tuple[int, Flow]] = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self.recorded = 0  # flows recorded since the start (their numbers run 1..recorded)
        self.lost = 0  # logged by the kernel, never read: its numbering has a gap where they were
        self.overruns = 0  # times the socket's buffer overflowed
        self.merged = 0  # logged twice for one connection, recorded once
        self.verdicts: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()
        self.services: Counter[str] = Counter()
        self._expected: int | None = None  # the kernel's next number
        self.started = time.time()

    def numbered(self, sequence: int | None) -> None:
        """The kernel's number of the next logged packet, in the order it sent them:
        a gap is packets it logged that never reached us."""
        if sequence is None:
            return
        with self._lock:
            if self._expected is not None:
                self.lost += (sequence - self._expected) % (1 << 32)
            self._expected = (sequence + 1) % (1 << 32)

    def add(self, flow: Flow) -> int:
        """Records a flow; returns its number."""
        with self._lock:
            self.verdicts[flow.verdict] += 1
            if flow.reason:
                self.reasons[flow.reason] += 1
            if flow.service and flow.verdict == TRANSLATED:
                self.services[flow.service] += 1
            self.recorded += 1
            self._flows.append((self.recorded, flow))
            return self.recorded

    def since(self, number: int, limit: int | None = None) -> list[tuple[int, Flow]]:
        """The flows numbered after `number`, oldest first; with a limit, the newest of them."""
        with self._lock:
            found = [(n, f) for n, f in self._flows if n > number]
        return found[-limit:] if limit else found

    def ended(self, number: int, at: float, packets: int | None, octets: int | None) -> None:
        """A recorded flow's connection ended: its counters, both ways."""
        with self._lock:
            first = self._flows[0][0] if self._flows else number + 1
            if first <= number <= self.recorded:
                index = number - first
                flow = self._flows[index][1]
                self._flows[index] = (number, replace(flow, ended=at, packets=packets, bytes=octets))

    def tally(self) -> Tally:
        """For the agent's /metrics."""
        with self._lock:
            values: Tally = {("podnet_flows_total", verdict): n for verdict, n in self.verdicts.items()}
            values.update({("podnet_drops_total", reason): n for reason, n in self.reasons.items()})
            values.update({("podnet_service_connections_total", service): n for service, n in self.services.items()})
            values[("podnet_flows_lost_total", "")] = self.lost
            return values

    @property
    def evicted(self) -> int:
        """Recorded, then pushed out of the ring by newer ones."""
        return max(0, self.recorded - len(self._flows))
