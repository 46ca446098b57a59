"""The node agent's flow recorder: a table that logs each new connection's first
packet, and two threads that read the node's NFLOG group (those packets, the
policy's drops, the services' refusals) and its conntrack events (which
service and endpoint, masquerade, and the counters at the end) into the
node's FlowLog: one empties the sockets, the other makes flows of what it read.

Logging a new connection costs one conntrack-state test per packet and one
message per connection; the kernel sends the messages in batches.

The table is one per IP family the node has (`ip podnet-flows`, `ip6
podnet-flows`), as the egress and proxy tables are, rather than one inet table:
an IPv4 packet never meets a rule of IPv6's (in an inet table `ip saddr` would
silently match IPv4 only, so each chain would need a rule per family anyway,
and every packet would walk both), the IPv4 table stays exactly what an
IPv4-only node has, and each table's hook is where hooks.py puts the name.
NFLOG groups and conntrack events carry both families: one reader of each
serves both tables.

A receiving thread that dies (a socket error, a bug) is started again at the
next pass, counted in the agent's metrics; until then, and while starting
fails, the node's /flows says it is not recording, and `podnet observe` shows it.
"""

from __future__ import annotations

import logging
import select
import threading
import time
from queue import Empty, SimpleQueue

from podnet.store.snapshot import Snapshot
from podnet.kernel.conntrack import EventReader, open_events
from podnet.kernel.nflog import OBSERVED_GROUP, NflogReader, open_reader
from podnet.kernel.nftables import Table, Transaction, base_chain, hooks
from podnet.kernel.nftables.rules import CT_STATE, CT_STATUS, IP6_SADDR, IP_SADDR, Log, Masked, differs, match, rule
from podnet.kernel.node import NodeKernel
from podnet.model.families import IPV4, IPV6, families_of
from podnet.observe.flows import FLOW_PREFIX, Correlator, Directory, FlowLog, flow_of
from podnet.observe.tally import Tally

log = logging.getLogger("podnet.observe")
TABLES = {IPV4: Table("ip", hooks.FLOWS), IPV6: Table("ip6", hooks.FLOWS)}
TABLE = TABLES[IPV4]
LOOPBACK = {IPV4: (IP_SADDR, "127.0.0.0/8"), IPV6: (IP6_SADDR, "::1")}  # a node's talk to itself is no flow
BATCH, BATCH_MS = 64, 20  # the kernel sends logged packets 64 at a time, or what came within 20 ms
CONFIRMED, SEEN_REPLY = 0x8, 0x2  # IPS_*: in the table (its first packet went past every hook); answered
ACCOUNTING = "net.netfilter.nf_conntrack_acct"  # counters in each entry, for a flow's bytes and packets
Inbox = SimpleQueue[tuple[bool, bytes, float]]  # (from NFLOG, not conntrack; a datagram; when it was read)


def flow_table(family: str = IPV4) -> Transaction:
    """Each new connection's first packet of the family to NFLOG, once: where it
    leaves the node (postrouting) or where it reaches the node itself (input),
    loopback aside.
    Once: a packet whose entry is confirmed (the first packet's last hook
    confirms it) and never answered is a SYN sent again, or the second pass of
    a packet DNATed to a pod on its own bridge (routed, then bridged). A client
    that reuses a port reopens an answered entry: that is a new connection."""
    table = TABLES[family]
    source, loopback = LOOPBACK[family]
    tx = Transaction(table).replace().add(base_chain(table, "postrouting"), base_chain(table, "input"))
    for chain in ("postrouting", "input"):
        tx.add(rule(chain, match(CT_STATE, "new"), differs(Masked(CT_STATUS, CONFIRMED | SEEN_REPLY), CONFIRMED),
                    differs(source, loopback), Log(OBSERVED_GROUP, FLOW_PREFIX)))
    return tx


def node_families(snapshot: Snapshot, node_name: str) -> tuple[str, ...]:
    """The families of the node's pod subnets and addresses (IPv4 until the store says)."""
    node = next((n for n in snapshot.nodes if n.metadata.name == node_name), None)
    found = families_of((*node.pod_cidrs, *node.internal_ips)) if node is not None else ()
    return tuple(family for family in (IPV4, IPV6) if family in found) or (IPV4,)


