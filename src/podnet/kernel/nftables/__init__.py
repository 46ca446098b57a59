"""nftables as typed data: objects, rules, transactions; the nft backend that
loads them, the Fake that applies them in memory, and a tracer over the Fake.

A third backend (netlink batches of NFT_MSG_* messages) can join by taking the
same Transaction: backends share nothing but that and `list_elements`.
"""

from __future__ import annotations

from typing import Protocol

from podnet.kernel.nftables.objects import Chain, Element, Map, Set, Table, base_chain
from podnet.kernel.nftables.transaction import Transaction


class Nftables(Protocol):
    """What code above the kernel needs of nftables in one namespace."""

    def run(self, tx: Transaction) -> None: ...

    def list_elements(self, table: Table, set_name: str, kind: str = "set") -> list[Element]: ...


__all__ = ["Chain", "Element", "Map", "Nftables", "Set", "Table", "Transaction", "base_chain"]
