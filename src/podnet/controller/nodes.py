"""The node lifecycle controller's decision, pure: whether a node is alive by
its Lease. A node whose heartbeat is older than the grace period is NotReady
(and its pods not ready); one never heard from gets the grace period from when
the controller first saw it."""

from __future__ import annotations

from podnet.model.lease import Lease


def alive(lease: Lease | None, now: float, grace: float, first_seen: float) -> bool:
    last = lease.renewed if lease is not None else first_seen
    return now - last <= grace
