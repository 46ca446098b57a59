"""A transaction's text: the nft script that applies it, in one command per set.

The nft backend loads it; the Fake dumps its state in the same form, so a dump
is itself a script nft would take.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter

from podnet.kernel.nftables.objects import Chain, Element, Elements, Set, Table
from podnet.kernel.nftables.rules import Rule, Verdict
from podnet.kernel.nftables.transaction import Transaction

_KEY, _VALUE, _JOINED = itemgetter(1), itemgetter(2), " . ".join


def _declare(verb: str, table: str, obj: Table | Chain | Set) -> str:
    if isinstance(obj, Table):
        return f"{verb} table {table}"
    kind, spec = ("chain", obj.spec()) if isinstance(obj, Chain) else (obj.kind, obj.spec())
    return f"{verb} {kind} {table} {obj.name} {{ {spec} }}" if spec and verb in ("add", "create") \
        else f"{verb} {kind} {table} {obj.name}"


def _lines(table: str, verb: str, obj: Table | Chain | Set | Rule) -> list[str]:
    if isinstance(obj, Rule):
        if verb != "add":
            raise ValueError(f"rules are added, not given {verb!r}: flush their chain instead")
        return [f"add rule {table} {obj.chain} {obj.text()}"]
    if verb == "replace":
        return [_declare("add", table, obj), _declare("delete", table, obj), _declare("add", table, obj)]
    if verb == "destroy":
        return [_declare("add", table, obj), _declare("delete", table, obj)]
    if verb == "flush" and isinstance(obj, Set):
        return [f"flush {obj.kind} {table} {obj.name}"]
    return [_declare(verb, table, obj)]


def _element_texts(elements: Sequence[Element]) -> str:
    """`key : value, ...`, joined by C-level maps: a full sync renders a few hundred
    thousand elements, and a Python loop over them costs more than nft's parse.
    A map's values are all data or all verdicts, so the first one tells which."""
    keys = map(_JOINED, map(_KEY, elements))
    first = elements[0].value
    if first is None:
        return ", ".join(keys)
    values = map(_JOINED if first.__class__ is tuple else Verdict.text, map(_VALUE, elements))  # type: ignore[arg-type]
    return ", ".join(map(" : ".join, zip(keys, values)))


def _element_lines(table: str, verb: str, elements: Sequence[Element]) -> list[str]:
    """Elements of one set in one command: nft's cost is per command more than per element."""
    name = elements[0].set
    if verb == "destroy":  # a key deleted twice in one command is ENOENT, and destroy promises none
        elements = list({element.key: element for element in elements}.values())
    if verb in ("add", "create"):
        return [f"{verb} element {table} {name} {{ {_element_texts(elements)} }}"]
    keys = ", ".join(map(_JOINED, map(_KEY, elements)))
    delete = f"delete element {table} {name} {{ {keys} }}"
    if verb == "destroy":
        return [f"add element {table} {name} {{ {_element_texts(elements)} }}", delete]
    if verb == "delete":
        return [delete]
    raise ValueError(f"elements are added, created, deleted or destroyed, not given {verb!r}")


def script(tx: Transaction) -> str:
    """The transaction as one nft script."""
    table = tx.table.text()
    lines: list[str] = []
    ops = tx.operations
    i = 0
    while i < len(ops):
        verb, obj = ops[i]
        if isinstance(obj, Elements):
            if obj.items:
                lines.extend(_element_lines(table, verb, obj.items))
        elif isinstance(obj, Element):  # single ones in a row, of one set, go in one command too
            j = i + 1
            while j < len(ops) and ops[j][0] == verb and isinstance(ops[j][1], Element) \
                    and ops[j][1].set == obj.set:  # type: ignore[union-attr]
                j += 1
            lines.extend(_element_lines(table, verb, [op[1] for op in ops[i:j]]))  # type: ignore[misc]
            i = j
            continue
        else:
            lines.extend(_lines(table, verb, obj))
        i += 1
    return "\n".join(lines) + "\n"
