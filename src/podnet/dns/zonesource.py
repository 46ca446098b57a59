"""The cluster zone, kept in step with the store.

It is rebuilt when the store's revision moves (checked every 100 ms), so a new
Service resolves within a second.
"""

from __future__ import annotations

import logging
import threading

from podnet.dns.config import DnsConfig
from podnet.dns.zone import Zone, build_zone
from podnet.model.endpointslice import EndpointSlice
from podnet.model.pod import Pod
from podnet.model.service import Service
from podnet.store import resources
from podnet.store.base import Compacted, Store
from podnet.store.resources import REGISTRY

log = logging.getLogger("podnet.dns")
ZONE_KINDS = tuple(resources.prefix(kind) for kind in ("Service", "EndpointSlice", "Pod"))


class ZoneFromStore:
    """The zone, kept in step with the store by a watcher thread (or, without a
    store, the hosts entries alone)."""

    def __init__(self, store: Store | None, config: DnsConfig, hosts: list[tuple[str, str]] | None = None) -> None:
        self.store, self.config, self.hosts = store, config, hosts or []
        self.revision = -1
        self.zone = Zone(config.domain, config.ttl, config.pods)
        self.refresh()

    def refresh(self) -> None:
        revision = self.store.revision() if self.store else 0
        if revision == self.revision or not self._zone_changed_since(self.revision):
            self.revision = revision
            return
        services, slices, pods = [], [], []
        if self.store is not None:
            services = resources.list_kind(self.store, Service)[0]
            slices = resources.list_kind(self.store, EndpointSlice)[0]
            pods = resources.list_kind(self.store, Pod)[0]
        self.zone = build_zone(services, slices, pods, self.config.domain, self.config.ttl, self.hosts, self.config.pods)
        self.revision = revision

    def _zone_changed_since(self, revision: int) -> bool:
        """Whether a Service, slice or Pod changed (a node's heartbeat does not
        make a rebuild of a zone of 10 000 services)."""
        if self.store is None or revision < 0:
            return True
        try:
            return any(e.key.startswith(ZONE_KINDS) for e in self.store.events_since(REGISTRY, revision))
        except Compacted:
            return True

    def watch(self, stop: threading.Event) -> None:
        while self.store is not None and not stop.wait(0.1):
            try:
                self.refresh()
            except Exception:  # a bad object must not stop the answers for the others
                log.exception("zone refresh failed")
