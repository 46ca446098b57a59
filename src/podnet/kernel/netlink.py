"""Links, addresses and routes inside one namespace, over netlink.

A handle stays open for a batch of operations. Every operation is "ensure"
style: it states what must exist and does nothing when it already does.
Messages are pyroute2's; they travel over podnet.kernel.rtnl's synchronous socket.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from pyroute2.netlink import NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.ndmsg import ndmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from podnet.errors import KernelError
from podnet.kernel import netns
from podnet.kernel.route import RTPROT_PODNET, ForwardingEntry, Neighbour, Route
from podnet.kernel.rtnl import NetlinkFailure, RtnlSocket, message

_AF_INET = 2
_AF_INET6 = 10
_MAIN_TABLE = 254
_IFF_UP = 0x1
_IFF_PROMISC = 0x100
_RTN_UNICAST = 1
_RT_SCOPE_UNIVERSE, _RT_SCOPE_LINK, _RT_SCOPE_NOWHERE = 0, 253, 255
_RTM_NEWLINK, _RTM_DELLINK, _RTM_GETLINK = 16, 17, 18
_RTM_NEWADDR, _RTM_DELADDR, _RTM_GETADDR = 20, 21, 22
_RTM_NEWROUTE, _RTM_DELROUTE, _RTM_GETROUTE = 24, 25, 26
_RTM_NEWNEIGH, _RTM_DELNEIGH, _RTM_GETNEIGH = 28, 29, 30
_AF_BRIDGE = 7
_NUD_PERMANENT = 0x80
_NTF_SELF = 0x02
_RTNH_F_ONLINK = 0x04
_CREATE = NLM_F_CREATE | NLM_F_EXCL


def random_mac() -> str:
    """Locally administered and unicast, as the kernel's own random MACs are."""
    return ":".join(f"{b:02x}" for b in bytes([0x02]) + os.urandom(5))


def _netlink_socket() -> socket.socket:
    """A route-netlink socket belongs to the namespace it was made in, for good.

    Made on a thread that has entered the namespace, this costs a fraction of
    pyroute2's own NetNS, which forks a helper process for every handle.
    """
    return socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, socket.NETLINK_ROUTE)


def _family(address: str) -> int:
    return _AF_INET6 if ":" in address else _AF_INET


