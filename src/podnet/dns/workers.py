"""Several processes answering on one port (SO_REUSEPORT): the kernel spreads the
queries over them, so the server uses more than one core despite the GIL.

The first process serves /health, /ready and /metrics. Every other worker
publishes its metric tally once a second into memory the workers share, and the
first one's /metrics adds them to its own.
"""

from __future__ import annotations

import ctypes
import json
import mmap
import os
import signal
import struct

from podnet.dns.metrics import Tally

_PR_SET_PDEATHSIG = 1
PUBLISH_EVERY = 1.0  # seconds: how far behind /metrics may be on the other workers


def fork_workers(extra: int) -> tuple[int, list[int]]:
    """Start `extra` copies of this process. Returns this process's worker number
    (0 for the first) and, in the first, the copies' pids. Call before any thread
    or event loop exists."""
    children = []
    for number in range(1, extra + 1):
        pid = os.fork()
        if pid == 0:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)  # never outlive the first
            return number, []
        children.append(pid)
    return 0, children


class SharedTallies:
    """A slot per worker in an anonymous shared mapping (made before forking, so
    every worker maps the same pages). A slot is a sequence number, a length and
    JSON; the writer makes the number odd while it writes, so a reader that sees
    it odd, or changed, reads again rather than take half a tally."""

    SLOT = 16384
    _HEAD = struct.Struct("=QI")

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._memory = mmap.mmap(-1, self.SLOT * workers)  # MAP_SHARED: survives fork() as the same pages

    def publish(self, worker: int, values: Tally) -> None:
        data = json.dumps([[name, label, value] for (name, label), value in values.items()]).encode()
        if len(data) > self.SLOT - self._HEAD.size:
            return  # more upstreams than a slot holds: /metrics keeps this worker's last tally
        at = worker * self.SLOT
        sequence, _ = self._HEAD.unpack_from(self._memory, at)
        self._HEAD.pack_into(self._memory, at, sequence + 1, 0)
        self._memory[at + self._HEAD.size:at + self._HEAD.size + len(data)] = data
        self._HEAD.pack_into(self._memory, at, sequence + 2, len(data))

    def read(self, worker: int) -> Tally:
        at = worker * self.SLOT
        for _ in range(100):
            sequence, length = self._HEAD.unpack_from(self._memory, at)
            data = self._memory[at + self._HEAD.size:at + self._HEAD.size + length]
            if sequence % 2 == 0 and self._HEAD.unpack_from(self._memory, at)[0] == sequence:
                return {(name, label): value for name, label, value in json.loads(data)} if length else {}
        return {}

    def others(self, worker: int) -> list[Tally]:
        return [self.read(other) for other in range(self.workers) if other != worker]


def stop_workers(children: list[int]) -> None:
    for pid in children:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
    for pid in children:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
