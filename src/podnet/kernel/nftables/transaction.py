"""A transaction: changes to one table that the kernel applies all or none of.

Verbs as nft's: add (declare; no error if it exists), create (error if it
exists), flush (empty a chain of rules or a set of elements), delete (error if
it is missing), destroy (delete whether or not it exists: nft 1.0.6 has no
`destroy`, so backends add it first), and replace (the table whole: what
follows is its new content, and a packet sees the old table or the new one).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from podnet.kernel.nftables.objects import Element, Object, Table

VERBS = ("add", "create", "flush", "delete", "destroy", "replace")


Operation = tuple[str, Object]  # (verb, object): a plain tuple, as a full sync makes a few hundred thousand

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
        self.operations.extend(("add", element) for element in elements)
        return self

    def delete_elements(self, elements: Iterable[Element]) -> Transaction:
        self.operations.extend(("delete", element) for element in elements)
        return self

    def _extend(self, verb: str, objects: Iterable[Object]) -> Transaction:
        self.operations.extend((verb, obj) for obj in objects)
        return self

    def __len__(self) -> int:
        return len(self.operations)

    def __bool__(self) -> bool:
        return bool(self.operations)