class Netns:
    """An open netlink handle on one network namespace: a podnet namespace by
    name, or (for CNI) a runtime's namespace by path, never the machine's own
    unless its operator allowed it (netns.path, netns.guard_root)."""

    def __init__(self, name: str, ns_path: str | None = None) -> None:
        self.name = name
        if ns_path is None:
            ns_path = str(netns.path(name))
            if not os.path.exists(ns_path):
                raise KernelError(f"network namespace {name} does not exist")
        self.path = ns_path
        sock = netns.run_in_path(ns_path, _netlink_socket)
        self._nl = RtnlSocket(sock)
        self._indexes: dict[str, int] = {}  # links are not renamed under a short-lived handle

    def close(self) -> None:
        self._nl.close()

    def _fail(self, what: str, err: NetlinkFailure) -> KernelError:
        return KernelError(f"{self.name}: {what}: {err.reason}")

    def _change(self, what: str, msg_type: int, msg: Any, flags: int = 0, tolerate: tuple[int, ...] = ()) -> None:
        try:
            self._nl.request(msg_type, msg, flags)
        except NetlinkFailure as err:
            if err.code not in tolerate:
                raise self._fail(what, err) from err

    # links

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

    def _name_of(self, index: int) -> str | None:
        link = self._get_link(index=index)
        return link.get("IFLA_IFNAME") if link is not None else None

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

    def ensure_bridge(self, ifname: str, mtu: int | None = None) -> int:
        if self.index(ifname) is None:
            # A MAC of its own keeps the bridge's from following whichever port joins first.
            attrs = [("IFLA_IFNAME", ifname), ("IFLA_ADDRESS", random_mac()),
                     ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "bridge")]})]
            self._change(f"create bridge {ifname}", _RTM_NEWLINK, message(ifinfmsg, attrs), _CREATE)
        if mtu:
            self.set_mtu(ifname, mtu)
        self.set_up(ifname)
        return self.require_index(ifname)

    def ensure_veth(self, ifname: str, peer: str, peer_namespace: Netns | str, mtu: int | None = None) -> None:
        """A veth pair with one end here and the other in peer_namespace (if missing)."""
        if self.index(ifname) is None:
            self.create_veth(ifname, peer, peer_namespace, mtu=mtu)

    def create_veth(self, ifname: str, peer: str, peer_namespace: Netns | str, *, mtu: int | None = None,
                    master: str | None = None, mac: str | None = None, peer_mac: str | None = None,
                    up: bool = False) -> None:
        """A new veth pair, one end here (optionally already on a bridge and up),
        the other in peer_namespace.

        Both ends are made in one netlink call straight into their namespaces, so
        no end ever passes through the root namespace, and no second call is
        needed to enslave or raise this end.
        """
        target = peer_namespace.path if isinstance(peer_namespace, Netns) else str(netns.path(peer_namespace))
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
            flags = _IFF_UP if up else 0
            self._change(f"create veth {ifname} <-> {target}/{peer}", _RTM_NEWLINK,
                         message(ifinfmsg, attrs, flags=flags, change=flags), _CREATE)
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

    def ensure_vxlan(self, ifname: str, vni: int, local: str, port: int, mac: str, mtu: int,
                     uplink: str | None = None) -> None:
        """A VXLAN device as flannel makes it: no learning (peers are programmed),
        its own MAC (peers' FDB entries point at it), the underlay MTU less 50."""
        if self.index(ifname) is None:
            data = [("IFLA_VXLAN_ID", vni), ("IFLA_VXLAN_LOCAL", local), ("IFLA_VXLAN_PORT", port),
                    ("IFLA_VXLAN_LEARNING", 0)]
            if uplink:
                data.append(("IFLA_VXLAN_LINK", self.require_index(uplink)))
            attrs = [("IFLA_IFNAME", ifname), ("IFLA_ADDRESS", mac), ("IFLA_MTU", mtu),
                     ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "vxlan"), ("IFLA_INFO_DATA", {"attrs": data})]})]
            self._change(f"create vxlan {ifname}", _RTM_NEWLINK, message(ifinfmsg, attrs), _CREATE)
        self.set_up(ifname)

    # neighbours and forwarding entries

    def neighbours(self, ifname: str) -> set[Neighbour]:
        """Permanent IPv4 neighbours on the link."""
        index = self.require_index(ifname)
        return {Neighbour(msg.get("NDA_DST"), msg.get("NDA_LLADDR"), ifname)
                for msg in self._nl.dump(_RTM_GETNEIGH, message(ndmsg, family=_AF_INET))
                if msg["ifindex"] == index and msg["state"] & _NUD_PERMANENT and msg.get("NDA_LLADDR")}

    def _neighbour(self, entry: Neighbour) -> Any:
        return message(ndmsg, [("NDA_DST", entry.ip), ("NDA_LLADDR", entry.mac)], family=_AF_INET,
                       ifindex=self.require_index(entry.dev), state=_NUD_PERMANENT)

    def forwarding_entries(self, ifname: str) -> set[ForwardingEntry]:
        """The device's own (NTF_SELF) FDB entries that send to a remote address."""
        index = self.require_index(ifname)
        return {ForwardingEntry(msg.get("NDA_LLADDR"), msg.get("NDA_DST"), ifname)
                for msg in self._nl.dump(_RTM_GETNEIGH, message(ndmsg, family=_AF_BRIDGE))
                if msg["ifindex"] == index and msg["flags"] & _NTF_SELF and msg.get("NDA_DST")}

    def _forwarding(self, entry: ForwardingEntry) -> Any:
        return message(ndmsg, [("NDA_LLADDR", entry.mac), ("NDA_DST", entry.dst)], family=_AF_BRIDGE,
                       ifindex=self.require_index(entry.dev), state=_NUD_PERMANENT, flags=_NTF_SELF)

    def sync_neighbours(self, ifname: str, desired: Iterable[Neighbour]) -> tuple[set[Neighbour], set[Neighbour]]:
        """Make the link's permanent neighbours exactly `desired`; returns (added, removed)."""
        return self._sync(set(desired), self.neighbours(ifname), self._neighbour, "neighbour")

    def sync_forwarding(self, ifname: str,
                        desired: Iterable[ForwardingEntry]) -> tuple[set[ForwardingEntry], set[ForwardingEntry]]:
        """Make the device's FDB entries exactly `desired`; returns (added, removed)."""
        return self._sync(set(desired), self.forwarding_entries(ifname), self._forwarding, "forwarding entry")

    def _sync(self, wanted: set[Any], present: set[Any], encode: Any, what: str) -> tuple[set[Any], set[Any]]:
        stale, missing = present - wanted, wanted - present
        for entry in sorted(stale):
            self._change(f"delete {what} {entry}", _RTM_DELNEIGH, encode(entry), tolerate=(errno.ENOENT,))
        for entry in sorted(missing):
            self._change(f"add {what} {entry}", _RTM_NEWNEIGH, encode(entry), NLM_F_CREATE | NLM_F_REPLACE)
        return missing, stale

    # addresses

    def addresses(self, ifname: str) -> set[str]:
        """Addresses on the link as "ip/prefix" strings."""
        index = self.require_index(ifname)
        return {f"{msg.get('IFA_ADDRESS')}/{msg['prefixlen']}"
                for msg in self._nl.dump(_RTM_GETADDR, message(ifaddrmsg))
                if msg["index"] == index}

    def _address(self, ifname: str, cidr: str) -> Any:
        iface = ipaddress.ip_interface(cidr)
        address = str(iface.ip)
        attrs: list[tuple[str, Any]] = [("IFA_ADDRESS", address)]
        if iface.version == 4:
            attrs.append(("IFA_LOCAL", address))
            if iface.network.prefixlen < 31:  # as `ip address add ... brd +`
                attrs.append(("IFA_BROADCAST", str(iface.network.broadcast_address)))
        return message(ifaddrmsg, attrs, family=_family(address), prefixlen=iface.network.prefixlen,
                       index=self.require_index(ifname))

    def ensure_address(self, ifname: str, cidr: str) -> None:
        """Add the address; one that is already there is fine."""
        self.add_address(ifname, cidr)

    def add_address(self, ifname: str, cidr: str) -> bool:
        """Add the address; False when it was there already (one request either way)."""
        try:
            self._nl.request(_RTM_NEWADDR, self._address(ifname, cidr), _CREATE)
        except NetlinkFailure as err:
            if err.code == errno.EEXIST:
                return False
            raise self._fail(f"add address {cidr} to {ifname}", err) from err
        return True

    def remove_address(self, ifname: str, cidr: str) -> None:
        self._change(f"remove address {cidr} from {ifname}", _RTM_DELADDR, self._address(ifname, cidr),
                     tolerate=(errno.EADDRNOTAVAIL, errno.ENOENT))

    # routes

    def routes(self, *, protocol: int | None = RTPROT_PODNET) -> set[Route]:
        """Main-table unicast routes, by default only the ones podnet installed."""
        names = {link["index"]: link.get("IFLA_IFNAME")
                 for link in self._nl.dump(_RTM_GETLINK, message(ifinfmsg))}
        found = set()
        for family in (_AF_INET, _AF_INET6):
            for msg in self._nl.dump(_RTM_GETROUTE, message(rtmsg, family=family)):
                table = msg.get("RTA_TABLE") or msg["table"]
                if table != _MAIN_TABLE or msg["type"] != _RTN_UNICAST:
                    continue
                if protocol is not None and msg["proto"] != protocol:
                    continue
                dst = msg.get("RTA_DST")
                dst = f"{dst}/{msg['dst_len']}" if dst else "default"
                found.add(Route(dst=dst, via=msg.get("RTA_GATEWAY"), dev=names.get(msg.get("RTA_OIF")),
                                onlink=bool(msg["flags"] & _RTNH_F_ONLINK)))
        return found

    def _route(self, route: Route, protocol: int, scope: int | None = None) -> Any:
        attrs: list[tuple[str, Any]] = []
        if route.dst == "default":
            family, dst_len = _family(route.via or "0.0.0.0"), 0
        else:
            network = ipaddress.ip_network(route.dst, strict=False)
            family, dst_len = (_AF_INET6 if network.version == 6 else _AF_INET), network.prefixlen
            if dst_len:
                attrs.append(("RTA_DST", str(network.network_address)))
        if route.via:
            attrs.append(("RTA_GATEWAY", route.via))
        if route.dev:
            attrs.append(("RTA_OIF", self.require_index(route.dev)))
        if scope is None:  # as iproute2: a route with no gateway reaches its destination on the link
            scope = _RT_SCOPE_UNIVERSE if route.via or not dst_len else _RT_SCOPE_LINK
        return message(rtmsg, attrs, family=family, dst_len=dst_len, table=_MAIN_TABLE, proto=protocol,
                       scope=scope, type=_RTN_UNICAST, flags=_RTNH_F_ONLINK if route.onlink else 0)

    def add_route(self, route: Route, *, protocol: int = RTPROT_PODNET) -> None:
        self._change(f"add route {route}", _RTM_NEWROUTE, self._route(route, protocol),
                     NLM_F_CREATE | NLM_F_REPLACE)

    def delete_route(self, route: Route, *, protocol: int = RTPROT_PODNET) -> None:
        if route.dev and self.index(route.dev) is None:
            return  # the route went away with its device
        self._change(f"delete route {route}", _RTM_DELROUTE, self._route(route, protocol, _RT_SCOPE_NOWHERE),
                     tolerate=(errno.ESRCH, errno.ENOENT))

    def sync_routes(self, desired: Iterable[Route], *, protocol: int = RTPROT_PODNET) -> tuple[set[Route], set[Route]]:
        """Make podnet's routes exactly the desired set; returns (added, removed).

        A desired route without a device is met by the same route on whatever
        device the kernel chose for it.
        """
        present = {(route.dst, route.via): route for route in self.routes(protocol=protocol)}
        wanted = {(route.dst, route.via): route for route in desired}
        stale = {
            route for key, route in present.items()
            if key not in wanted or wanted[key].dev not in (None, route.dev)
        }
        missing = {
            route for key, route in wanted.items()
            if key not in present or present[key] in stale
        }
        for route in sorted(stale):
            self.delete_route(route, protocol=protocol)
        for route in sorted(missing):
            self.add_route(route, protocol=protocol)
        return missing, stale


@contextmanager
def open_namespace(name: str) -> Iterator[Netns]:
    handle = Netns(name)
    try:
        yield handle
    finally:
        handle.close()


@contextmanager
def open_path(ns_path: str, purpose: str) -> Iterator[Netns]:
    """A runtime's namespace by path (CNI_NETNS), or "/proc/thread-self/ns/net" for
    our own.

    Refuses the machine's root namespace, so a plugin run by mistake on the host
    of a lab machine changes nothing there."""
    if not os.path.exists(ns_path):
        raise KernelError(f"network namespace {ns_path} does not exist")
    netns.guard_root(ns_path, purpose)
    handle = Netns(ns_path, ns_path)
    try:
        yield handle
    finally:
        handle.close()


def own_routes() -> set[Route]:
    """The routes podnet installed in the caller's own namespace, read only: how
    `podnet node status` looks at a real machine without the agent's permission
    to change it."""
    handle = Netns("own", netns.OWN)
    try:
        return handle.routes()
    finally:
        handle.close()
