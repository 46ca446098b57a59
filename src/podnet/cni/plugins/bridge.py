"""bridge: a veth from the host's bridge into the container, addressed by IPAM.

Options as the reference plugin's: bridge, isGateway, isDefaultGateway,
forceAddress, ipMasq, mtu, hairpinMode, promiscMode, macspoofchk, vlan, and a
MAC from CNI_ARGS or runtimeConfig. On failure half-way through ADD, everything
ADD took is given back.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from dataclasses import dataclass
from typing import Any

from podnet.cni import cleanup, result
from podnet.cni.hostns import HOST_NETNS, host_namespace, host_nft
from podnet.cni.config import config_errors, fields, runtime_or_args
from podnet.cni.errors import INVALID_CONFIG, NOT_AVAILABLE, NOT_AVAILABLE_LIMITED, CniError
from podnet.cni.ipv6 import container_ipv6_problem, require_host_ipv6
from podnet.cni.plugins import ipam, nat
from podnet.cni.request import CniRequest
from podnet.ipam.ranges import Address
from podnet.errors import KernelError
from podnet.kernel import sysctl
from podnet.kernel.links import random_mac
from podnet.kernel.netlink import Netns, open_path
from podnet.kernel.route import Route

TYPE = "podnet-bridge"
DEFAULT_BRIDGE = "cni0"

log = logging.getLogger("podnet.cni")


@dataclass(frozen=True)
class BridgeConfig:
    bridge: str
    is_gateway: bool
    is_default_gateway: bool
    force_address: bool
    ip_masq: bool
    mtu: int | None
    hairpin: bool
    promiscuous: bool
    macspoofchk: bool
    vlan: int
    ipam: dict[str, Any]

    @classmethod
    def parse(cls, config: dict[str, Any]) -> BridgeConfig:
        conf = fields(config, "")
        with config_errors():
            default_gateway = conf.boolean("isDefaultGateway")
            ipam_conf = conf.mapping("ipam")
            if ipam_conf is None or not ipam_conf.text("type"):
                raise CniError(INVALID_CONFIG, "invalid network config", "ipam: a bridge needs an IPAM plugin (ipam.type)")
            return cls(
                bridge=conf.text("bridge", DEFAULT_BRIDGE),
                is_gateway=conf.boolean("isGateway") or default_gateway,
                is_default_gateway=default_gateway,
                force_address=conf.boolean("forceAddress"),
                ip_masq=conf.boolean("ipMasq"),
                mtu=conf.integer("mtu", minimum=68, maximum=65535),
                hairpin=conf.boolean("hairpinMode"),
                promiscuous=conf.boolean("promiscMode"),
                macspoofchk=conf.boolean("macspoofchk"),
                vlan=conf.integer("vlan", 0, minimum=0, maximum=4094),
                ipam=ipam_conf.data,
            )


def requested_mac(request: CniRequest) -> str | None:
    mac = request.args.get("MAC") or runtime_or_args(request.config, "mac")
    if mac is None:
        return None
    text = str(mac).lower()
    parts = text.split(":")
    if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdef" for c in p) for p in parts):
        raise CniError(INVALID_CONFIG, "invalid MAC address", str(mac))
    return text


def add(request: CniRequest) -> result.Result:
    """A network that hands out IPv6 addresses on a node without IPv6 fails
    before anything is made, when its IPAM config tells the families (ours do);
    otherwise as soon as IPAM answers, giving back what was taken."""
    conf = BridgeConfig.parse(request.config)
    request.check_args({"MAC"})
    if conf.vlan:
        raise CniError(INVALID_CONFIG, "vlan is not supported",
                       "this kernel has no bridge VLAN filtering (802.1Q), so 'vlan' cannot be honoured")
    mac = requested_mac(request)
    expects_ipv6 = 6 in ipam.families(conf.ipam)
    if expects_ipv6:
        require_host_ipv6(conf.bridge, "IPv6 addresses")
    undo: list[Any] = []
    try:
        with host_namespace("bridge plugin host side") as host, open_path(request.netns, "container") as container:
            bridge = _ensure_bridge(host, conf, expects_ipv6)
            if request.janitor is not None:
                request.janitor.wait_for(request.netns, request.ifname)
            if container.index(request.ifname) is not None:
                raise CniError(INVALID_CONFIG, f"container veth name provided ({request.ifname}) already exists")
            container_mac = mac or random_mac()
            host_ifname, host_mac = _create_veth(host, container, request.ifname, conf, container_mac)
            undo.append(lambda: _delete_container_link(request, at_once=True))
            ipam_result = ipam.add(request, conf.ipam)
            undo.append(lambda: ipam.delete(request, conf.ipam))
            if not ipam_result.ips:
                raise CniError(INVALID_CONFIG, "IPAM plugin returned missing IP config")
            ips = tuple(result.IPConfig(ip.address, ip.gateway or (_first_address(ip.address) if conf.is_gateway else None), 2)
                        for ip in ipam_result.ips)
            if not expects_ipv6 and (ipv6_address := next((ip.address for ip in ips if ip.family == 6), None)):
                require_host_ipv6(conf.bridge, ipv6_address)
            routes = _with_default_routes(ipam_result.routes, ips, conf.is_default_gateway)
            _configure_container(container, request.ifname, ips, routes)
            if conf.is_gateway:
                _ensure_gateway_addresses(host, conf, ips)
                for family in {ip.family for ip in ips}:
                    key = "net.ipv4.ip_forward" if family == 4 else "net.ipv6.conf.all.forwarding"
                    sysctl.ensure_path(HOST_NETNS, key, "1")
            if conf.ip_masq:
                undo.append(lambda: nat.remove_masquerade(host_nft(), request.network, [ip.address for ip in ips]))
                nat.add_masquerade(host_nft(), request.network, [ip.address for ip in ips])
            if conf.macspoofchk:
                undo.append(lambda: nat.remove_mac_guard(host_nft(), host_ifname))
                nat.add_mac_guard(host_nft(), host_ifname, container_mac)
            interfaces = (
                result.Interface(conf.bridge, str(bridge["mac"])),
                result.Interface(host_ifname, host_mac),
                result.Interface(request.ifname, container_mac, request.netns),
            )
        return result.Result(interfaces, ips, routes, ipam_result.dns)
    except BaseException:
        for step in reversed(undo):
            try:
                step()
            except (CniError, KernelError) as err:  # the original error is what the runtime must see
                log.warning("undoing a failed ADD of %s: %s", request.container_id, err)
        raise


def _first_address(cidr: str) -> str:
    return str(ipaddress.ip_interface(cidr).network.network_address + 1)


def _with_default_routes(routes: tuple[result.Route, ...], ips: tuple[result.IPConfig, ...],
                         default_gateway: bool) -> tuple[result.Route, ...]:
    if not default_gateway:
        return routes
    added = list(routes)
    for ip in ips:
        dst = "0.0.0.0/0" if ip.family == 4 else "::/0"
        if ip.gateway and not any(r.dst == dst for r in added):
            added.append(result.Route(dst, ip.gateway))
    return tuple(added)


def _ensure_bridge(host: Netns, conf: BridgeConfig, ipv6: bool) -> dict[str, Any]:
    """One lookup when the bridge is already there and up, as it is after the first pod.

    A new bridge for IPv6 gets accept_dad=0 before it comes up: while its
    link-local address is "tentative" the host cannot ask for a neighbour's MAC
    (a neighbour solicitation needs a usable link-local source), so for the first
    second or two nothing could be forwarded to a pod: not a published port, not
    another node's traffic."""
    info = host.link_info(conf.bridge)
    if info is not None and info["kind"] != "bridge":
        raise CniError(INVALID_CONFIG, f"{conf.bridge} already exists but is not a bridge")
    if info is None and ipv6:
        host.ensure_bridge(conf.bridge, mtu=conf.mtu, up=False)
        sysctl.ensure_path(HOST_NETNS, f"net/ipv6/conf/{conf.bridge}/accept_dad", "0")
    if info is None or not info["up"] or (conf.mtu and info["mtu"] != conf.mtu):
        host.ensure_bridge(conf.bridge, mtu=conf.mtu)
        info = host.link_info(conf.bridge)
    if conf.promiscuous:
        host.set_promiscuous(conf.bridge)
    return info  # type: ignore[return-value]


