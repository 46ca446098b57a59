"""The agent's heartbeat: its node's Lease renewed every interval, as kubelet
renews its own, and the agent's restart count published on its Node once."""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import replace

from podnet.api import writes
from podnet.errors import PodnetError
from podnet.model.lease import Lease
from podnet.model.node import AGENT_RESTARTS, Node
from podnet.store import resources
from podnet.store.base import Store

log = logging.getLogger("podnet.agent.heartbeat")

RESTARTS_ENV = "PODNET_RESTARTS"  # set by the lab's supervisor: how often it has restarted this process


def machine_capacity() -> dict[str, str]:
    """The machine's CPUs and memory, as kubelet reports a node's capacity."""
    capacity = {"cpu": str(os.cpu_count() or 1)}
    try:
        with open("/proc/meminfo") as meminfo:
            total = next(line for line in meminfo if line.startswith("MemTotal:"))
        capacity["memory"] = f"{int(total.split()[1])}Ki"
    except (OSError, StopIteration, ValueError, IndexError):
        pass
    return capacity


class Heartbeat:
    def __init__(self, store: Store, node_name: str, interval: float = 1.0, duration: int = 5) -> None:
        self.store, self.node_name, self.interval, self.duration = store, node_name, interval, duration

    def beat(self) -> None:
        resources.put(self.store, Lease.of_node(self.node_name, time.time(), self.duration))

    def publish_restarts(self, restarts: int) -> None:
        """Once, at start, as kubelet registers its node: the agent's restarts, and the machine's capacity."""
        def annotate(node: Node) -> Node:
            annotations = {**node.metadata.annotations, AGENT_RESTARTS: str(restarts)}
            return replace(node, metadata=replace(node.metadata, annotations=annotations), capacity=machine_capacity())

        writes.modify(self.store, Node, "", self.node_name, annotate)

    def run(self, stop: threading.Event) -> None:
        restarts = int(os.environ.get(RESTARTS_ENV, "0") or 0)
        published = False
        while True:
            try:
                self.beat()
                if not published:
                    self.publish_restarts(restarts)
                    published = True
            except writes.NotFound:
                pass  # the node is not in the store yet
            except PodnetError as err:
                log.error("heartbeat failed: %s", err)
            if stop.wait(self.interval):
                return

    def start(self, stop: threading.Event) -> threading.Thread:
        thread = threading.Thread(target=self.run, args=(stop,), name="heartbeat", daemon=True)
        thread.start()
        return thread
