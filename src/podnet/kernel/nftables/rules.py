"""Rules as typed values: the matches and statements podnet's tables use.

Each value has its nft text (`text()`), and the same value is what the Fake keeps
and the tracer walks, so a test asks where a packet ends instead of reading text.
The vocabulary is small on purpose: what podnet writes, nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union


@dataclass(frozen=True)
class Field:
    """A value the kernel reads off the packet or its context: `ip saddr`, `th dport`."""

    name: str

    def text(self) -> str:
        return self.name


IP_SADDR = Field("ip saddr")
IP_DADDR = Field("ip daddr")
IP6_SADDR = Field("ip6 saddr")
IP6_DADDR = Field("ip6 daddr")
L4PROTO = Field("meta l4proto")
NFPROTO = Field("meta nfproto")
TH_DPORT = Field("th dport")
TH_SPORT = Field("th sport")
FIB_DADDR_TYPE = Field("fib daddr type")
CT_STATUS = Field("ct status")
CT_STATE = Field("ct state")
META_MARK = Field("meta mark")
IIFNAME = Field("iifname")
OIFNAME = Field("oifname")
ETHER_SADDR = Field("ether saddr")


def saddr(version: int) -> Field:
    return IP_SADDR if version == 4 else IP6_SADDR


def daddr(version: int) -> Field:
    return IP_DADDR if version == 4 else IP6_DADDR


@dataclass(frozen=True)
class Concat:
    """Fields joined into one key: `ip daddr . meta l4proto . th dport`."""

    parts: tuple[Expr, ...]

    def text(self) -> str:
        return " . ".join(part.text() for part in self.parts)


def concat(*parts: Expr) -> Concat:
    return Concat(parts)


@dataclass(frozen=True)
class Numgen:
    """`numgen random mod N`: one of 0..N-1, which the tracer follows every one of."""

    modulus: int

    def text(self) -> str:
        return f"numgen random mod {self.modulus}"


@dataclass(frozen=True)
class Masked:
    """`meta mark & 0x4000`: some bits of a field."""

    field: Field
    mask: int

    def text(self) -> str:
        return f"{self.field.text()} & {self.mask:#x}"


Expr = Union[Field, Concat, Numgen, Masked]


@dataclass(frozen=True)
class SetRef:
    """A named set or map of the same table: `@cluster_ips`."""

    name: str

    def text(self) -> str:
        return f"@{self.name}"


@dataclass(frozen=True)
class AnonSet:
    """An inline set: `{ 172.18.0.0/24, 10.0.0.0/8 }`."""

    items: tuple[str, ...]

    def text(self) -> str:
        return "{ " + ", ".join(self.items) + " }"


Operand = Union[str, int, SetRef, AnonSet]


def _operand_text(value: Operand) -> str:
    if isinstance(value, int):
        return f"{value:#x}"
    if isinstance(value, str):
        return value
    return value.text()


@dataclass(frozen=True)
class Match:
    """`left right` or `left != right`: a value, a prefix, a set, or a flag.
    Beware `ct status != dnat`: nft 1.0.6 compares the whole status with the
    flag, not whether the flag is set; to act on a flag's absence, return on
    its presence first."""

    left: Expr
    right: Operand
    negate: bool = False

    def text(self) -> str:
        op = "!= " if self.negate else ("== " if isinstance(self.left, Masked) else "")
        return f"{self.left.text()} {op}{_operand_text(self.right)}"


def match(left: Expr, right: Operand) -> Match:
    return Match(left, right)


def differs(left: Expr, right: Operand) -> Match:
    return Match(left, right, negate=True)


@dataclass(frozen=True)
class Verdict:
    """accept, drop, return, continue; jump and goto name a chain."""

    kind: str
    chain: str | None = None

    def text(self) -> str:
        return f"{self.kind} {self.chain}" if self.chain else self.kind


ACCEPT = Verdict("accept")
DROP = Verdict("drop")
RETURN = Verdict("return")


def jump(chain: str) -> Verdict:
    return Verdict("jump", chain)


def goto(chain: str) -> Verdict:
    return Verdict("goto", chain)


@dataclass(frozen=True)
class VerdictMap:
    """`key vmap @map`, or an inline map `key vmap { 0 : goto a, 1 : goto b }`."""

    key: Expr
    map: SetRef | tuple[tuple[str, Verdict], ...]

    def text(self) -> str:
        if isinstance(self.map, SetRef):
            return f"{self.key.text()} vmap {self.map.text()}"
        return f"{self.key.text()} vmap {{ " + ", ".join(f"{k} : {v.text()}" for k, v in self.map) + " }"


@dataclass(frozen=True)
class Lookup:
    """`key map @map`: the value the map holds for the key (a DNAT target)."""

    key: Expr
    map: str

    def text(self) -> str:
        return f"{self.key.text()} map @{self.map}"


@dataclass(frozen=True)
class Dnat:
    """Rewrite the destination: to a fixed `address:port`, or to what a map says."""

    family: str  # ip or ip6
    to: str | Lookup

    def text(self) -> str:
        return f"dnat {self.family} to {self.to if isinstance(self.to, str) else self.to.text()}"


def split_target(to: str) -> tuple[str, str]:
    """A DNAT target's address and port ("" when none): `10.244.0.2:80`,
    `[fd00::2]:80` (IPv6 in brackets, as nft writes it), or a bare address."""
    if to.startswith("["):
        address, _, rest = to[1:].partition("]")
        return address, rest[1:]
    if to.count(":") > 1:
        return to, ""
    address, _, port = to.partition(":")
    return address, port


def target(address: str, port: int | str) -> str:
    """`address:port`, the IPv6 address in brackets."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


