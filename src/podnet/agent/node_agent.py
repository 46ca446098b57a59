"""The node agent's loop: run its controllers on every store change, and at least
every second, so that drift (a route deleted by hand) is repaired as well as changes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from podnet.errors import PodnetError
from podnet.observe.metrics import AGENT
from podnet.store.base import Store
from podnet.store.follow import follow
from podnet.store.snapshot import Controller, Snapshot

log = logging.getLogger("podnet.agent")


class NodeAgent:
    def __init__(self, store: Store, node_name: str, controllers: Sequence[Controller],
                 resync_seconds: float = 1.0) -> None:
        self.store = store
        self.node_name = node_name
        self.controllers = list(controllers)
        self.resync_seconds = resync_seconds

    def reconcile(self) -> int:
        """One pass of every controller over one snapshot; returns its revision.
        A controller that fails is logged and retried next pass, and does not
        keep the others from running."""
        snapshot = Snapshot.read(self.store)
        for controller in self.controllers:
            started = time.perf_counter()
            try:
                controller.sync(snapshot)
            except PodnetError as err:  # the message says it all: the kernel or the store refused
                log.error("%s: reconcile failed: %s", controller.name, err)
            except Exception:  # a bug in one controller must not stop the others
                log.exception("%s: reconcile failed", controller.name)
            AGENT.sync_took(controller.name, time.perf_counter() - started)
        return snapshot.revision

    def run(self, stop: threading.Event, poll: float = 0.05) -> None:
        follow(self.store, self.reconcile, stop, log, self.resync_seconds, poll,
               started=f"agent for node {self.node_name} is running")