def _create_veth(host: Netns, container: Netns, ifname: str, conf: BridgeConfig,
                 container_mac: str) -> tuple[str, str]:
    """The host end gets a random "veth" name, as the reference's does, and joins
    the bridge up in the same netlink call that creates it."""
    host_mac = random_mac()
    for attempt in range(8):
        host_ifname = f"veth{os.urandom(4).hex()}"
        try:
            host.create_veth(host_ifname, ifname, container, mtu=conf.mtu, master=conf.bridge,
                             mac=host_mac, peer_mac=container_mac, up=True)
            break
        except KernelError:
            if attempt == 7 or host.index(host_ifname) is None:
                raise
    if conf.hairpin:
        host.set_hairpin(host_ifname)
    return host_ifname, host_mac


def _container_sysctls(ifname: str, families: set[int]) -> dict[str, str]:
    """Set while the interface is still down, before its first address.

    accept_dad=0: IPv6 addresses are usable the moment ADD answers, not a second
    or two later (the reference turns DAD off too, then waits for its addresses
    to settle; nothing here waits). It spares the link-local address DAD as well:
    with hairpinMode the bridge echoes a solicitation back, which DAD would take
    for a duplicate, the reference's reason for it.
    arp_notify / ndisc_notify: the interface announces its addresses as it comes
    up, so a neighbour that still holds the MAC of a deleted pod that had the
    same address (the host, say, forwarding to a published port) learns the new
    one at once rather than after seconds of lost packets."""
    settings = {}
    if 4 in families:
        settings[f"net/ipv4/conf/{ifname}/arp_notify"] = "1"
    if 6 in families:
        settings[f"net/ipv6/conf/{ifname}/accept_dad"] = "0"
        settings[f"net/ipv6/conf/{ifname}/ndisc_notify"] = "1"
    return settings


