"""kube-proxy's change tracker, for one family's table: a sync costs what changed.

The views of unchanged Services are the very objects of the last sync
(endpoints.ViewMemo), so the views that changed are found by identity. Their
elements and chains are taken out of the table's counted contents
(ruleset.Contents), the new ones put in, and only the elements whose count
went from nothing to something, or back, are written. When the chains the
views need change (a pick chain of a new size, an affinity or firewall chain),
or to repair drift, the whole table is written from the same contents.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable
from dataclasses import dataclass

from podnet.kernel.nftables import Element, Transaction
from podnet.proxy.endpoints import ServicePortView
from podnet.proxy.ruleset import FAMILIES, Contents, Ruleset, element_changes


@dataclass(frozen=True)
class Change:
    """What a sync asks of the kernel: the whole table, some elements, or nothing."""

    whole: Ruleset | None = None
    elements: Transaction | None = None

    @property
    def empty(self) -> bool:
        return self.whole is None and not self.elements


class ChangeTracker:
    def __init__(self, family: str, pod_network: str) -> None:
        self.family = family
        self.pod_network = pod_network  # of this family
        self.contents = Contents(FAMILIES[family])
        self.views: dict[int, ServicePortView] = {}  # by identity: the same object is the same view
        self.started = False

    def update(self, views: Iterable[ServicePortView]) -> Change:
        """Takes in the family's views of this sync; the first one writes the whole table."""
        mine = {id(view): view for view in views if view.family == self.family}
        gone = [view for key, view in self.views.items() if key not in mine]
        new = [view for key, view in mine.items() if key not in self.views]
        self.views = mine
        if not self.started:
            self.started = True
            for view in new:
                self.contents.add_view(view)
            return Change(whole=self.whole())
        if not gone and not new:
            return Change()
        before, after = Contents(self.contents.family), Contents(self.contents.family)
        for view in gone:
            before.add_view(view)
        for view in new:
            after.add_view(view)
        chains = self._chains_change(before, after)
        out: dict[str, set[Element]] = {}
        into: dict[str, set[Element]] = {}
        for name, counted in self.contents.elements.items():
            out[name], into[name] = _move(counted, before.elements[name], after.elements[name])
        if chains:
            return Change(whole=self.whole())
        return Change(elements=element_changes(self.contents.family.table, out, into))

    def whole(self) -> Ruleset:
        """The table as the views now make it (for a first write, a chain change or a resync)."""
        return self.contents.ruleset(self.pod_network)

    def _chains_change(self, before: Contents, after: Contents) -> bool:
        """Moves the chains' counts; whether the table's chains are no longer what they were."""
        picks_moved = _move(self.contents.picks, before.picks, after.picks)
        replaced = any(self.contents.blocks.get(name) != block for name, block in after.blocks.items()
                       if name in before.block_counts)
        blocks_out, blocks_in = _move(self.contents.block_counts, before.block_counts, after.block_counts)
        for name in blocks_out:
            del self.contents.blocks[name]
        self.contents.blocks.update((name, block) for name, block in after.blocks.items())
        return any(picks_moved) or bool(blocks_out or blocks_in) or replaced


def _move(counted: Counter, out: Counter, into: Counter) -> tuple[set[Hashable], set[Hashable]]:  # type: ignore[type-arg]
    """Takes `out`'s counts from `counted` and adds `into`'s; returns the keys that
    left (counted no more) and those that came (counted now, not before)."""
    left, came = set(), set()
    for key in out.keys() | into.keys():
        before = counted.get(key, 0)
        now = before - out.get(key, 0) + into.get(key, 0)
        if now > 0:
            counted[key] = now
        else:
            counted.pop(key, None)
        if before and not now:
            left.add(key)
        elif now and not before:
            came.add(key)
    return left, came
