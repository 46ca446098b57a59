"""kube-proxy's iptables mode, written as kube-proxy writes it: one
`iptables-restore --noflush` per sync, and the built-in chains' jumps into ours
added once when missing.

Either of iptables' two backends, as a node has one or the other: nft (Debian's
default: the rules land in the namespace's nf_tables `ip nat` and `ip filter`
tables, beside podnet's own) or legacy (x_tables, whose restore swaps each table
whole: 10 000 services load in seconds where iptables-nft-restore takes minutes).
IPv6 is ip6tables, the same commands' IPv6 twins, on the same backend."""

from __future__ import annotations

from collections.abc import Iterable

from podnet.errors import KernelError
from podnet.kernel import netns

BACKENDS = {"nft": ("iptables-nft-restore", "iptables-nft"), "legacy": ("iptables-legacy-restore", "iptables-legacy")}
IP6_BACKENDS = {"nft": ("ip6tables-nft-restore", "ip6tables-nft"),
                "legacy": ("ip6tables-legacy-restore", "ip6tables-legacy")}
DEFAULT_BACKEND = next(iter(BACKENDS))
IPV4, IPV6 = "IPv4", "IPv6"  # model/families.py's names, which this floor cannot import


def commands(backend: str, family: str = IPV4) -> tuple[str, str]:
    """(restore, iptables) of the backend, for IPv4 or (ip6tables) IPv6."""
    return (IP6_BACKENDS if family == IPV6 else BACKENDS)[backend]


def restore(namespace: str, text: str, backend: str = "nft", family: str = IPV4) -> None:
    """Both tables' chains in one transaction; the chains declared are emptied first."""
    command = commands(backend, family)[0]
    done = netns.run(namespace, [command, "--noflush"], input=text, check=False, timeout=120)
    if done.returncode != 0:
        raise KernelError(f"{command} in {namespace}: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")


def ensure_jumps(namespace: str, jumps: Iterable[tuple[str, str, str, str]], backend: str = "nft",
                 family: str = IPV4) -> None:
    """(table, built-in chain, our chain, comment): each jump added when it is not there."""
    iptables = commands(backend, family)[1]
    for table, chain, target, comment in jumps:
        rule = ["-m", "comment", "--comment", comment, "-j", target]
        if netns.run(namespace, [iptables, "-t", table, "-C", chain, *rule], check=False).returncode != 0:
            netns.run(namespace, [iptables, "-t", table, "-I", chain, *rule])


def delete_chains(namespace: str, table: str, chains: Iterable[str], backend: str = "nft",
                  family: str = IPV4) -> None:
    """Chains of ours no longer wanted: emptied and removed in one restore."""
    chains = list(chains)
    if chains:
        lines = [f"*{table}", *(f":{chain} - [0:0]" for chain in chains), *(f"-X {chain}" for chain in chains),
                 "COMMIT"]
        restore(namespace, "\n".join(lines) + "\n", backend, family)


class IptablesWriter:
    """The three writes above, for one namespace, backend and family: what the
    iptables-mode proxy is handed."""

    def __init__(self, namespace: str, backend: str = DEFAULT_BACKEND, family: str = IPV4) -> None:
        if backend not in BACKENDS:
            raise KernelError(f"iptables backend {backend!r} is not {' or '.join(BACKENDS)}")
        if family not in (IPV4, IPV6):
            raise KernelError(f"iptables family {family!r} is not {IPV4} or {IPV6}")
        self.namespace = namespace
        self.backend = backend
        self.family = family

    def for_family(self, family: str) -> IptablesWriter:
        """The same namespace and backend, writing the other family's tables (ip6tables for IPv6)."""
        return IptablesWriter(self.namespace, self.backend, family)

    def restore(self, text: str) -> None:
        restore(self.namespace, text, self.backend, self.family)

    def ensure_jumps(self, jumps: Iterable[tuple[str, str, str, str]]) -> None:
        ensure_jumps(self.namespace, jumps, self.backend, self.family)

    def delete_chains(self, table: str, chains: Iterable[str]) -> None:
        delete_chains(self.namespace, table, chains, self.backend, self.family)
