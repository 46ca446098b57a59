"""A transaction as one nf_tables netlink batch: the messages nft itself would
send, built from the typed objects with no text parser in between.

A full proxy sync is a hundred thousand map elements. nft 1.0.6 spends ~20 µs
parsing each one as text; here each is a few bytes packed. Rules are encoded for
the vocabulary podnet writes (expressions.py). Anything else raises Unsupported,
and the backend then hands the whole transaction to nft, so a transaction is
never split.
"""

from __future__ import annotations

import socket
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import accumulate, repeat

from podnet.kernel.nftables.expressions import RuleCompiler
from podnet.kernel.nftables.objects import Chain, Element, Elements, Object, Set, Table
from podnet.kernel.nftables.rules import Rule, Verdict
from podnet.kernel.nftables.transaction import Transaction
from podnet.kernel.nftables.userdata import comment_udata, set_udata
from podnet.kernel.nftables.wire import (
    BATCH_BEGIN, BATCH_END, DATA_VERDICT, DELCHAIN, DELRULE, DELSET, DELSETELEM, DELTABLE, DESTROY, ELEMENTS_PER_NEST,
    FAMILIES, HOOKS, KEY, NEWCHAIN, NEWRULE, NEWSET, NEWSETELEM, NEWTABLE, NFNL_SUBSYS_NFTABLES, NLM_F_ACK,
    NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, SET_ANONYMOUS, SET_CONSTANT, SET_FLAGS, SET_MAP, VALUE,
    Unsupported, key_types, packer, type_id, value_types, verdict_data, width,
)
from podnet.kernel.nlmsg import NFNL_HEADER, NLA, NLA_F_NESTED, attr, be32, be64, nest, string


@dataclass
class Message:
    kind: int  # NFT_MSG_*
    flags: int
    body: bytes
    what: str  # the object it concerns, for an error


@dataclass
class Batch:
    """The messages of one transaction; `send` frames them as one kernel batch."""

    family: int
    messages: list[Message] = field(default_factory=list)

    def frames(self, first_sequence: int) -> Iterator[bytes]:
        """BEGIN, the messages (the last one asking for an ack), END."""
        yield _frame(BATCH_BEGIN, NLM_F_REQUEST, first_sequence, 0, b"", resource=NFNL_SUBSYS_NFTABLES)
        last = len(self.messages) - 1
        for i, msg in enumerate(self.messages):
            flags = NLM_F_REQUEST | msg.flags | (NLM_F_ACK if i == last else 0)
            yield _frame(NFNL_SUBSYS_NFTABLES << 8 | msg.kind, flags, first_sequence + 1 + i, self.family, msg.body)
        yield _frame(BATCH_END, NLM_F_REQUEST, first_sequence + 1 + len(self.messages), 0, b"",
                     resource=NFNL_SUBSYS_NFTABLES)


def _frame(kind: int, flags: int, sequence: int, family: int, body: bytes, resource: int = 0) -> bytes:
    return NFNL_HEADER.pack(NFNL_HEADER.size + len(body), kind, flags, sequence, 0, family, 0,
                            socket.htons(resource)) + body


