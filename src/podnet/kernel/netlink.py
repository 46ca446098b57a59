"""Links, addresses and routes inside one namespace, over netlink (pyroute2).

A handle stays open for a batch of operations, because opening a namespace
costs more than most of the operations done in it. Every operation is "ensure"
style: it states what must exist and does nothing when it already does.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from podnet.errors import KernelError
from podnet.kernel import netns
from podnet.kernel.route import RTPROT_PODNET, Route

_AF_INET = 2
_AF_INET6 = 10
_MAIN_TABLE = 254


def random_mac() -> str:
    """Locally administered and unicast, as the kernel's own random MACs are."""
    return ":".join(f"{b:02x}" for b in bytes([0x02]) + os.urandom(5))


def _netlink_socket() -> socket.socket:
    """A route-netlink socket belongs to the namespace it was made in, for good.

    Made on a thread that has entered the namespace, this costs a fraction of
    pyroute2's own NetNS, which forks a helper process for every handle.
    """
    return socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, socket.NETLINK_ROUTE)


class Namespace:
    """An open netlink handle on one network namespace: a podnet namespace by
    name, or (for CNI) a runtime's namespace by path, never the machine's own."""

    def __init__(self, name: str, ns_path: str | None = None) -> None:
        self.name = name
        if ns_path is None:
            netns.check_name(name)
            if not netns.exists(name):
                raise KernelError(f"network namespace {name} does not exist")
            ns_path = str(netns.path(name))
        self.path = ns_path
        self._nl = IPRoute(use_socket=netns.run_in_path(ns_path, _netlink_socket))
        self._indexes: dict[str, int] = {}  # links are not renamed under a short-lived handle

    def close(self) -> None:
        self._nl.close()

    def _fail(self, what: str, err: NetlinkError) -> KernelError:
        return KernelError(f"{self.name}: {what}: {err.args[1] if len(err.args) > 1 else err}")

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

    def link_kind(self, ifname: str) -> str | None:
        index = self.index(ifname)
        if index is None:
            return None
        (link,) = self._nl.get_links(index)
        info = link.get("IFLA_LINKINFO")
        return info.get("IFLA_INFO_KIND") if info else None

    def link_info(self, ifname: str) -> dict[str, object] | None:
        """index, mac, mtu, master (name), kind and up-ness of a link, or None."""
        try:
            (link,) = self._nl.link("get", ifname=ifname)
        except NetlinkError as err:
            if err.code == errno.ENODEV:
                return None
            raise self._fail(f"read link {ifname}", err) from err
        info = link.get("IFLA_LINKINFO")
        master = link.get("IFLA_MASTER")
        self._indexes[ifname] = link["index"]
        return {
            "index": link["index"],
            "mac": link.get("IFLA_ADDRESS"),
            "mtu": link.get("IFLA_MTU"),
            "master": self._name_of(master) if master else None,
            "kind": info.get("IFLA_INFO_KIND") if info else None,
            "up": bool(link["flags"] & 1),
            "peer_index": link.get("IFLA_LINK"),
        }

    def _name_of(self, index: int) -> str | None:
        try:
            (link,) = self._nl.get_links(index)
        except NetlinkError:
            return None
        return link.get("IFLA_IFNAME")

    def set_promiscuous(self, ifname: str) -> None:
        iff_promisc = 0x100
        self._nl.link("set", index=self.require_index(ifname), flags=iff_promisc, change=iff_promisc)

    def set_hairpin(self, ifname: str) -> None:
        """Let frames leave a bridge port they came in on (a pod reaching itself)."""
        self._nl.brport("set", index=self.require_index(ifname), mode=1)

    def remove_address(self, ifname: str, cidr: str) -> None:
        iface = ipaddress.ip_interface(cidr)
        try:
            self._nl.addr("del", index=self.require_index(ifname), address=str(iface.ip),
                          prefixlen=iface.network.prefixlen)
        except NetlinkError as err:
            if err.code not in (errno.EADDRNOTAVAIL, errno.ENOENT):
                raise self._fail(f"remove address {cidr} from {ifname}", err) from err

    def ensure_bridge(self, ifname: str, mtu: int | None = None) -> int:
        if self.index(ifname) is None:
            try:
                # A MAC of its own keeps the bridge's from following whichever port joins first.
                self._nl.link("add", ifname=ifname, kind="bridge", address=random_mac())
            except NetlinkError as err:
                raise self._fail(f"create bridge {ifname}", err) from err
        if mtu:
            self._nl.link("set", index=self.require_index(ifname), mtu=mtu)
        self.set_up(ifname)
        return self.require_index(ifname)

    def ensure_veth(self, ifname: str, peer: str, peer_namespace: Namespace | str, mtu: int | None = None) -> None:
        """A veth pair with one end here and the other in peer_namespace (if missing)."""
        if self.index(ifname) is None:
            self.create_veth(ifname, peer, peer_namespace, mtu=mtu)

    def create_veth(self, ifname: str, peer: str, peer_namespace: Namespace | str, *, mtu: int | None = None,
                    master: str | None = None, mac: str | None = None, peer_mac: str | None = None,
                    up: bool = False) -> None:
        """A new veth pair, one end here (optionally already on a bridge and up),
        the other in peer_namespace.

        Both ends are made in one netlink call straight into their namespaces, so
        no end ever passes through the root namespace, and no second call is
        needed to enslave or raise this end.
        """
        target = peer_namespace.path if isinstance(peer_namespace, Namespace) else str(netns.path(peer_namespace))
        fd = os.open(target, os.O_RDONLY | os.O_CLOEXEC)
        peer_spec: dict[str, object] = {"ifname": peer, "net_ns_fd": fd}
        options: dict[str, object] = {}
        if mtu:
            peer_spec["mtu"] = mtu
            options["mtu"] = mtu
        if peer_mac:
            peer_spec["address"] = peer_mac
        if mac:
            options["address"] = mac
        if master:
            options["master"] = self.require_index(master)
        if up:
            options["state"] = "up"
        try:
            self._nl.link("add", ifname=ifname, kind="veth", peer=peer_spec, **options)
        except NetlinkError as err:
            raise self._fail(f"create veth {ifname} <-> {target}/{peer}", err) from err
        finally:
            os.close(fd)

    def set_master(self, ifname: str, master: str) -> None:
        self._nl.link("set", index=self.require_index(ifname), master=self.require_index(master))

    def set_up(self, ifname: str) -> None:
        self._nl.link("set", index=self.require_index(ifname), state="up")

    def set_down(self, ifname: str) -> None:
        self._nl.link("set", index=self.require_index(ifname), state="down")

    def delete_link(self, ifname: str) -> None:
        index = self.index(ifname)
        if index is None:
            return
        self._indexes.pop(ifname, None)
        try:
            self._nl.link("del", index=index)
        except NetlinkError as err:
            if err.code != errno.ENODEV:
                raise self._fail(f"delete link {ifname}", err) from err

    # addresses

    def addresses(self, ifname: str) -> set[str]:
        """Addresses on the link as "ip/prefix" strings."""
        found = set()
        for msg in self._nl.get_addr(index=self.require_index(ifname)):
            found.add(f"{msg.get('IFA_ADDRESS')}/{msg['prefixlen']}")
        return found

    def ensure_address(self, ifname: str, cidr: str) -> None:
        """Add the address; one that is already there is fine (EEXIST)."""
        iface = ipaddress.ip_interface(cidr)
        try:
            self._nl.addr(
                "add",
                index=self.require_index(ifname),
                address=str(iface.ip),
                prefixlen=iface.network.prefixlen,
            )
        except NetlinkError as err:
            if err.code != errno.EEXIST:
                raise self._fail(f"add address {cidr} to {ifname}", err) from err

    # routes

    def routes(self, *, protocol: int | None = RTPROT_PODNET) -> set[Route]:
        """Main-table unicast routes, by default only the ones podnet installed."""
        names = {link["index"]: link.get("ifname") for link in self._nl.get_links()}
        found = set()
        for family in (_AF_INET, _AF_INET6):
            for msg in self._nl.get_routes(family=family, table=_MAIN_TABLE):
                if msg["type"] != 1 or (protocol is not None and msg["proto"] != protocol):
                    continue
                dst = msg.get("RTA_DST")
                dst = f"{dst}/{msg['dst_len']}" if dst else "default"
                found.add(Route(dst=dst, via=msg.get("RTA_GATEWAY"), dev=names.get(msg.get("RTA_OIF"))))
        return found

    def _route_spec(self, route: Route, protocol: int) -> dict[str, object]:
        spec: dict[str, object] = {"proto": protocol}
        if route.dst == "default":
            spec["dst"] = "default"
        else:
            network = ipaddress.ip_network(route.dst, strict=False)
            spec.update(dst=str(network.network_address), dst_len=network.prefixlen)
            if network.version == 6:
                spec["family"] = _AF_INET6
        if route.via:
            spec["gateway"] = route.via
        if route.dev:
            spec["oif"] = self.require_index(route.dev)
        return spec

    def add_route(self, route: Route, *, protocol: int = RTPROT_PODNET) -> None:
        try:
            self._nl.route("replace", **self._route_spec(route, protocol))
        except NetlinkError as err:
            raise self._fail(f"add route {route}", err) from err

    def delete_route(self, route: Route, *, protocol: int = RTPROT_PODNET) -> None:
        if route.dev and self.index(route.dev) is None:
            return  # the route went away with its device
        try:
            self._nl.route("del", **self._route_spec(route, protocol))
        except NetlinkError as err:
            if err.code not in (errno.ESRCH, errno.ENOENT):
                raise self._fail(f"delete route {route}", err) from err

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
def open_namespace(name: str) -> Iterator[Namespace]:
    handle = Namespace(name)
    try:
        yield handle
    finally:
        handle.close()


@contextmanager
def open_path(ns_path: str, purpose: str) -> Iterator[Namespace]:
    """A runtime's namespace by path (CNI_NETNS), or "/proc/thread-self/ns/net" for
    our own.

    Refuses the machine's root namespace, so a plugin run by mistake on the host
    of a lab machine changes nothing there."""
    if not os.path.exists(ns_path):
        raise KernelError(f"network namespace {ns_path} does not exist")
    netns.guard_root(ns_path, purpose)
    handle = Namespace(ns_path, ns_path)
    try:
        yield handle
    finally:
        handle.close()
