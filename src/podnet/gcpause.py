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
        # What was allocated meanwhile goes straight to the oldest generation (freeze
        # then unfreeze moves every object there, in constant time), or the first young
        # collection after the pause would walk all of it at once.
        gc.freeze()
        gc.unfreeze()
        if enabled:
            gc.enable()