def _configure_container(container: Netns, ifname: str, ips: tuple[result.IPConfig, ...],
                         routes: tuple[result.Route, ...]) -> None:
    """IPv6 addresses go on without Duplicate Address Detection (see _container_sysctls)."""
    sysctl.ensure_all_path(container.path, _container_sysctls(ifname, {ip.family for ip in ips}))
    for ip in ips:
        try:
            container.ensure_address(ifname, ip.address)
        except KernelError:
            if ip.family == 6 and (problem := container_ipv6_problem(container.path, ifname)):
                raise CniError(INVALID_CONFIG, "IPv6 is disabled in the container",
                               f"cannot add {ip.address} to {ifname}: {problem}") from None
            raise
    container.set_up(ifname)
    gateways = {ip.family: ip.gateway for ip in ips if ip.gateway}
    for route in routes:
        family = ipaddress.ip_network(route.dst).version
        gw = route.gw or gateways.get(family)
        dst = "default" if ipaddress.ip_network(route.dst).prefixlen == 0 and family == 4 else route.dst
        container.add_route(Route(dst, gw, ifname))


def _gateway_cidr(ip: result.IPConfig) -> str:
    return f"{ip.gateway}/{ipaddress.ip_interface(ip.address).network.prefixlen}"


def _ensure_gateway_addresses(host: Netns, conf: BridgeConfig, ips: tuple[result.IPConfig, ...]) -> None:
    """The bridge carries each subnet's gateway (an IPv6 one without DAD, so pods
    reach it at once), checked on every ADD so that one deleted by hand comes
    back. Adding it is one request that also tells whether it was there; only when it was not (the first pod) are the bridge's other
    addresses read: another one in the subnet is an error unless forceAddress
    says to replace it."""
    for ip in ips:
        wanted = _gateway_cidr(ip)
        if not host.add_address(conf.bridge, wanted):
            continue
        network = ipaddress.ip_interface(ip.address).network
        others = [existing for existing in host.addresses(conf.bridge)
                  if (other := ipaddress.ip_interface(existing)).version == network.version and other.ip in network
                  and existing != wanted]
        if others and not conf.force_address:
            host.remove_address(conf.bridge, wanted)
            raise CniError(INVALID_CONFIG, f"{conf.bridge!r} already has an IP address different from {wanted}",
                           f"it has {others[0]}; set forceAddress to replace it")
        for existing in others:
            host.remove_address(conf.bridge, existing)
        if others:  # removing a subnet's primary address takes its secondaries with it
            host.ensure_address(conf.bridge, wanted)


