"""Keeping a node's policy table in step with the store: render it, and write it
whole when it changed (or, to repair drift, when it has not been written for a
while). Without a policy isolating any of the node's pods there is no table,
so a cluster without policies pays nothing per packet."""

from __future__ import annotations

import logging
import time

from podnet.agent.controller import Snapshot
from podnet.kernel.nftables import Transaction
from podnet.kernel.node import NodeKernel
from podnet.policy.evaluator import PolicyView
from podnet.policy.ruleset import TABLE, render

log = logging.getLogger("podnet.policy")
BRIDGED_TRAFFIC = "net.bridge.bridge-nf-call-iptables"  # pods of one node talk across its bridge


class PolicyEnforcer:
    name = "policy"

    def __init__(self, kernel: NodeKernel, node_name: str, resync_seconds: float = 10.0) -> None:
        self.kernel = kernel
        self.node_name = node_name
        self.resync_seconds = resync_seconds
        self._applied: Transaction | None = None
        self._applied_at = 0.0
        self._bridge_checked = False

    def sync(self, snapshot: Snapshot) -> str:
        """"table" when the table was written, "removed", or "none"."""
        view = PolicyView(snapshot.pods, snapshot.namespaces, snapshot.policies, snapshot.nodes)
        wanted = render(view, self.node_name)
        stale = time.monotonic() - self._applied_at > self.resync_seconds
        if wanted == self._applied and not stale:
            return "none"
        if wanted is None:
            self.kernel.nft.run(Transaction(TABLE).destroy(TABLE))
            outcome = "removed"
        else:
            if not self._bridge_checked:  # the default in a new namespace, but a policy without it holds only across nodes
                self.kernel.ensure_sysctl(BRIDGED_TRAFFIC, "1")
                self._bridge_checked = True
            self.kernel.nft.run(wanted)
            outcome = "table"
        if wanted != self._applied:
            log.info("policy table: %s", "none needed" if wanted is None else f"{len(wanted)} objects")
        self._applied, self._applied_at = wanted, time.monotonic()
        return outcome