@dataclass(frozen=True)
class Masquerade:
    fully_random: bool = False

    def text(self) -> str:
        return "masquerade fully-random" if self.fully_random else "masquerade"


@dataclass(frozen=True)
class Reject:
    """An ICMP unreachable, or for TCP a reset: the client is told at once."""

    tcp_reset: bool = False

    def text(self) -> str:
        return "reject with tcp reset" if self.tcp_reset else "reject"


@dataclass(frozen=True)
class SetMark:
    """`meta mark set meta mark | 0x4000` (op `|`) or `^ 0x4000` (op `^`)."""

    op: str
    value: int

    def text(self) -> str:
        return f"meta mark set meta mark {self.op} {self.value:#x}"


@dataclass(frozen=True)
class SetTrace:
    """`meta nftrace set 1`: the kernel reports this packet's way through every
    chain that follows (`podnet trace --live`)."""

    def text(self) -> str:
        return "meta nftrace set 1"


@dataclass(frozen=True)
class UpdateSet:
    """`update @set { ip saddr }`: remember the key in a timed set."""

    set: str
    key: Expr

    def text(self) -> str:
        return f"update @{self.set} {{ {self.key.text()} }}"


@dataclass(frozen=True)
class Limit:
    """`limit rate 10/second burst 5 packets`: true for that many packets a second
    (and bursts of `burst`), false above it, so what follows it in the rule is rationed."""

    per_second: int
    burst: int = 5  # nft's default, which its listings leave out

    def text(self) -> str:
        burst = f" burst {self.burst} packets" if self.burst != 5 else ""
        return f"limit rate {self.per_second}/second{burst}"


@dataclass(frozen=True)
class Log:
    """`log prefix "..." group N`: the packet to the NFLOG group, for whoever listens."""

    group: int
    prefix: str

    def text(self) -> str:
        return f'log prefix "{self.prefix}" group {self.group}'


Statement = Union[Match, Verdict, VerdictMap, Dnat, Masquerade, Reject, SetMark, SetTrace, UpdateSet, Limit, Log]


@dataclass(frozen=True)
class Rule:
    """A chain's rule: statements read left to right, as nft reads them."""

    chain: str
    statements: tuple[Statement, ...]
    comment: str | None = None

    def text(self) -> str:
        body = " ".join(statement.text() for statement in self.statements)
        return f'{body} comment "{self.comment}"' if self.comment else body


def rule(chain: str, *statements: Statement, comment: str | None = None) -> Rule:
    return Rule(chain, statements, comment)
