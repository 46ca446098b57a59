"""The CNI result as one version-independent value, rendered in the version asked for.

0.3.x and 0.4.0 tag each IP with "version"; 1.0.0 drops it; 1.1.0 adds interface
mtu/socketPath/pciID and route mtu/advmss/priority/table/scope.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from podnet.cni import version as versions
from podnet.cni.errors import DECODING_FAILURE, CniError


@dataclass(frozen=True)
class Interface:
    name: str
    mac: str = ""
    sandbox: str = ""
    mtu: int | None = None
    socket_path: str = ""
    pci_id: str = ""


@dataclass(frozen=True)
class IPConfig:
    address: str  # "10.244.1.5/24"
    gateway: str | None = None
    interface: int | None = None

    @property
    def family(self) -> int:
        return ipaddress.ip_interface(self.address).version


@dataclass(frozen=True)
class Route:
    dst: str
    gw: str | None = None
    mtu: int | None = None
    advmss: int | None = None
    priority: int | None = None
    table: int | None = None
    scope: int | None = None


@dataclass(frozen=True)
class DNS:
    nameservers: tuple[str, ...] = ()
    domain: str = ""
    search: tuple[str, ...] = ()
    options: tuple[str, ...] = ()

    def render(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.nameservers:
            out["nameservers"] = list(self.nameservers)
        if self.domain:
            out["domain"] = self.domain
        if self.search:
            out["search"] = list(self.search)
        if self.options:
            out["options"] = list(self.options)
        return out

    @classmethod
    def parse(cls, data: Any) -> DNS:
        if not isinstance(data, dict):
            return cls()
        return cls(tuple(data.get("nameservers") or ()), data.get("domain") or "",
                   tuple(data.get("search") or ()), tuple(data.get("options") or ()))


_ROUTE_EXTRAS = ("mtu", "advmss", "priority", "table", "scope")


@dataclass(frozen=True)
class Result:
    interfaces: tuple[Interface, ...] = ()
    ips: tuple[IPConfig, ...] = ()
    routes: tuple[Route, ...] = ()
    dns: DNS = field(default_factory=DNS)

    def render(self, cni_version: str) -> dict[str, Any]:
        modern = versions.at_least(cni_version, "1.0.0")
        latest = versions.at_least(cni_version, "1.1.0")
        out: dict[str, Any] = {"cniVersion": cni_version}
        if self.interfaces:
            out["interfaces"] = [_render_interface(i, latest) for i in self.interfaces]
        if self.ips:
            out["ips"] = [_render_ip(ip, modern) for ip in self.ips]
        if self.routes:
            out["routes"] = [_render_route(r, latest) for r in self.routes]
        out["dns"] = self.dns.render()
        return out

    @classmethod
    def parse(cls, data: Any) -> Result:
        """Any supported version's result (a prevResult) into the common value."""
        if not isinstance(data, dict):
            raise CniError(DECODING_FAILURE, "prevResult must be an object")
        try:
            interfaces = tuple(
                Interface(i["name"], i.get("mac", ""), i.get("sandbox", ""), i.get("mtu"),
                          i.get("socketPath", ""), i.get("pciID", ""))
                for i in data.get("interfaces") or ())
            ips = tuple(IPConfig(str(ipaddress.ip_interface(ip["address"])), ip.get("gateway"), ip.get("interface"))
                        for ip in data.get("ips") or ())
            routes = tuple(Route(r["dst"], r.get("gw"), *(r.get(k) for k in _ROUTE_EXTRAS))
                           for r in data.get("routes") or ())
        except (KeyError, TypeError, ValueError) as err:
            raise CniError(DECODING_FAILURE, "cannot decode prevResult", str(err)) from None
        return cls(interfaces, ips, routes, DNS.parse(data.get("dns")))


def _render_interface(interface: Interface, latest: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"name": interface.name}
    if interface.mac:
        out["mac"] = interface.mac
    if latest and interface.mtu:
        out["mtu"] = interface.mtu
    if interface.sandbox:
        out["sandbox"] = interface.sandbox
    if latest and interface.socket_path:
        out["socketPath"] = interface.socket_path
    if latest and interface.pci_id:
        out["pciID"] = interface.pci_id
    return out


def _render_ip(ip: IPConfig, modern: bool) -> dict[str, Any]:
    out: dict[str, Any] = {} if modern else {"version": str(ip.family)}
    if ip.interface is not None:
        out["interface"] = ip.interface
    out["address"] = ip.address
    if ip.gateway:
        out["gateway"] = ip.gateway
    return out


def _render_route(route: Route, latest: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"dst": route.dst}
    if route.gw:
        out["gw"] = route.gw
    if latest:
        for key in _ROUTE_EXTRAS:
            value = getattr(route, key)
            if value is not None:
                out[key] = value
    return out
