"""kube-proxy's iptables mode, written as kube-proxy writes it: one
`iptables-restore --noflush` per sync (iptables-nft here, so the rules land in
the namespace's nf_tables `ip nat` and `ip filter` tables, beside podnet's own),
and the built-in chains' jumps into ours added once when missing."""

from __future__ import annotations

from collections.abc import Iterable

from podnet.errors import KernelError
from podnet.kernel import netns

RESTORE = "iptables-nft-restore"
IPTABLES = "iptables-nft"


def restore(namespace: str, text: str) -> None:
    """Both tables' chains in one transaction; the chains declared are emptied first."""
    done = netns.run(namespace, [RESTORE, "--noflush"], input=text, check=False, timeout=120)
    if done.returncode != 0:
        raise KernelError(f"{RESTORE} in {namespace}: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")


def ensure_jumps(namespace: str, jumps: Iterable[tuple[str, str, str, str]]) -> None:
    """(table, built-in chain, our chain, comment): each jump added when it is not there."""
    for table, chain, target, comment in jumps:
        rule = ["-m", "comment", "--comment", comment, "-j", target]
        if netns.run(namespace, [IPTABLES, "-t", table, "-C", chain, *rule], check=False).returncode != 0:
            netns.run(namespace, [IPTABLES, "-t", table, "-I", chain, *rule])


def delete_chains(namespace: str, table: str, chains: Iterable[str]) -> None:
    """Chains of ours no longer wanted: emptied and removed in one restore."""
    chains = list(chains)
    if chains:
        lines = [f"*{table}", *(f":{chain} - [0:0]" for chain in chains), *(f"-X {chain}" for chain in chains),
                 "COMMIT"]
        restore(namespace, "\n".join(lines) + "\n")


class IptablesWriter:
    """The three writes above, for one namespace: what the iptables-mode proxy is handed."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace

    def restore(self, text: str) -> None:
        restore(self.namespace, text)

    def ensure_jumps(self, jumps: Iterable[tuple[str, str, str, str]]) -> None:
        ensure_jumps(self.namespace, jumps)

    def delete_chains(self, table: str, chains: Iterable[str]) -> None:
        delete_chains(self.namespace, table, chains)
