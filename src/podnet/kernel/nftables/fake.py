"""The Fake: nftables in memory, for unit tests and for the tracer.

It applies the transactions the nft backend would send, with the kernel's
refusals (a missing table, a chain in use, a set element that clashes, a rule
naming a set that does not exist) and its atomicity: a transaction that fails
changes nothing. `dump()` prints the state sorted, as an nft script.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from podnet.errors import KernelError
from podnet.kernel.nftables.objects import Chain, Element, Elements, Object, Set, Table
from podnet.kernel.nftables.rules import Dnat, Lookup, Match, Rule, SetRef, Statement, UpdateSet, Verdict, VerdictMap
from podnet.kernel.nftables.script import script
from podnet.kernel.nftables.transaction import Transaction


@dataclass
class TableState:
    table: Table
    chains: dict[str, Chain] = field(default_factory=dict)
    rules: dict[str, list[Rule]] = field(default_factory=dict)
    sets: dict[str, Set] = field(default_factory=dict)
    elements: dict[str, dict[tuple[str, ...], Element]] = field(default_factory=dict)

    def copy(self) -> TableState:
        return TableState(self.table, dict(self.chains), {k: list(v) for k, v in self.rules.items()},
                          dict(self.sets), {k: dict(v) for k, v in self.elements.items()})


def _fail(problem: str) -> KernelError:
    return KernelError(f"nft: {problem}")


def _references(statement: Statement) -> Iterator[tuple[str, str]]:
    """(kind, name) of the chains and sets a statement needs."""
    if isinstance(statement, Verdict) and statement.chain:
        yield "chain", statement.chain
    elif isinstance(statement, VerdictMap):
        if isinstance(statement.map, SetRef):
            yield "set", statement.map.name
        else:
            for _, verdict in statement.map:
                yield from _references(verdict)
    elif isinstance(statement, Match) and isinstance(statement.right, SetRef):
        yield "set", statement.right.name
    elif isinstance(statement, Dnat) and isinstance(statement.to, Lookup):
        yield "set", statement.to.map
    elif isinstance(statement, UpdateSet):
        yield "set", statement.set


class Fake:
    """One network namespace's nftables, in memory."""

    def __init__(self) -> None:
        self.tables: dict[Table, TableState] = {}

    def run(self, tx: Transaction) -> None:
        """All of it or, raising KernelError as nft would, none of it."""
        state = self.tables.get(tx.table)
        working = state.copy() if state else None
        for verb, obj in tx.operations:
            working = self._apply(tx.table, working, verb, obj)
        if working is None:
            self.tables.pop(tx.table, None)
        else:
            self.tables[tx.table] = working

    def _apply(self, table: Table, state: TableState | None, verb: str, obj: Object) -> TableState | None:
        if isinstance(obj, Table):
            if verb == "replace" or (verb in ("add", "create") and state is None):
                return TableState(table)
            if verb == "create":
                raise _fail(f"table {table.text()}: File exists")
            if verb in ("delete", "flush") and state is None:
                raise _fail(f"table {table.text()}: No such file or directory")
            if verb in ("delete", "destroy"):
                return None
            if verb == "flush" and state is not None:
                state.rules = {name: [] for name in state.rules}
                state.elements = {name: {} for name in state.elements}
            return state
        if state is None:
            if verb == "destroy":
                return None
            raise _fail(f"table {table.text()}: No such file or directory")
        if isinstance(obj, Elements):
            for element in obj.items:
                self._element(state, verb, element)
        elif isinstance(obj, Element):
            self._element(state, verb, obj)
        elif isinstance(obj, Chain):
            self._chain(state, verb, obj)
        elif isinstance(obj, Set):
            self._set(state, verb, obj)
        elif isinstance(obj, Rule):
            self._rule(state, verb, obj)
        return state

    def _chain(self, state: TableState, verb: str, chain: Chain) -> None:
        have = state.chains.get(chain.name)
        if verb in ("add", "create"):
            if have is not None and (verb == "create" or have.hook != chain.hook):
                raise _fail(f"chain {chain.name}: File exists")
            state.chains[chain.name] = chain
            state.rules.setdefault(chain.name, [])
        elif have is None:
            if verb != "destroy":
                raise _fail(f"chain {chain.name}: No such file or directory")
        elif verb == "flush":
            state.rules[chain.name] = []
        else:  # delete, destroy
            if state.rules[chain.name] or self._chain_used(state, chain.name):
                raise _fail(f"chain {chain.name}: Device or resource busy")
            del state.chains[chain.name], state.rules[chain.name]

    @staticmethod
    def _chain_used(state: TableState, name: str) -> bool:
        for rules in state.rules.values():
            for rule in rules:
                if any(ref == ("chain", name) for s in rule.statements for ref in _references(s)):
                    return True
        return any(isinstance(e.value, Verdict) and e.value.chain == name
                   for elements in state.elements.values() for e in elements.values())

    def _set(self, state: TableState, verb: str, declared: Set) -> None:
        have = state.sets.get(declared.name)
        if verb in ("add", "create"):
            if have is not None and (verb == "create" or have != declared):
                raise _fail(f"{declared.kind} {declared.name}: File exists")
            state.sets[declared.name] = declared
            state.elements.setdefault(declared.name, {})
        elif have is None:
            if verb != "destroy":
                raise _fail(f"{declared.kind} {declared.name}: No such file or directory")
        elif verb == "flush":
            state.elements[declared.name] = {}
        else:
            if any(ref == ("set", declared.name) for rules in state.rules.values() for rule in rules
                   for s in rule.statements for ref in _references(s)):
                raise _fail(f"{declared.kind} {declared.name}: Device or resource busy")
            del state.sets[declared.name], state.elements[declared.name]

    def _rule(self, state: TableState, verb: str, rule: Rule) -> None:
        if verb != "add":
            raise _fail(f"rules are added, not given {verb!r}")
        if rule.chain not in state.chains:
            raise _fail(f"chain {rule.chain}: No such file or directory")
        for statement in rule.statements:
            for kind, name in _references(statement):
                if name not in (state.chains if kind == "chain" else state.sets):
                    raise _fail(f"{kind} {name} (in a rule of {rule.chain}): No such file or directory")
        state.rules[rule.chain].append(rule)

    def _element(self, state: TableState, verb: str, element: Element) -> None:
        declared = state.sets.get(element.set)
        if declared is None:
            raise _fail(f"set {element.set}: No such file or directory")
        if len(element.key) != declared.key.count(" . ") + 1 or (element.value is None) == declared.is_map:
            raise _fail(f"element {element.text()} does not fit {declared.kind} {declared.name} ({declared.spec()})")
        if isinstance(element.value, Verdict) and element.value.chain and element.value.chain not in state.chains:
            raise _fail(f"chain {element.value.chain}: No such file or directory")
        elements = state.elements[element.set]
        have = elements.get(element.key)
        if verb in ("add", "create"):
            if have is not None and (verb == "create" or have.value != element.value):
                raise _fail(f"element {element.key_text()} in {element.set}: File exists")
            elements[element.key] = element
        elif verb == "destroy" or (verb == "delete" and have is not None):
            elements.pop(element.key, None)
        else:
            raise _fail(f"element {element.key_text()} in {element.set}: No such file or directory")

    # What a reader asks of nftables.

    def list_elements(self, table: Table, set_name: str, kind: str = "set") -> list[Element]:
        state = self.tables.get(table)
        if state is None or set_name not in state.elements:
            return []
        return list(state.elements[set_name].values())

    def chain(self, table: Table, name: str) -> Chain:
        return self.tables[table].chains[name]

    def rules(self, table: Table, chain: str) -> list[Rule]:
        return list(self.tables[table].rules[chain])

    def set(self, table: Table, name: str) -> Set:
        return self.tables[table].sets[name]

    def dump(self) -> str:
        """Every table, sorted: chains, sets and maps by name, elements by text;
        rules keep their order, which is their meaning."""
        out = []
        for table in sorted(self.tables, key=lambda t: (t.family, t.name)):
            state = self.tables[table]
            tx = Transaction(table).add(table)
            tx.add(*(state.chains[name] for name in sorted(state.chains)))
            tx.add(*(state.sets[name] for name in sorted(state.sets)))
            for name in sorted(state.rules):
                tx.add(*state.rules[name])
            out.append(script(tx))
            out.extend(f"add element {table.text()} {name} {{ {element.text()} }}\n"
                       for name in sorted(state.elements)
                       for element in sorted(state.elements[name].values(), key=Element.text))
        return "".join(out)

    def list_ruleset(self) -> str:
        return self.dump()
