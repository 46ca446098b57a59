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
import json
import re
from collections.abc import Iterable

from podnet.errors import KernelError
from podnet.cni.hostns import HOST_NETNS
from podnet.kernel import nft

MASQ_TABLE = "podnet-cni"
GUARD_TABLE = "podnet-macspoof"
_MULTICAST = {4: "224.0.0.0/4", 6: "ff00::/8"}


def masq_chain(network: str) -> str:
    """nft identifiers are stricter than network names; keep them readable and unique."""
    readable = re.sub(r"[^A-Za-z0-9_]", "_", network)[:20]
    return f"masq_{readable}_{hashlib.sha1(network.encode()).hexdigest()[:8]}"


def _masq_skeleton(chain: str) -> str:
    return (f"table inet {MASQ_TABLE} {{\n"
            "\tmap masq4 { type ipv4_addr : verdict; }\n"
            "\tmap masq6 { type ipv6_addr : verdict; }\n"
            "\tchain postrouting { type nat hook postrouting priority srcnat; policy accept; }\n"
            f"\tchain {chain} {{ }}\n"
            "}\n")


def _element(address: str, chain: str | None) -> tuple[str, str]:
    ip = ipaddress.ip_interface(address).ip
    key = f"masq{ip.version}"
    return key, f"{ip} : jump {chain}" if chain else str(ip)


def render_add_masquerade(network: str, addresses: Iterable[str]) -> str:
    """Masquerade traffic from these addresses unless it stays in their subnet or is multicast."""
    chain = masq_chain(network)
    addresses = list(addresses)
    lines = [_masq_skeleton(chain),
             f"flush chain inet {MASQ_TABLE} postrouting",
             f"add rule inet {MASQ_TABLE} postrouting ip saddr vmap @masq4",
             f"add rule inet {MASQ_TABLE} postrouting ip6 saddr vmap @masq6",
             f"flush chain inet {MASQ_TABLE} {chain}"]
    for address in addresses:
        iface = ipaddress.ip_interface(address)
        family = "ip" if iface.version == 4 else "ip6"
        lines.append(f"add rule inet {MASQ_TABLE} {chain} {family} daddr {iface.network} return")
    for version in sorted({ipaddress.ip_interface(a).version for a in addresses}):
        family = "ip" if version == 4 else "ip6"
        lines.append(f"add rule inet {MASQ_TABLE} {chain} {family} daddr {_MULTICAST[version]} return")
    lines.append(f"add rule inet {MASQ_TABLE} {chain} masquerade")
    for address in addresses:
        key, element = _element(address, chain)
        lines.append(f"add element inet {MASQ_TABLE} {key} {{ {element} }}")
    return "\n".join(lines) + "\n"


def render_remove_masquerade(network: str, addresses: Iterable[str]) -> str:
    """Adding each element before deleting it makes the delete succeed whether or
    not it was there: nft 1.0.6 has no "destroy"."""
    chain = masq_chain(network)
    lines = [_masq_skeleton(chain)]
    for address in addresses:
        key, element = _element(address, chain)
        lines.append(f"add element inet {MASQ_TABLE} {key} {{ {element} }}")
        lines.append(f"delete element inet {MASQ_TABLE} {key} {{ {_element(address, None)[1]} }}")
    return "\n".join(lines) + "\n"


def render_masquerade_elements(network: str, addresses: Iterable[str]) -> str:
    chain = masq_chain(network)
    return "".join(f"add element inet {MASQ_TABLE} {key} {{ {element} }}\n"
                   for key, element in (_element(a, chain) for a in addresses))


def add_masquerade(network: str, addresses: list[str]) -> None:
    """Usually the network's chain is there already and one element is all it
    takes; the first container of a network (or a flushed table) sets it up."""
    try:
        nft.run_script(HOST_NETNS, render_masquerade_elements(network, addresses))
    except KernelError:
        nft.run_script(HOST_NETNS, render_add_masquerade(network, addresses))


def remove_masquerade(network: str, addresses: list[str]) -> None:
    """Without the table there is nothing to remove; with it, the elements go in one
    small transaction (the skeleton is only declared when that one fails)."""
    if not addresses:
        return
    script = render_remove_masquerade(network, addresses)
    try:
        nft.run_script(HOST_NETNS, script[len(_masq_skeleton(masq_chain(network))):])
    except KernelError:
        nft.run_script(HOST_NETNS, script)


_GUARD_SKELETON = (f"table bridge {GUARD_TABLE} {{\n"
                   "\tset guarded { type ifname; }\n"
                   "\tset allowed { type ifname . ether_addr; }\n"
                   "\tchain prerouting { type filter hook prerouting priority -300; policy accept; }\n"
                   "}\n")


def render_add_mac_guard(host_ifname: str, mac: str) -> str:
    """Frames entering from the container's veth must carry the container's MAC."""
    return (_GUARD_SKELETON
            + f"flush chain bridge {GUARD_TABLE} prerouting\n"
            + f"add rule bridge {GUARD_TABLE} prerouting iifname @guarded iifname . ether saddr != @allowed drop\n"
            + f'add element bridge {GUARD_TABLE} guarded {{ "{host_ifname}" }}\n'
            + f'add element bridge {GUARD_TABLE} allowed {{ "{host_ifname}" . {mac} }}\n')


def add_mac_guard(host_ifname: str, mac: str) -> None:
    nft.run_script(HOST_NETNS, render_add_mac_guard(host_ifname, mac))


def remove_mac_guard(host_ifname: str) -> None:
    listing = nft.list_json(HOST_NETNS, "set", "bridge", GUARD_TABLE, "allowed")
    macs = []
    try:
        for item in json.loads(listing or "{}").get("nftables", []):
            for element in item.get("set", {}).get("elem", []):
                name, mac = element["concat"]
                if name == host_ifname:
                    macs.append(mac)
    except (ValueError, KeyError, TypeError):
        pass
    script = _GUARD_SKELETON + f'add element bridge {GUARD_TABLE} guarded {{ "{host_ifname}" }}\n'
    script += f'delete element bridge {GUARD_TABLE} guarded {{ "{host_ifname}" }}\n'
    for mac in macs:
        script += f'delete element bridge {GUARD_TABLE} allowed {{ "{host_ifname}" . {mac} }}\n'
    nft.run_script(HOST_NETNS, script)
