"""Topology lab files (`kind: Topology`): hosts, switches, routers and links, as
the workshop builds them by hand, validated whole before anything is created."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Union

from podnet.errors import ManifestError
from podnet.lab.names import IFNAMSIZ
from podnet.model.fields import Fields, check_dns_label

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
Interface = Union[ipaddress.IPv4Interface, ipaddress.IPv6Interface]
_IFNAME = re.compile(r"^[^\s/:]{1,15}$")


@dataclass(frozen=True)
class RouteSpec:
    to: str  # CIDR or "default"
    via: str | None = None
    dev: str | None = None


@dataclass(frozen=True)
class HostSpec:
    name: str
    forwarding: bool = False  # routers forward; hosts do not
    routes: tuple[RouteSpec, ...] = ()
    masquerade: tuple[tuple[Network, str | None], ...] = ()  # (source, out interface)
    command: tuple[str, ...] = ()
    ready_port: int | None = None  # lab up waits until the command listens here


@dataclass(frozen=True)
class SwitchSpec:
    name: str
    host: str | None = None  # the bridge lives in this host's namespace, else its own
    addresses: tuple[Interface, ...] = ()


@dataclass(frozen=True)
class LinkEnd:
    node: str
    ifname: str
    addresses: tuple[Interface, ...] = ()


@dataclass(frozen=True)
class LinkSpec:
    a: LinkEnd
    b: LinkEnd


@dataclass(frozen=True)
class TopologySpec:
    name: str
    hosts: tuple[HostSpec, ...] = ()
    switches: tuple[SwitchSpec, ...] = ()
    links: tuple[LinkSpec, ...] = field(default=())

    kind = "Topology"

    def switch(self, name: str) -> SwitchSpec | None:
        return next((s for s in self.switches if s.name == name), None)



def _check_ifname(path: str, value: str) -> str:
    if not _IFNAME.match(value):
        raise ManifestError(path, f"{value!r} is not an interface name (at most {IFNAMSIZ} characters, no '/', ':' or spaces)")
    return value


def parse_topology(head: Fields, name: str) -> TopologySpec:
    head.reject_unknown("apiVersion", "kind", "metadata", "hosts", "routers", "switches", "links")
    members: dict[str, str] = {}

    def claim(fields: Fields, kind: str) -> str:
        member = check_dns_label(fields.text("name", required=True), fields.at("name"))
        if member in members:
            raise ManifestError(fields.at("name"), f"{member!r} is already the name of a {members[member]}")
        members[member] = kind
        return member

    hosts = []
    for key, forwarding in (("hosts", False), ("routers", True)):
        for host in head.records(key):
            host.reject_unknown("name", "routes", "masquerade", "command", "readyPort")
            member = claim(host, key[:-1])
            routes = []
            for route in host.records("routes"):
                route.reject_unknown("to", "via", "dev")
                to = route.text("to", required=True)
                if to != "default":
                    to = str(route.network("to"))
                via = route.address("via")
                dev = route.text("dev")
                if via is None and dev is None:
                    raise ManifestError(route.path, "a route needs `via` or `dev`")
                routes.append(RouteSpec(to, str(via) if via else None, dev))
            masquerade = []
            for rule in host.records("masquerade"):
                rule.reject_unknown("source", "outInterface")
                masquerade.append((rule.network("source"), rule.text("outInterface")))
                if masquerade[-1][0] is None:
                    raise ManifestError(rule.at("source"), "is required")
            command = host.strings("command")
            ready_port = host.integer("readyPort", minimum=1, maximum=65535)
            if ready_port and not command:
                raise ManifestError(host.at("readyPort"), "needs a `command` that listens on it")
            hosts.append(HostSpec(member, forwarding, tuple(routes), tuple(masquerade), command, ready_port))

    switches = []
    for switch in head.records("switches"):
        switch.reject_unknown("name", "host", "addresses")
        member = claim(switch, "switch")
        _check_ifname(switch.at("name"), member)
        owner = switch.text("host")
        if owner is not None and members.get(owner) not in ("host", "router"):
            raise ManifestError(switch.at("host"), f"unknown host {owner!r}")
        addresses = tuple(switch.interface(path, value) for path, value in switch.items("addresses"))
        if addresses and owner is None:
            raise ManifestError(switch.at("addresses"), "a switch has addresses only when it lives in a host (set `host`)")
        switches.append(SwitchSpec(member, owner, addresses))

    links = []
    for link in head.records("links", required=True):
        link.reject_unknown("endpoints", "addresses")
        endpoints = list(link.items("endpoints", required=True))
        if len(endpoints) != 2:
            raise ManifestError(link.at("endpoints"), "a link has exactly two endpoints, like [red:veth-red, blue:veth-blue]")
        addresses = list(link.items("addresses"))
        if len(addresses) > 2:
            raise ManifestError(link.at("addresses"), "at most one address list per endpoint")
        parsed = []
        for i, (path, text) in enumerate(endpoints):
            if not isinstance(text, str) or text.count(":") != 1:
                raise ManifestError(path, f"{text!r} is not NODE:INTERFACE")
            member, ifname = text.split(":")
            if member not in members:
                raise ManifestError(path, f"unknown node {member!r} (known: {', '.join(sorted(members))})")
            _check_ifname(path, ifname)
            own: tuple[Interface, ...] = ()
            if i < len(addresses):
                address_path, value = addresses[i]
                values = value if isinstance(value, list) else [value]
                own = tuple(link.interface(address_path, v) for v in values if v is not None)
                if own and members[member] == "switch":
                    raise ManifestError(address_path, f"{member} is a switch; its ports have no addresses")
            parsed.append(LinkEnd(member, ifname, own))
        links.append(LinkSpec(parsed[0], parsed[1]))

    spec = TopologySpec(name, tuple(hosts), tuple(switches), tuple(links))
    _check_topology(spec)
    return spec


def _check_topology(spec: TopologySpec) -> None:
    """Names that would collide in one namespace, duplicate addresses, unreachable gateways."""
    def home(member: str) -> str:
        switch = spec.switch(member)
        return (switch.host or switch.name) if switch else member

    ifnames: dict[tuple[str, str], str] = {}
    for switch in spec.switches:
        if switch.host:
            ifnames[(switch.host, switch.name)] = f"switch {switch.name}"
    addresses: dict[str, str] = {}
    connected: dict[str, list[Interface]] = {}
    for i, link in enumerate(spec.links):
        for end in (link.a, link.b):
            where = (home(end.node), end.ifname)
            if where in ifnames:
                raise ManifestError(f"links[{i}].endpoints", f"interface {end.ifname} on {where[0]} is already {ifnames[where]}")
            ifnames[where] = f"used by links[{i}]"
            for address in end.addresses:
                if str(address.ip) in addresses:
                    raise ManifestError(f"links[{i}].addresses", f"{address.ip} is already used by {addresses[str(address.ip)]}")
                addresses[str(address.ip)] = f"{end.node}:{end.ifname}"
                connected.setdefault(end.node, []).append(address)
    for switch in spec.switches:
        if switch.host:
            connected.setdefault(switch.host, []).extend(switch.addresses)
    for h, host in enumerate(spec.hosts):
        for r, route in enumerate(host.routes):
            if route.via and not any(ipaddress.ip_address(route.via) in net.network for net in connected.get(host.name, [])):
                raise ManifestError(f"{host.name}.routes[{r}].via",
                                    f"{route.via} is not on any subnet {host.name} is connected to")
            if route.dev and (host.name, route.dev) not in ifnames:
                raise ManifestError(f"{host.name}.routes[{r}].dev", f"{host.name} has no interface {route.dev}")
