"""Several processes answering on one port (SO_REUSEPORT): the kernel spreads the
queries over them, so the server uses more than one core despite the GIL.

The first process serves /health, /ready and /metrics; its metrics count the
queries it answered itself, not those of the other workers.
"""

from __future__ import annotations

import ctypes
import os
import signal

_PR_SET_PDEATHSIG = 1


def fork_workers(extra: int) -> list[int]:
    """Start `extra` copies of this process; returns their pids in the parent and
    an empty list in each copy. Call before any thread or event loop exists."""
    children = []
    for _ in range(extra):
        pid = os.fork()
        if pid == 0:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)  # never outlive the first
            return []
        children.append(pid)
    return children


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
