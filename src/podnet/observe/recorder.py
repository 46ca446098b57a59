"""The node agent's flow recorder: a table that logs each new connection's first
packet, and a thread that reads the node's NFLOG group (those packets, the
policy's drops, the services' refusals) and its conntrack events (which
service and endpoint, masquerade, and the counters at the end) into the
node's FlowLog.

Logging a new connection costs one conntrack-state test per packet and one
message per connection; the kernel sends the messages in batches.
"""

from __future__ import annotations

import logging
import select
import threading
import time

from podnet.agent.controller import Snapshot
from podnet.kernel.conntrack import EventReader, open_events
from podnet.kernel.nflog import OBSERVED_GROUP, NflogReader, open_reader
from podnet.kernel.nftables import Table, Transaction, base_chain, hooks
from podnet.kernel.nftables.rules import CT_STATE, IP_SADDR, META_MARK, Log, Masked, SetMark, differs, match, rule
from podnet.kernel.node import NodeKernel
from podnet.observe.flows import FLOW_PREFIX, Correlator, Directory, FlowLog, flow_of

log = logging.getLogger("podnet.observe")
TABLE = Table("ip", hooks.FLOWS)
BATCH, BATCH_MS = 64, 20  # the kernel sends logged packets 64 at a time, or what came within 20 ms
LOGGED_MARK = 0x8000  # beside the proxy's masquerade bit (0x4000)
ACCOUNTING = "net.netfilter.nf_conntrack_acct"  # counters in each entry, for a flow's bytes and packets


def flow_table() -> Transaction:
    """Each new connection's first packet to NFLOG, once: where it leaves the node
    (postrouting) or where it reaches the node itself (input), loopback aside. A packet DNATed to
    a pod on its own bridge passes postrouting twice (routed, then bridged), so
    the logged packet carries a mark bit that the second pass sees."""
    tx = Transaction(TABLE).replace().add(base_chain(TABLE, "postrouting"), base_chain(TABLE, "input"))
    for chain in ("postrouting", "input"):
        tx.add(rule(chain, match(CT_STATE, "new"), differs(IP_SADDR, "127.0.0.0/8"), match(Masked(META_MARK, LOGGED_MARK), 0),
                    Log(OBSERVED_GROUP, FLOW_PREFIX), SetMark("|", LOGGED_MARK)))
    return tx


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
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sync(self, snapshot: Snapshot) -> None:
        if snapshot.revision != self._revision:  # names change with the store only
            self._directory, self._revision = Directory(snapshot), snapshot.revision
        if time.monotonic() - self._written_at > self.resync_seconds:
            self.kernel.ensure_sysctl(ACCOUNTING, "1")
            self.kernel.nft.run(flow_table())
            self._written_at = time.monotonic()
        if self._thread is None:
            packets = open_reader(self.namespace, OBSERVED_GROUP, numbered=True, batch=BATCH, batch_ms=BATCH_MS)
            try:
                entries = open_events(self.namespace)
            except BaseException:
                packets.close()
                raise
            self._thread = threading.Thread(target=self._read, args=(packets, entries), name="flows", daemon=True)
            self._thread.start()

    def _read(self, packets: NflogReader, entries: EventReader) -> None:
        correlator = Correlator()
        numbers: dict[int, int] = {}  # conntrack id -> the number of its flow, until the entry goes
        try:
            while not self._stop.is_set():
                readable = select.select([packets, entries], [], [], 0.1)[0]
                now = time.monotonic()
                if packets in readable:
                    for logged in packets.read(0):
                        self.flows.numbered(logged.sequence)
                        correlator.packet(logged, now)
                if entries in readable:
                    for event in entries.read(0):
                        if event.kind == "new":
                            correlator.entry(event, now)
                        elif (number := numbers.pop(event.id, None)) is not None:
                            self.flows.ended(number, time.time(), event.packets, event.bytes)
                directory = self._directory
                ready = correlator.ready(now)
                if ready and directory is not None:
                    for _, logged, entry in ready:
                        number = self.flows.add(flow_of(logged, self.node_name, directory, entry))
                        if entry is not None:
                            numbers[entry.id] = number
                    if len(numbers) > 4 * self.flows.capacity:  # entries whose end was never seen
                        for stale in list(numbers)[:len(numbers) - self.flows.capacity]:
                            del numbers[stale]
                self.flows.overruns = packets.overruns + entries.overruns
                self.flows.merged = correlator.merged
        except Exception:  # the agent goes on without flows rather than stop
            log.exception("the flow recorder stopped")
        finally:
            packets.close()
            entries.close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