class Encoder:
    """Turns one transaction into a Batch. Sets declared earlier in the same
    transaction (or, for elements only, already in the kernel under a known
    declaration) tell how their elements are laid out."""

    def __init__(self, tx: Transaction, known_sets: dict[str, Set] | None = None) -> None:
        if tx.table.family not in FAMILIES:
            raise Unsupported(f"family {tx.table.family}")
        self.tx = tx
        self.table = tx.table
        self.batch = Batch(FAMILIES[tx.table.family])
        self.sets: dict[str, Set] = dict(known_sets or {})
        self.table_attr = string(1, tx.table.name)
        self._next_set_id = 1
        self.statements: dict[tuple[object, bool], tuple[tuple[bytes, ...], bool]] = {}  # RuleCompiler's memos
        self.loads: dict[tuple[object, int], tuple[tuple[bytes, ...], tuple[object, ...]]] = {}

    def encode(self) -> Batch:
        for verb, obj in self.tx.operations:
            self._operation(verb, obj)
        return self.batch

    def _add(self, kind: int, flags: int, body: bytes, what: str) -> None:
        self.batch.messages.append(Message(kind, flags, body, what))

    def _operation(self, verb: str, obj: Object) -> None:
        where = self.table.text()
        if isinstance(obj, Table):
            if verb == "replace":
                self._operation("add", obj)
                self._operation("delete", obj)
                self._operation("add", obj)
                return
            self._declare(verb, NEWTABLE, DELTABLE, self.table_attr, f"table {where}")
        elif isinstance(obj, Chain):
            if verb == "flush":
                self._add(DELRULE, 0, self.table_attr + string(2, obj.name), f"flush chain {where} {obj.name}")
                return
            body = self.table_attr + string(3, obj.name)
            if verb in ("add", "create"):
                body += _chain_spec(obj)
            self._declare(verb, NEWCHAIN, DELCHAIN, body, f"chain {where} {obj.name}")
        elif isinstance(obj, Set):
            if verb == "flush":
                self._add(DELSETELEM, 0, self.table_attr + string(2, obj.name), f"flush {obj.kind} {where} {obj.name}")
                return
            self.sets[obj.name] = obj
            body = self.table_attr + string(2, obj.name)
            if verb in ("add", "create"):
                body += self._set_spec(obj, self._set_id())
            self._declare(verb, NEWSET, DELSET, body, f"{obj.kind} {where} {obj.name}")
        elif isinstance(obj, Rule):
            if verb != "add":
                raise ValueError(f"rules are added, not given {verb!r}: flush their chain instead")
            self._rule(obj)
        elif isinstance(obj, Elements):
            if obj.items:
                self._elements(verb, obj.set, obj.items)
        elif isinstance(obj, Element):
            self._elements(verb, obj.set, (obj,))
        else:
            raise Unsupported(type(obj).__name__)

    def _declare(self, verb: str, new: int, delete: int, body: bytes, what: str) -> None:
        if verb == "add":
            self._add(new, NLM_F_CREATE, body, f"add {what}")
        elif verb == "create":
            self._add(new, NLM_F_CREATE | NLM_F_EXCL, body, f"create {what}")
        elif verb == "delete":
            self._add(delete, 0, body, f"delete {what}")
        elif verb == "destroy":
            self._add(DESTROY[delete], 0, body, f"destroy {what}")
        else:
            raise ValueError(f"{what} cannot be given {verb!r}")

    def _set_spec(self, s: Set, set_id: int, anonymous: bool = False) -> bytes:
        keys = key_types(s.key, s.typeof)
        flags = (SET_MAP if s.is_map else 0) | (SET_ANONYMOUS | SET_CONSTANT if anonymous else 0)
        for flag in s.flags:
            if flag not in SET_FLAGS:
                raise Unsupported(f"set flag {flag}")
            flags |= SET_FLAGS[flag]
        spec = be32(3, flags) + be32(4, type_id(keys)) + be32(5, width(keys))
        if s.is_map:
            values = value_types(s)
            spec += be32(6, type_id(values)) + be32(7, width(values)) if values else be32(6, DATA_VERDICT)
        spec += be32(10, set_id)
        if s.timeout is not None:
            spec += be64(11, s.timeout * 1000)
        return spec + attr(13, set_udata(s, keys, anonymous))

    def _set_id(self) -> int:
        self._next_set_id += 1
        return self._next_set_id - 1

    @property
    def sets_declared(self) -> int:
        """Grows with every set declared, inline ones included."""
        return self._next_set_id

    def _elements(self, verb: str, name: str, elements: Sequence[Element]) -> None:
        declared = self.sets.get(name)
        if declared is None:
            raise Unsupported(f"elements of {name}, whose declaration this transaction does not hold")
        what = f"{verb} element {self.table.text()} {name}"
        if verb == "destroy":  # a key deleted twice in one message is ENOENT, and destroy promises none
            elements = list({element.key: element for element in elements}.values())
            kind, flags, with_values = DESTROY[DELSETELEM], 0, False
        elif verb in ("add", "create"):
            kind, flags, with_values = NEWSETELEM, NLM_F_CREATE | (NLM_F_EXCL if verb == "create" else 0), True
        elif verb == "delete":
            kind, flags, with_values = DELSETELEM, 0, False
        else:
            raise ValueError(f"elements are added, created, deleted or destroyed, not given {verb!r}")
        self._element_messages(kind, flags, self.table_attr + string(2, name), declared, elements,
                               with_values and declared.is_map, what)

    def _element_messages(self, kind: int, flags: int, head: bytes, s: Set, elements: Sequence[Element],
                          with_values: bool, what: str) -> None:
        """As many messages as the elements take, each led by `head` (table and set)."""
        for chunk in _chunks(_element_items(s, elements, with_values)):
            self._add(kind, flags, head + attr(3 | NLA_F_NESTED, chunk), what)

    def _rule(self, r: Rule) -> None:
        compiler = RuleCompiler(self)
        for statement in r.statements:
            compiler.statement(statement)
        body = self.table_attr + string(2, r.chain) + nest(4, *compiler.exprs)
        if r.comment:
            body += attr(7, comment_udata(r.comment))
        self._add(NEWRULE, NLM_F_CREATE | NLM_F_APPEND, body, f"add rule {self.table.text()} {r.chain}")

    def anonymous_set(self, s: Set, items: Sequence[Element]) -> tuple[str, int]:
        """Declares an inline set or map and its elements; (name, id) to look it up by."""
        set_id = self._set_id()
        name = f"__{s.kind}{set_id}"
        self.sets[name] = s
        body = self.table_attr + string(2, name) + self._set_spec(s, set_id, anonymous=True)
        self._add(NEWSET, NLM_F_CREATE, body, f"add anonymous {s.kind} in {self.table.text()}")
        self._element_messages(NEWSETELEM, NLM_F_CREATE, self.table_attr + string(2, name) + be32(4, set_id), s,
                               items, s.is_map, f"add element {name}")
        return name, set_id


