"""A transaction: changes to one table that the kernel applies all or none of.

Verbs as nft's: add (declare; no error if it exists), create (error if it
exists), flush (empty a chain of rules or a set of elements), delete (error if
it is missing), destroy (delete whether or not it exists: nft 1.0.6 has no
`destroy`, so backends add it first), and replace (the table whole: what
follows is its new content, and a packet sees the old table or the new one).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from operator import attrgetter

from podnet.kernel.nftables.objects import Element, Elements, Object, Table

Operation = tuple[str, Object]  # (verb, object)
_SET_OF = attrgetter("set")

@dataclass
class Transaction:
    table: Table
    operations: list[Operation] = field(default_factory=list)

    def add(self, *objects: Object) -> Transaction:
        return self._extend("add", objects)

    def create(self, *objects: Object) -> Transaction:
        return self._extend("create", objects)

    def flush(self, *objects: Object) -> Transaction:
        return self._extend("flush", objects)

    def delete(self, *objects: Object) -> Transaction:
        return self._extend("delete", objects)

    def destroy(self, *objects: Object) -> Transaction:
        return self._extend("destroy", objects)

    def replace(self) -> Transaction:
        """The table's old content goes; the operations that follow are its new content."""
        return self._extend("replace", (self.table,))

    def add_elements(self, elements: Iterable[Element]) -> Transaction:
        return self._batch("add", elements)

    def delete_elements(self, elements: Iterable[Element]) -> Transaction:
        return self._batch("delete", elements)

    def _batch(self, verb: str, elements: Iterable[Element]) -> Transaction:
        """One operation per set, however many elements."""
        items = tuple(elements)
        names = set(map(_SET_OF, items))
        if len(names) == 1:
            self.operations.append((verb, Elements(names.pop(), items)))
            return self
        by_set: dict[str, list[Element]] = {name: [] for name in names}
        for element in items:  # one pass: a policy table has thousands of sets
            by_set[element.set].append(element)
        for name in sorted(names):
            self.operations.append((verb, Elements(name, tuple(by_set[name]))))
        return self

    def elements(self) -> Iterator[tuple[str, Element]]:
        """Every element operation, batches unpacked."""
        for verb, obj in self.operations:
            if isinstance(obj, Elements):
                yield from ((verb, element) for element in obj.items)
            elif isinstance(obj, Element):
                yield verb, obj

    def _extend(self, verb: str, objects: Iterable[Object]) -> Transaction:
        self.operations.extend((verb, obj) for obj in objects)
        return self

    def __len__(self) -> int:
        """Operations, each element counted."""
        return sum(len(obj.items) if isinstance(obj, Elements) else 1 for _, obj in self.operations)

    def __bool__(self) -> bool:
        return bool(self.operations)
