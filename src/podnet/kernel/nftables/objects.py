"""nftables objects as values: tables, chains, sets, maps and their elements.

As in knftables, a transaction belongs to one table, so objects name only
themselves; equal values compare equal, so a reconcile can diff them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Union

from podnet.kernel.nftables.hooks import Hook, base_chain_hook
from podnet.kernel.nftables.rules import Rule, Verdict


@dataclass(frozen=True)
class Table:
    family: str  # ip, ip6, inet, bridge
    name: str

    def text(self) -> str:
        return f"{self.family} {self.name}"


@dataclass(frozen=True)
class Chain:
    """A regular chain, or with a hook a base chain the kernel calls."""

    name: str
    hook: Hook | None = None
    comment: str | None = None

    def spec(self) -> str:
        """What goes between the braces when the chain is declared."""
        parts = []
        if self.hook:
            h = self.hook
            parts.append(f"type {h.type} hook {h.hook} priority {h.priority}; policy {h.policy};")
        if self.comment:
            parts.append(f'comment "{self.comment}";')
        return " ".join(parts)


@dataclass(frozen=True)
class Set:
    """A set, or with `value` a map. `key` and `value` are data types
    (`ipv4_addr . inet_service`, `verdict`) or, with typeof, expressions."""

    name: str
    key: str
    value: str | None = None
    typeof: bool = False
    flags: tuple[str, ...] = ()
    timeout: int | None = None  # seconds

    @property
    def is_map(self) -> bool:
        return self.value is not None

    @property
    def kind(self) -> str:
        return "map" if self.is_map else "set"

    def spec(self) -> str:
        declared = f"{self.key} : {self.value}" if self.is_map else self.key
        parts = [f"{'typeof' if self.typeof else 'type'} {declared};"]
        if self.flags:
            parts.append(f"flags {','.join(self.flags)};")
        if self.timeout is not None:
            parts.append(f"timeout {self.timeout}s;")
        return " ".join(parts)


def base_chain(table: Table, name: str, comment: str | None = None) -> Chain:
    """A base chain, hooked where kernel/nftables/hooks.py says."""
    return Chain(name, base_chain_hook(table.name, name), comment)


def Map(name: str, key: str, value: str, *, typeof: bool = False, flags: tuple[str, ...] = (),
        timeout: int | None = None) -> Set:
    """A map is a set whose elements carry a value."""
    return Set(name, key, value, typeof, flags, timeout)


class Element(NamedTuple):
    """One member of a set (key) or a map (key : value). A tuple, because the
    proxy makes a hundred thousand of them in a full sync."""

    set: str
    key: tuple[str, ...]
    value: tuple[str, ...] | Verdict | None = None

    def key_text(self) -> str:
        return " . ".join(self.key)

    def text(self) -> str:
        if self.value is None:
            return self.key_text()
        value = self.value.text() if isinstance(self.value, Verdict) else " . ".join(self.value)
        return f"{self.key_text()} : {value}"


class Elements(NamedTuple):
    """Many elements of one set, as one operation: how a full sync hands over a
    hundred thousand without a Python step for each."""

    set: str
    items: tuple[Element, ...]


Object = Union[Table, Chain, Set, Rule, Element, Elements]
