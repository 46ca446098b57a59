"""Keeping a node's policy table in step with the store: render it, and write it
whole when it changed (or, to repair drift, when it has not been written for a
while). Without a policy isolating any of the node's pods there is no table,
so a cluster without policies pays nothing per packet.

The first write also removes the `ip` table that held IPv4 policies before
dual stack (policy/ruleset.py keeps both families in one `inet` table), so an
upgraded agent leaves no stale rules behind."""

from __future__ import annotations

import logging
import threading
import time

from podnet.store.snapshot import Snapshot
from podnet.kernel.nftables import Transaction
from podnet.kernel.node import NodeKernel
from podnet.model.pod import Pod
from podnet.policy.evaluator import PolicyView
from podnet.policy.ruleset import LEGACY_TABLE, TABLE, render

log = logging.getLogger("podnet.policy")
# pods of one node talk across its bridge: the policy hooks see that traffic only with these, per family
BRIDGED_TRAFFIC = "net.bridge.bridge-nf-call-iptables"
BRIDGED_TRAFFIC_V6 = "net.bridge.bridge-nf-call-ip6tables"


class PolicyEnforcer:
    name = "policy"

    def __init__(self, kernel: NodeKernel, node_name: str, resync_seconds: float = 10.0) -> None:
        self.kernel = kernel
        self.node_name = node_name
        self.resync_seconds = resync_seconds
        self._applied: Transaction | None = None
        self._applied_at = 0.0
        self._legacy_removed = False
        self._bridge_checked = False
        self._snapshot: Snapshot | None = None
        self._admitted: dict[str, Pod] = {}  # new pods by key, until the store shows their address
        self._inputs: tuple[object, ...] | None = None  # what the table was last rendered from
        self._lock = threading.Lock()  # the agent's loop syncs; the kubelet's workers admit

    def sync(self, snapshot: Snapshot) -> str:
        """"table" when the table was written, "removed", or "none". The table is
        rendered again only when what it is made from changed (a thousand policies
        take a tenth of a second), and written again at least every resync period."""
        with self._lock:
            self._snapshot = snapshot
            inputs = (snapshot.pods, snapshot.namespaces, snapshot.policies, snapshot.nodes,
                      snapshot.cluster_policies, dict(self._admitted))
            stale = time.monotonic() - self._applied_at > self.resync_seconds
            if inputs == self._inputs and not stale:
                return "none"
            self._inputs = inputs
            return self._write(render(self._view(snapshot), self.node_name))

    def admit(self, pod: Pod) -> None:
        """A new pod's address, between its CNI ADD and its start: when a policy
        selects it, it is isolated from its first packet (rules that allow it
        follow with the store, within the programming latency)."""
        with self._lock:
            self._admitted[pod.metadata.key] = pod
            self._inputs = None
            if self._snapshot is not None:
                self._write(render(self._view(self._snapshot), self.node_name))

    def _view(self, snapshot: Snapshot) -> PolicyView:
        """The snapshot's pods, and those admitted whose address the store does not show yet."""
        pods = {p.metadata.key: p for p in snapshot.pods}
        for key, admitted in list(self._admitted.items()):
            stored = pods.get(key)
            if stored is None or stored.terminating or stored.pod_ip:  # gone, or the store has caught up
                del self._admitted[key]
            else:
                pods[key] = admitted
        return PolicyView(pods.values(), snapshot.namespaces, snapshot.policies, snapshot.nodes,
                          snapshot.cluster_policies)

    def _write(self, wanted: Transaction | None) -> str:
        stale = time.monotonic() - self._applied_at > self.resync_seconds
        if wanted == self._applied and not stale:
            return "none"
        if not self._legacy_removed:
            self.kernel.nft.run(Transaction(LEGACY_TABLE).destroy(LEGACY_TABLE))
            self._legacy_removed = True
        if wanted is None:
            self.kernel.nft.run(Transaction(TABLE).destroy(TABLE))
            outcome = "removed"
        else:
            if not self._bridge_checked:  # a new namespace's default; without it, policies hold only across nodes
                self.kernel.ensure_sysctl(BRIDGED_TRAFFIC, "1")
                self.kernel.ensure_sysctl(BRIDGED_TRAFFIC_V6, "1")
                self._bridge_checked = True
            self.kernel.nft.run(wanted)
            outcome = "table"
        if wanted != self._applied:
            log.info("policy table: %s", "none needed" if wanted is None else f"{len(wanted)} objects")
        self._applied, self._applied_at = wanted, time.monotonic()
        return outcome
