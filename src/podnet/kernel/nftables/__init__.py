"""nftables as typed data: objects, rules, transactions; the two backends that
load them into the kernel (nfnl.py: netlink batches packed by batch.py, the one
the nodes use; nft.py: nft scripts, for what the packer does not build and for
listings), the Fake that applies them in memory, and a tracer over the Fake.
Backends share nothing but the Transaction and `list_elements`.
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