def _element_items(s: Set, elements: Sequence[Element], with_values: bool) -> list[bytes]:
    """Each element's attribute (NFTA_LIST_ELEM). Every element of a set has the same
    layout, so each is joined from constant headers and its members' cached bytes by
    C-level maps, with no Python step per element: a full proxy sync packs some
    300 000 of them."""
    if not elements:
        return []
    key_length = width(key_types(s.key, s.typeof))
    key_attrs = NLA.pack(key_length + 8, 1 | NLA_F_NESTED) + NLA.pack(key_length + 4, 1)  # KEY { VALUE }
    key_bytes = 4 + 4 + ((key_length + 3) & ~3)
    keys = map(packer(s.key, s.typeof).__getitem__, map(KEY, elements))
    pieces: list[Iterator[bytes]]
    if not with_values:
        head = NLA.pack(4 + key_bytes, 1 | NLA_F_NESTED) + key_attrs
        pieces = [repeat(head), keys]
    elif s.value == "verdict":
        tails: dict[object, bytes] = {}
        heads: dict[object, bytes] = {}
        values = list(map(VALUE, elements))
        for verdict in set(values):
            if not isinstance(verdict, Verdict):
                raise ValueError(f"an element of verdict map {s.name} has no verdict: {verdict!r}")
            tails[verdict] = verdict_data(2, verdict)
            heads[verdict] = NLA.pack(4 + key_bytes + len(tails[verdict]), 1 | NLA_F_NESTED) + key_attrs
        pieces = [map(heads.__getitem__, values), keys, map(tails.__getitem__, values)]
    else:
        value_length = width(value_types(s))
        value_attrs = NLA.pack(value_length + 8, 2 | NLA_F_NESTED) + NLA.pack(value_length + 4, 1)
        head = NLA.pack(4 + key_bytes + 8 + ((value_length + 3) & ~3), 1 | NLA_F_NESTED) + key_attrs
        packed_values = map(packer(s.value or "", s.typeof).__getitem__, map(VALUE, elements))
        pieces = [repeat(head), keys, repeat(value_attrs), packed_values]
    return list(map(b"".join, zip(*pieces)))


def _chunks(items: list[bytes]) -> Iterator[bytes]:
    """Element attributes cut where a nest would outgrow its 16-bit length."""
    ends = list(accumulate(map(len, items)))
    start, sent = 0, 0
    while start < len(items):
        stop = max(bisect_right(ends, sent + ELEMENTS_PER_NEST, lo=start), start + 1)
        yield b"".join(items[start:stop])
        sent, start = ends[stop - 1], stop


def _chain_spec(chain: Chain) -> bytes:
    spec = b""
    if chain.hook:
        h = chain.hook
        spec += nest(4, be32(1, HOOKS[h.hook]), be32(2, h.priority))
        spec += be32(5, 1 if h.policy == "accept" else 0) + string(7, h.type)
    if chain.comment:
        spec += attr(12, comment_udata(chain.comment))
    return spec


def encode(tx: Transaction, known_sets: dict[str, Set] | None = None) -> Batch:
    """The transaction's batch; raises Unsupported for what only nft can build."""
    return Encoder(tx, known_sets).encode()
