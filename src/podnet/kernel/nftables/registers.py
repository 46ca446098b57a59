"""nf_tables expressions at the level of the registers: loading a packet field,
a concatenation, a masked field or a random number into the 32-bit registers
(from 8), and bitwise, cmp and lookup on them. RuleCompiler (expressions.py)
builds podnet's statements out of these.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from podnet.kernel.nftables.rules import Concat, Expr, Field, Masked, Numgen
from podnet.kernel.nftables.wire import FIELDS, REG32, TYPES, DataType, Unsupported, value_data
from podnet.kernel.nlmsg import be32, nest, string

if TYPE_CHECKING:
    from podnet.kernel.nftables.batch import Encoder


class Expressions:
    """One rule's expressions, appended in order to `exprs`."""

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        self.exprs: list[bytes] = []

    def expr(self, name: str, *attrs: bytes) -> None:
        self.exprs.append(nest(1, string(1, name), nest(2, *attrs)))

    def load(self, e: Expr, register: int = REG32) -> tuple[DataType | str, ...]:
        """Puts e's value in registers from `register`; returns its members' types.
        Encoded once per transaction, as statements are: lookups of the same key
        in different sets share it."""
        key = (e, register)
        known = self.encoder.loads.get(key)
        if known is None:
            start = len(self.exprs)
            types = self._load(e, register)
            known = self.encoder.loads[key] = (tuple(self.exprs[start:]), types)
        else:
            self.exprs.extend(known[0])
        return known[1]

    def _load(self, e: Expr, register: int) -> tuple[DataType | str, ...]:
        if isinstance(e, Concat):
            types: list[DataType | str] = []
            for part in e.parts:
                (t,) = self.load(part, register)
                types.append(t)
                register += (_size(t) + 3) // 4
            return tuple(types)
        if isinstance(e, Numgen):
            self.expr("numgen", be32(1, register), be32(2, e.modulus), be32(3, 1))  # type random
            return (TYPES["integer"],)
        if isinstance(e, Masked):
            (t,) = self.load(e.field, register)
            self.bitwise(register, host_order(e.mask, _size(t)), host_order(0, _size(t)))
            return (t,)
        if isinstance(e, Field) and e.name in FIELDS:
            name, attrs, type_name = FIELDS[e.name]
            self.expr(name, be32(1, register), *(be32(kind, value) for kind, value in attrs))
            return (TYPES.get(type_name, type_name),)  # type: ignore[arg-type]
        raise Unsupported(f"loading {e.text()}")

    def bitwise(self, register: int, mask: bytes, xor: bytes) -> None:
        """register = (register & mask) ^ xor, over the mask's length."""
        self.expr("bitwise", be32(1, register), be32(2, register), be32(3, len(mask)), value_data(4, mask),
                  value_data(5, xor))

    def cmp(self, register: int, data: bytes, negate: bool) -> None:
        self.expr("cmp", be32(1, register), be32(2, 1 if negate else 0), value_data(3, data))

    def lookup(self, set_name: str, register: int, *, out: int | None = None, negate: bool = False,
               set_id: int | None = None) -> None:
        attrs = [string(1, set_name), be32(2, register)]
        if out is not None:
            attrs.append(be32(3, out))
        if set_id is not None:
            attrs.append(be32(4, set_id))
        if negate:
            attrs.append(be32(5, 1))
        self.expr("lookup", *attrs)


def _size(t: DataType | str) -> int:
    return t.size if isinstance(t, DataType) else 4


def host_order(value: int, size: int = 4) -> bytes:
    """A register value in host order (marks, ct bits, numgen), `size` bytes of it."""
    return struct.pack("=I", value)[:size]

