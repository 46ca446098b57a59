"""The kubelet's pod workers: the slow work on a pod (CNI, starting, stopping,
status writes) runs on a pool of threads, one piece at a time per sandbox, so
the controller's pass never waits and never runs two changes to one pod at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from podnet.errors import PodnetError

log = logging.getLogger("podnet.agent.pod_workers")


class PodWorkers:
    def __init__(self, workers: int) -> None:
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="pod")
        self._lock = threading.Lock()
        self._busy: set[str] = set()  # sandboxes with work in flight

    def busy(self, sandbox: str) -> bool:
        return sandbox in self._busy

    def submit(self, sandbox: str, work: Callable[..., object], *args: object) -> None:
        """work(*args), unless the sandbox has work in flight already: a later
        pass asks again if it is still needed. Its errors are logged."""
        with self._lock:
            if sandbox in self._busy:
                return
            self._busy.add(sandbox)

        def run() -> None:
            try:
                work(*args)
            except PodnetError as err:
                log.error("%s: %s", sandbox, err)
            except Exception:
                log.exception("%s: failed", sandbox)
            finally:
                with self._lock:
                    self._busy.discard(sandbox)

        self._pool.submit(run)
