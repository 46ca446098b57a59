"""nftables state the bridge plugin keeps on the host: masquerade (ipMasq) and
MAC spoof checks (macspoofchk).

One table per concern, shared by all networks; each container adds map or set
elements, so the packet path costs one lookup however many containers there are,
and DEL removes exactly its own elements (the reference leaves its masquerade
chains behind when the netns is gone: containernetworking/plugins#810).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Iterable

from podnet.errors import KernelError
from podnet.kernel.nftables import Chain, Element, Map, Nftables, Set, Table, Transaction, base_chain, hooks
from podnet.kernel.nftables.rules import (DROP, ETHER_SADDR, IIFNAME, RETURN, Masquerade, SetRef, VerdictMap, concat,
                                          daddr, differs, jump, match, rule, saddr)

MASQ_TABLE = Table("inet", hooks.CNI_MASQUERADE)
GUARD_TABLE = Table("bridge", hooks.CNI_MAC_GUARD)
_MULTICAST = {4: "224.0.0.0/4", 6: "ff00::/8"}
_MASQ_MAPS = {4: Map("masq4", "ipv4_addr", "verdict"), 6: Map("masq6", "ipv6_addr", "verdict")}
_GUARD_SETS = (Set("guarded", "ifname"), Set("allowed", "ifname . ether_addr"))


def masq_chain(network: str) -> str:
    """nft identifiers are stricter than network names; keep them readable and unique."""
    readable = re.sub(r"[^A-Za-z0-9_]", "_", network)[:20]
    return f"masq_{readable}_{hashlib.sha1(network.encode()).hexdigest()[:8]}"


def _missing(err: KernelError) -> bool:
    """The one failure a first container (or a flushed host) explains: the table,
    chain or map is not there yet."""
    return "No such file or directory" in str(err)


def _element(address: str, chain: str | None = None) -> Element:
    ip = ipaddress.ip_interface(address).ip
    return Element(_MASQ_MAPS[ip.version].name, (str(ip),), jump(chain) if chain else None)


def masquerade_setup(network: str, addresses: Iterable[str]) -> Transaction:
    """Masquerade traffic from these addresses unless it stays in their subnet or is multicast."""
    chain = masq_chain(network)
    addresses = list(addresses)
    postrouting = base_chain(MASQ_TABLE, "postrouting")
    tx = Transaction(MASQ_TABLE).add(MASQ_TABLE, *_MASQ_MAPS.values(), postrouting, Chain(chain))
    tx.flush(postrouting).add(*(rule("postrouting", VerdictMap(saddr(v), SetRef(m.name))) for v, m in _MASQ_MAPS.items()))
    tx.flush(Chain(chain))
    for address in addresses:
        iface = ipaddress.ip_interface(address)
        tx.add(rule(chain, match(daddr(iface.version), str(iface.network)), RETURN))
    for version in sorted({ipaddress.ip_interface(a).version for a in addresses}):
        tx.add(rule(chain, match(daddr(version), _MULTICAST[version]), RETURN))
    tx.add(rule(chain, Masquerade()))
    return tx.add_elements(_element(address, chain) for address in addresses)


def masquerade_elements(network: str, addresses: Iterable[str]) -> Transaction:
    chain = masq_chain(network)
    return Transaction(MASQ_TABLE).add_elements(_element(address, chain) for address in addresses)


def masquerade_removal(network: str, addresses: Iterable[str]) -> Transaction:
    """Destroyed, not deleted: DEL succeeds whether or not they were there."""
    chain = masq_chain(network)
    return Transaction(MASQ_TABLE).destroy(*(_element(address, chain) for address in addresses))


def add_masquerade(nft: Nftables, network: str, addresses: list[str]) -> None:
    """Usually the network's chain is there already and one element is all it
    takes; the first container of a network (or a flushed table) sets it up."""
    try:
        nft.run(masquerade_elements(network, addresses))
    except KernelError as err:
        if not _missing(err):
            raise
        nft.run(masquerade_setup(network, addresses))


def remove_masquerade(nft: Nftables, network: str, addresses: list[str]) -> None:
    """Without the table or the network's chain there is nothing to remove."""
    if not addresses:
        return
    try:
        nft.run(masquerade_removal(network, addresses))
    except KernelError as err:
        if not _missing(err):
            raise


def _guard_skeleton() -> Transaction:
    return Transaction(GUARD_TABLE).add(GUARD_TABLE, *_GUARD_SETS, base_chain(GUARD_TABLE, "prerouting"))


def _quoted(ifname: str) -> str:
    return f'"{ifname}"'


def mac_guard(host_ifname: str, mac: str) -> Transaction:
    """Frames entering from the container's veth must carry the container's MAC."""
    prerouting = base_chain(GUARD_TABLE, "prerouting")
    tx = _guard_skeleton().flush(prerouting)
    tx.add(rule("prerouting", match(IIFNAME, SetRef("guarded")),
                differs(concat(IIFNAME, ETHER_SADDR), SetRef("allowed")), DROP))
    return tx.add(Element("guarded", (_quoted(host_ifname),)), Element("allowed", (_quoted(host_ifname), mac)))


def add_mac_guard(nft: Nftables, host_ifname: str, mac: str) -> None:
    nft.run(mac_guard(host_ifname, mac))


def remove_mac_guard(nft: Nftables, host_ifname: str) -> None:
    macs = [e.key[1] for e in nft.list_elements(GUARD_TABLE, "allowed") if e.key[0].strip('"') == host_ifname]
    tx = _guard_skeleton().destroy(Element("guarded", (_quoted(host_ifname),)))
    nft.run(tx.delete(*(Element("allowed", (_quoted(host_ifname), mac)) for mac in macs)))
