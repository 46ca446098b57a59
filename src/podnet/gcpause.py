"""Pausing Python's cyclic garbage collector around bulk allocation.

A full proxy sync allocates a few hundred thousand small tuples (map elements)
that cannot form cycles; meanwhile the collector would walk the growing heap
again and again, which doubles the time of the sync. Reference counting still
frees everything as usual.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
