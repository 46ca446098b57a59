"""The proxy's table per IP family: what differs between IPv4's and IPv6's.

IPv6 gets a table of its own (`ip6 podnet-proxy`) beside IPv4's (`ip
podnet-proxy`), rendered by the same function (ruleset.py) from the views of its
family, as kube-proxy's nftables mode runs one proxier per family over `ip
kube-proxy` and `ip6 kube-proxy`. Rather than one `inet` table because: the maps
are typed by address (ipv4_addr or ipv6_addr), so an inet table would still need
every map twice plus a `meta nfproto` split in front of each lookup, and DNAT
names its family anyway; a sync of one family then rewrites (or, on a chain
change, replaces) only that family's table; and the IPv4 table stays byte for
byte what it was, so IPv4-only clusters load exactly the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass

from podnet.kernel.nftables import Map, Set, Table, hooks
from podnet.kernel.nftables.rules import IP6_DADDR, IP6_SADDR, IP_DADDR, IP_SADDR, Field
from podnet.model.families import IPV4, IPV6


@dataclass(frozen=True)
class Family:
    """What differs between the IPv4 and the IPv6 table: the rest is one render."""

    name: str  # IPv4, IPv6
    table: Table
    nft: str  # nft's name of the family: dnat ip, dnat ip6
    saddr: Field
    daddr: Field
    address_type: str  # a set's type of address
    loopback: str  # node ports do not answer on it (kube-proxy's --nodeport-addresses leave it out)


FAMILIES = {f.name: f for f in (
    Family(IPV4, Table("ip", hooks.PROXY), "ip", IP_SADDR, IP_DADDR, "ipv4_addr", "127.0.0.0/8"),
    Family(IPV6, Table("ip6", hooks.PROXY), "ip6", IP6_SADDR, IP6_DADDR, "ipv6_addr", "::1"),
)}
TABLE = FAMILIES[IPV4].table
TABLES = {name: f.table for name, f in FAMILIES.items()}


def collections(family: Family) -> tuple[Set, ...]:
    """The table's maps and sets; their elements are what a sync changes."""
    address, daddr = family.address_type, family.daddr.text()
    return (
        Set("cluster_ips", address),
        Set("external_ips", address),
        Map("services", f"{address} . inet_proto . inet_service", "verdict"),
        Map("backends", f"{daddr} . meta l4proto . th dport . numgen random mod 1", f"{daddr} . th dport", typeof=True),
        Map("node_ports", "inet_proto . inet_service", "verdict"),
        Map("node_port_backends", "meta l4proto . th dport . numgen random mod 1", f"{daddr} . th dport",
            typeof=True),
        Map("no_endpoints", f"{address} . inet_proto . inet_service", "verdict"),
        Map("no_endpoint_node_ports", "inet_proto . inet_service", "verdict"),
        Set("hairpin", f"{address} . {address}"),
    )
