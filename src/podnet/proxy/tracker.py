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
from typing import TypeVar

from podnet.kernel.nftables import Element, Transaction
from podnet.proxy.endpoints import ServicePortView
from podnet.proxy.ruleset import FAMILIES, Block, Contents, Pick, Ruleset, chains, element_changes

K = TypeVar("K", bound=Hashable)


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
        self.family = FAMILIES[family]
        self.pod_network = pod_network  # of this family
        self.views: dict[int, ServicePortView] = {}  # by identity: the same object is the same view
        self.elements: dict[str, Counter[Element]] | None = None  # by how many views make each; None: not yet
        self.picks: Counter[Pick] = Counter()
        self.block_counts: Counter[str] = Counter()
        self.blocks: dict[str, Block] = {}

    def update(self, views: Iterable[ServicePortView]) -> Change:
        """Takes in the family's views of this sync; the first one writes the whole table."""
        mine = {id(view): view for view in views if view.family == self.family.name}
        gone = [view for key, view in self.views.items() if key not in mine]
        new = [view for key, view in mine.items() if key not in self.views]
        self.views = mine
        if self.elements is not None and not gone and not new:
            return Change()
        before, after = Contents(self.family), Contents(self.family)
        for view in gone:
            before.add_view(view)
        for view in new:
            after.add_view(view)
        if self.elements is None:  # counted at C speed: a full sync counts a few hundred thousand
            self.elements = {name: Counter(made) for name, made in after.elements.items()}
            self.picks, self.block_counts, self.blocks = Counter(after.picks), Counter(after.blocks.keys()), after.blocks
            return Change(whole=self.whole())
        out: dict[str, set[Element]] = {}
        into: dict[str, set[Element]] = {}
        for name, counted in self.elements.items():
            out[name], into[name] = _move(counted, Counter(before.elements[name]), Counter(after.elements[name]))
        if self._chains_change(before, after):
            return Change(whole=self.whole())
        return Change(elements=element_changes(self.family.table, out, into))

    def whole(self) -> Ruleset:
        """The table as the views now make it (for a first write, a chain change or a resync)."""
        assert self.elements is not None, "a table is written whole once its views are in"
        return Ruleset({name: frozenset(counted) for name, counted in self.elements.items()},
                       chains(self.family, self.picks, self.blocks), self.pod_network, self.family.name)

    def _chains_change(self, before: Contents, after: Contents) -> bool:
        """Moves the chains' counts; whether the table's chains are no longer what they were."""
        picks_out, picks_in = _move(self.picks, Counter(before.picks), Counter(after.picks))
        replaced = any(self.blocks.get(name) != block for name, block in after.blocks.items() if name in before.blocks)
        blocks_out, blocks_in = _move(self.block_counts, Counter(before.blocks.keys()), Counter(after.blocks.keys()))
        for name in blocks_out:
            del self.blocks[name]
        self.blocks.update(after.blocks)
        return bool(picks_out or picks_in or blocks_out or blocks_in or replaced)


def _move(counted: Counter[K], out: Counter[K], into: Counter[K]) -> tuple[set[K], set[K]]:
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
