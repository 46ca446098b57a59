"""Following the store as a controller does: reconcile on every change under
/registry/, and at least every resync period, so drift is repaired as well as
changes. A failed pass is logged and retried, never the end of the process."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from podnet.errors import PodnetError
from podnet.store.base import Compacted, Store
from podnet.store.resources import REGISTRY, prefix

NOT_STATE = (prefix("Lease"), prefix("Event"))  # heartbeats and events change nothing to reconcile: a resync sees them


def follow(store: Store, reconcile: Callable[[], int], stop: threading.Event, log: logging.Logger,
           resync_seconds: float = 1.0, poll: float = 0.05, started: str = "") -> None:
    """reconcile returns the store revision it read at; until stop is set."""
    revision = _guarded(reconcile, 0, log)
    if started:
        log.info(started)
    next_resync = time.monotonic() + resync_seconds
    while not stop.wait(poll):
        try:
            changed = any(not e.key.startswith(NOT_STATE) for e in store.events_since(REGISTRY, revision))
        except Compacted:
            changed = True
        except PodnetError as err:
            log.error("watching the store failed: %s", err)
            continue
        if changed or time.monotonic() >= next_resync:
            revision = _guarded(reconcile, revision, log)
            next_resync = time.monotonic() + resync_seconds


def _guarded(reconcile: Callable[[], int], revision: int, log: logging.Logger) -> int:
    try:
        return reconcile()
    except PodnetError as err:  # the store could not be read: the message says it all
        log.error("reconcile failed: %s", err)
    except Exception:  # a bug: its traceback, and the next pass
        log.exception("reconcile failed")
    return revision
