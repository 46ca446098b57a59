"""The main table's unicast routes in one namespace: read, add, delete, and
sync podnet's own (those of its protocol number) to a desired set. The Route
value itself is route.py's, so renderers build routes without netlink."""

from __future__ import annotations

import errno
import ipaddress
from collections.abc import Iterable
from typing import Any

from pyroute2.netlink import NLM_F_CREATE, NLM_F_REPLACE
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from podnet.kernel.links import Links
from podnet.kernel.route import RTPROT_PODNET, Route
from podnet.kernel.rtnl import AF_INET, AF_INET6, family, message

_RTM_NEWROUTE, _RTM_DELROUTE, _RTM_GETROUTE = 24, 25, 26
_MAIN_TABLE = 254
_RTN_UNICAST = 1
_RT_SCOPE_UNIVERSE, _RT_SCOPE_LINK, _RT_SCOPE_NOWHERE = 0, 253, 255
_RTNH_F_ONLINK = 0x04


class Routes(Links):
    def routes(self, *, protocol: int | None = RTPROT_PODNET) -> set[Route]:
        """Main-table unicast routes, by default only the ones podnet installed."""
        names = self.link_names()
        found = set()
        for af in (AF_INET, AF_INET6):
            for msg in self._nl.dump(_RTM_GETROUTE, message(rtmsg, family=af)):
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
            af, dst_len = family(route.via or "0.0.0.0"), 0
        else:
            network = ipaddress.ip_network(route.dst, strict=False)
            af, dst_len = (AF_INET6 if network.version == 6 else AF_INET), network.prefixlen
            if dst_len:
                attrs.append(("RTA_DST", str(network.network_address)))
        if route.via:
            attrs.append(("RTA_GATEWAY", route.via))
        if route.dev:
            attrs.append(("RTA_OIF", self.require_index(route.dev)))
        if scope is None:  # as iproute2: a route with no gateway reaches its destination on the link
            scope = _RT_SCOPE_UNIVERSE if route.via or not dst_len else _RT_SCOPE_LINK
        return message(rtmsg, attrs, family=af, dst_len=dst_len, table=_MAIN_TABLE, proto=protocol,
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