def _delete_container_link(request: CniRequest, at_once: bool = False) -> list[str]:
    """Take the container's interface down at once and delete it (its veth peer goes
    with it), in the background when an agent runs, unless at_once (a failed ADD
    gives back everything it took before it answers); returns its addresses."""
    if not request.netns or not os.path.exists(request.netns):
        return []
    with open_path(request.netns, "container") as container:
        if container.index(request.ifname) is None:
            return []
        addresses = [a for a in container.addresses(request.ifname) if not a.startswith("fe80:")]
        container.set_down(request.ifname)
    cleanup.delete_link(None if at_once else request.janitor, request.netns, request.ifname)
    return addresses


def delete(request: CniRequest) -> None:
    """Idempotent, and complete even without the netns or a prevResult: the leases
    say which addresses to unmasquerade, so no rule is left behind."""
    conf = BridgeConfig.parse(request.config)
    prev_data = request.config.get("prevResult")
    prev = result.Result.parse(prev_data) if isinstance(prev_data, dict) else result.Result()
    addresses = [_host_cidr(a) for a in ipam.delete(request, conf.ipam)] + [ip.address for ip in prev.ips]
    addresses += _delete_container_link(request)
    if conf.ip_masq and addresses:
        nat.remove_masquerade(host_nft(), request.network, addresses)
    if conf.macspoofchk:
        for interface in prev.interfaces:
            if not interface.sandbox and interface.name != conf.bridge:
                nat.remove_mac_guard(host_nft(), interface.name)


def _host_cidr(address: Address) -> str:
    return f"{address}/{address.max_prefixlen}"


def check(request: CniRequest) -> None:
    conf = BridgeConfig.parse(request.config)
    prev_data = request.config.get("prevResult")
    if not isinstance(prev_data, dict):
        raise CniError(INVALID_CONFIG, "Required prevResult missing")
    prev = result.Result.parse(prev_data)
    ipam.check(request, conf.ipam)
    with host_namespace("bridge plugin host side") as host:
        bridge = host.link_info(conf.bridge)
        if bridge is None or bridge["kind"] != "bridge":
            raise CniError(INVALID_CONFIG, f"bridge {conf.bridge} is missing")
        for interface in prev.interfaces:
            if interface.sandbox or interface.name == conf.bridge:
                continue
            info = host.link_info(interface.name)
            if info is None or info["master"] != conf.bridge:
                raise CniError(INVALID_CONFIG, f"host interface {interface.name} is missing or not on {conf.bridge}")
    with open_path(request.netns, "container") as container:
        info = container.link_info(request.ifname)
        if info is None:
            raise CniError(INVALID_CONFIG, f"container interface {request.ifname} is missing")
        expected = next((i for i in prev.interfaces if i.name == request.ifname and i.sandbox), None)
        if expected and expected.mac and expected.mac != info["mac"]:
            raise CniError(INVALID_CONFIG, f"container interface {request.ifname} has MAC {info['mac']}, expected {expected.mac}")
        present = container.addresses(request.ifname)
        for ip in prev.ips:
            if ip.address not in present:
                raise CniError(INVALID_CONFIG, f"address {ip.address} is missing from {request.ifname}")


def gc(request: CniRequest) -> None:
    conf = BridgeConfig.parse(request.config)
    released = ipam.gc(request, conf.ipam)
    if conf.ip_masq and released:
        nat.remove_masquerade(host_nft(), request.network, [_host_cidr(a) for a in released])


def status(request: CniRequest) -> None:
    """50 when no ADD can succeed (the range is exhausted, or it is IPv6 on a node
    without IPv6); 51 when, in addition, containers already attached have lost
    connectivity (their bridge is gone)."""
    conf = BridgeConfig.parse(request.config)
    with host_namespace("bridge plugin host side") as host:
        bridge = host.link_info(conf.bridge)
    if bridge is None and ipam.has_leases(request, conf.ipam):
        raise CniError(NOT_AVAILABLE_LIMITED, f"bridge {conf.bridge} is missing",
                       "containers attached to this network have no connectivity")
    if 6 in ipam.families(conf.ipam):
        require_host_ipv6(conf.bridge, "IPv6 addresses", NOT_AVAILABLE)
    ipam.status(request, conf.ipam)