class FlowRecorder:
    """The controller that keeps the flow table written and the node's flows read."""

    name = "flows"

    def __init__(self, kernel: NodeKernel, node_name: str, namespace: str, capacity: int = 10_000,
                 resync_seconds: float = 10.0) -> None:
        self.kernel = kernel
        self.node_name = node_name
        self.namespace = namespace
        self.resync_seconds = resync_seconds
        self.flows = FlowLog(capacity)
        self._directory: Directory | None = None
        self._revision = -1
        self._written_at = 0.0
        self._families: tuple[str, ...] = ()  # those whose table was written
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._worker: threading.Thread | None = None
        self.restarts = 0
        self.failure: str | None = None  # why it is not recording, if it is not

    def sync(self, snapshot: Snapshot) -> None:
        if snapshot.revision != self._revision:  # names change with the store only
            self._directory, self._revision = Directory(snapshot), snapshot.revision
        families = node_families(snapshot, self.node_name)
        if time.monotonic() - self._written_at > self.resync_seconds or families != self._families:
            self.kernel.ensure_sysctl(ACCOUNTING, "1")
            for family in families:
                self.kernel.nft.run(flow_table(family))
            self._written_at, self._families = time.monotonic(), families
        if self._thread is not None and not self._thread.is_alive():
            self._reap()
        if self._thread is None:
            self._start()

    @property
    def recording(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _start(self) -> None:
        try:
            packets = open_reader(self.namespace, OBSERVED_GROUP, numbered=True, batch=BATCH, batch_ms=BATCH_MS)
            try:
                entries = open_events(self.namespace)
            except BaseException:
                packets.close()
                raise
        except Exception as err:
            self.failure = f"its sockets would not open: {err}"
            raise
        inbox: Inbox = SimpleQueue()
        self._thread = threading.Thread(target=self._receive, args=(packets, entries, inbox), name="flows-in",
                                        daemon=True)
        self._worker = threading.Thread(target=self._process, args=(inbox,), name="flows", daemon=True)
        self.failure = None
        self._thread.start()
        self._worker.start()

    def _reap(self) -> None:
        """The receiving thread died: its worker ends with it, and the next start counts as a restart."""
        if self._worker is not None:
            self._worker.join(timeout=2)
        self._thread = self._worker = None
        self.restarts += 1
        self.failure = self.failure or "its receiving thread ended"
        log.warning("the flow recorder stopped (%s); starting it again", self.failure)

    def tally(self) -> Tally:
        """For the agent's /metrics: the flows', and the recorder's restarts."""
        return {**self.flows.tally(), ("podnet_flow_recorder_restarts_total", ""): self.restarts}

    def _receive(self, packets: NflogReader, entries: EventReader, inbox: Inbox) -> None:
        """Empties the two sockets as fast as the kernel fills them, and no more:
        their buffers are the one place a flow can be lost (the parsing, which is
        slower, works from the inbox)."""
        try:
            while not self._stop.is_set():
                for source in select.select([packets, entries], [], [], 0.1)[0]:
                    data = source.receive(0)
                    if data:
                        inbox.put((source is packets, data, time.time()))
                self.flows.overruns = packets.overruns + entries.overruns
        except Exception as err:  # the agent goes on without flows until the next pass starts them again
            self.failure = f"{type(err).__name__}: {err}"
            log.exception("the flow recorder stopped")
        finally:
            packets.close()
            entries.close()
            inbox.put((False, b"", 0.0))  # the end

    def _process(self, inbox: Inbox) -> None:
        correlator = Correlator()
        numbers: dict[int, int] = {}  # conntrack id -> the number of its flow, until the entry goes
        swept = 0.0
        while True:
            try:
                from_nflog, data, at = inbox.get(timeout=0.1)
            except Empty:
                from_nflog, data, at = False, None, 0.0
            if data == b"":  # the receiving thread ended
                return
            try:
                now = time.monotonic()
                if data:
                    self._read(correlator, numbers, from_nflog, data, at, now)
                if now - swept >= 0.02:  # joining and naming, every 20 ms
                    swept = now
                    self._record(correlator, numbers, now)
            except Exception:  # one datagram the recorder cannot read must not stop it
                log.exception("the flow recorder could not read a message")

    def _read(self, correlator: Correlator, numbers: dict[int, int], from_nflog: bool, data: bytes, at: float,
              now: float) -> None:
        if from_nflog:
            for packet in NflogReader.parse(data, at):
                self.flows.numbered(packet.sequence)
                correlator.packet(packet, now)
            return
        for event in EventReader.parse(data):
            correlator.entry(event, now)
            if event.kind == "destroy" and (number := numbers.pop(event.id, None)) is not None:
                self.flows.ended(number, time.time(), event.packets, event.bytes)

    def _record(self, correlator: Correlator, numbers: dict[int, int], now: float) -> None:
        directory = self._directory
        ready = correlator.ready(now)
        if ready and directory is not None:
            for _, packet, entry in ready:
                number = self.flows.add(flow_of(packet, self.node_name, directory, entry))
                if entry is not None and entry.kind == "destroy":  # over before it was reported made
                    self.flows.ended(number, time.time(), entry.packets, entry.bytes)
                elif entry is not None:
                    numbers[entry.id] = number
            if len(numbers) > 4 * self.flows.capacity:  # entries whose end was never seen
                for stale in list(numbers)[:len(numbers) - self.flows.capacity]:
                    del numbers[stale]
        self.flows.merged = correlator.merged

    def stop(self) -> None:
        self._stop.set()
        for thread in (self._thread, self._worker):
            if thread is not None:
                thread.join(timeout=2)
