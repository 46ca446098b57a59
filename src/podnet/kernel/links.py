"""Links in one namespace: bridges and veth pairs, up and down, MTU, master,
delete, and what a link is (index, MAC, kind). The other parts of a namespace's
handle (vxlan, neighbours, addresses, routes) name links by the indexes found here.
"""

from __future__ import annotations

import errno
import os
from typing import Any

from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

from podnet.errors import KernelError
from podnet.kernel import netns
from podnet.kernel.rtnl import CREATE, NetlinkFailure, RtnlHandle, message

_RTM_NEWLINK, _RTM_DELLINK, _RTM_GETLINK = 16, 17, 18
_IFF_UP = 0x1
_IFF_PROMISC = 0x100


def random_mac() -> str:
    """Locally administered and unicast, as the kernel's own random MACs are."""
    return ":".join(f"{b:02x}" for b in bytes([0x02]) + os.urandom(5))


class Links(RtnlHandle):
    _indexes: dict[str, int]  # links are not renamed under a short-lived handle

    def index(self, ifname: str) -> int | None:
        if ifname in self._indexes:
            return self._indexes[ifname]
        info = self.link_info(ifname)
        return info["index"] if info else None  # type: ignore[return-value]

    def require_index(self, ifname: str) -> int:
        index = self.index(ifname)
        if index is None:
            raise KernelError(f"{self.name}: no link named {ifname}")
        return index

    def _get_link(self, **key: Any) -> Any:
        attrs = [("IFLA_IFNAME", key["ifname"])] if "ifname" in key else []
        try:
            (link,) = self._nl.request(_RTM_GETLINK, message(ifinfmsg, attrs, index=key.get("index", 0)))
        except NetlinkFailure as err:
            if err.code == errno.ENODEV:
                return None
            raise self._fail(f"read link {key.get('ifname') or 'index ' + str(key.get('index'))}", err) from err
        return link

    def link_kind(self, ifname: str) -> str | None:
        info = self.link_info(ifname)
        return info["kind"] if info else None  # type: ignore[return-value]

    def link_info(self, ifname: str) -> dict[str, object] | None:
        """index, mac, mtu, master (name), kind and up-ness of a link, or None."""
        link = self._get_link(ifname=ifname)
        if link is None:
            return None
        info = link.get("IFLA_LINKINFO")
        master = link.get("IFLA_MASTER")
        self._indexes[ifname] = link["index"]
        return {
            "index": link["index"],
            "mac": link.get("IFLA_ADDRESS"),
            "mtu": link.get("IFLA_MTU"),
            "master": self._name_of(master) if master else None,
            "kind": info.get("IFLA_INFO_KIND") if info else None,
            "up": bool(link["flags"] & _IFF_UP),
            "peer_index": link.get("IFLA_LINK"),
        }

    def link_names(self) -> dict[int, str]:
        """Every link's name by its index, in one dump."""
        return {link["index"]: link.get("IFLA_IFNAME") for link in self._nl.dump(_RTM_GETLINK, message(ifinfmsg))}

    def _name_of(self, index: int) -> str | None:
        link = self._get_link(index=index)
        return link.get("IFLA_IFNAME") if link is not None else None

    def _create_link(self, what: str, attrs: list[tuple[str, Any]], flags: int = 0) -> None:
        self._change(f"create {what}", _RTM_NEWLINK, message(ifinfmsg, attrs, flags=flags, change=flags), CREATE)

    def _set_link(self, ifname: str, attrs: list[tuple[str, Any]] | None = None, **fields: Any) -> None:
        msg = message(ifinfmsg, attrs, index=self.require_index(ifname), **fields)
        self._change(f"change link {ifname}", _RTM_NEWLINK, msg)

    def set_promiscuous(self, ifname: str) -> None:
        self._set_link(ifname, flags=_IFF_PROMISC, change=_IFF_PROMISC)

    def set_hairpin(self, ifname: str) -> None:
        """Let frames leave a bridge port they came in on (a pod reaching itself)."""
        port = {"attrs": [("IFLA_INFO_SLAVE_KIND", "bridge"),
                          ("IFLA_INFO_SLAVE_DATA", {"attrs": [("IFLA_BRPORT_MODE", 1)]})]}
        self._set_link(ifname, [("IFLA_LINKINFO", port)])

    def set_mtu(self, ifname: str, mtu: int) -> None:
        self._set_link(ifname, [("IFLA_MTU", mtu)])

    def ensure_bridge(self, ifname: str, mtu: int | None = None, *, up: bool = True) -> int:
        """up=False leaves it down, for settings that must come before its first
        address (a link-local address is made, and checked for duplicates, on up)."""
        if self.index(ifname) is None:
            # A MAC of its own keeps the bridge's from following whichever port joins first.
            self._create_link(f"bridge {ifname}", [("IFLA_IFNAME", ifname), ("IFLA_ADDRESS", random_mac()),
                                                   ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "bridge")]})])
        if mtu:
            self.set_mtu(ifname, mtu)
        if up:
            self.set_up(ifname)
        return self.require_index(ifname)

    def ensure_veth(self, ifname: str, peer: str, peer_namespace: Links | str, mtu: int | None = None) -> None:
        """A veth pair with one end here and the other in peer_namespace (if missing)."""
        if self.index(ifname) is None:
            self.create_veth(ifname, peer, peer_namespace, mtu=mtu)

    def create_veth(self, ifname: str, peer: str, peer_namespace: Links | str, *, mtu: int | None = None,
                    master: str | None = None, mac: str | None = None, peer_mac: str | None = None,
                    up: bool = False) -> None:
        """A new veth pair, one end here (optionally already on a bridge and up),
        the other in peer_namespace (an open handle, or a podnet namespace's name).

        Both ends are made in one netlink call straight into their namespaces, so
        no end ever passes through the root namespace, and no second call is
        needed to enslave or raise this end.
        """
        target = str(netns.path(peer_namespace)) if isinstance(peer_namespace, str) else peer_namespace.path
        fd = os.open(target, os.O_RDONLY | os.O_CLOEXEC)
        try:
            peer_attrs: list[tuple[str, Any]] = [("IFLA_IFNAME", peer), ("IFLA_NET_NS_FD", fd)]
            attrs: list[tuple[str, Any]] = [("IFLA_IFNAME", ifname)]
            if mtu:
                peer_attrs.append(("IFLA_MTU", mtu))
                attrs.append(("IFLA_MTU", mtu))
            if peer_mac:
                peer_attrs.append(("IFLA_ADDRESS", peer_mac))
            if mac:
                attrs.append(("IFLA_ADDRESS", mac))
            if master:
                attrs.append(("IFLA_MASTER", self.require_index(master)))
            veth = {"attrs": [("IFLA_INFO_KIND", "veth"),
                              ("IFLA_INFO_DATA", {"attrs": [("VETH_INFO_PEER", {"attrs": peer_attrs})]})]}
            attrs.append(("IFLA_LINKINFO", veth))
            self._create_link(f"veth {ifname} <-> {target}/{peer}", attrs, flags=_IFF_UP if up else 0)
        finally:
            os.close(fd)

    def set_master(self, ifname: str, master: str) -> None:
        self._set_link(ifname, [("IFLA_MASTER", self.require_index(master))])

    def set_up(self, ifname: str) -> None:
        self._set_link(ifname, flags=_IFF_UP, change=_IFF_UP)

    def set_down(self, ifname: str) -> None:
        self._set_link(ifname, flags=0, change=_IFF_UP)

    def delete_link(self, ifname: str) -> None:
        index = self.index(ifname)
        if index is None:
            return
        self._indexes.pop(ifname, None)
        self._change(f"delete link {ifname}", _RTM_DELLINK, message(ifinfmsg, index=index), tolerate=(errno.ENODEV,))
