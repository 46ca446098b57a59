"""Deleting a container's interface after DEL has answered.

Deleting a veth waits for the kernel's RCU grace period (about 20 ms here), which
is most of a DEL. Inside the agent, DEL detaches the interface at once (down, so
nothing more flows, and its addresses released) and leaves the deletion to a
worker thread; an ADD into the same namespace and interface name waits for it.
Each deferred deletion is written to a journal first, so an agent killed mid-way
finishes the job when it starts again. A plugin process working without an agent
deletes at once.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from pathlib import Path

from podnet.errors import KernelError
from podnet.kernel.netlink import open_path

log = logging.getLogger("podnet.cni")
RELEASED_ALIAS = "podnet:released"


class Janitor:
    """The agent's deferred deletions; the CNI server hands it to every request."""

    def __init__(self, journal: Path) -> None:
        self._journal = journal
        self._queue: queue.Queue[tuple[int, str, tuple[int, int]]] = queue.Queue()
        self._pending: dict[tuple[tuple[int, int], str], threading.Event] = {}
        self._lock = threading.Lock()
        self._finish_journal()
        self._thread = threading.Thread(target=self._work, name="cni-janitor", daemon=True)
        self._thread.start()

    def _finish_journal(self) -> None:
        """Deletions a killed agent had promised: done now, if their namespace lives."""
        try:
            entries = self._journal.read_text().splitlines()
        except FileNotFoundError:
            return
        for entry in entries:
            netns_path, _, ifname = entry.partition("\t")
            if netns_path and os.path.exists(netns_path):
                try:
                    with open_path(netns_path, "container") as container:
                        container.delete_link(ifname)
                except KernelError as err:
                    log.warning("finishing deletion of %s in %s failed: %s", ifname, netns_path, err)
        self._journal.unlink(missing_ok=True)

    def delete_later(self, netns_path: str, ifname: str) -> None:
        fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)  # keeps the namespace alive until we are done
        st = os.fstat(fd)
        key = ((st.st_dev, st.st_ino), ifname)
        with self._lock:
            self._pending[key] = threading.Event()
            with open(self._journal, "a") as journal:
                journal.write(f"{netns_path}\t{ifname}\n")
        self._queue.put((fd, ifname, key[0]))

    def wait_for(self, netns_path: str, ifname: str, timeout: float = 5.0) -> None:
        try:
            st = os.stat(netns_path)
        except OSError:
            return
        with self._lock:
            done = self._pending.get(((st.st_dev, st.st_ino), ifname))
        if done:
            done.wait(timeout)

    def _work(self) -> None:
        while True:
            fd, ifname, identity = self._queue.get()
            try:
                with open_path(f"/proc/self/fd/{fd}", "container") as container:
                    container.delete_link(ifname)
            except KernelError as err:
                log.warning("deleting %s later failed: %s", ifname, err)
            finally:
                os.close(fd)
                with self._lock:
                    event = self._pending.pop((identity, ifname), None)
                    if not self._pending:
                        self._journal.unlink(missing_ok=True)
                if event:
                    event.set()


def delete_link(janitor: Janitor | None, netns_path: str, ifname: str) -> None:
    """Later, through the agent's janitor; at once without one (a plugin process)."""
    if janitor is None:
        with open_path(netns_path, "container") as container:
            container.delete_link(ifname)
    else:
        janitor.delete_later(netns_path, ifname)
