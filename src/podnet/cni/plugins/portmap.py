"""portmap: publish container ports on the host (the seed's `docker run -p 8080:80`).

runtimeConfig.portMappings [{hostPort, containerPort, protocol, hostIP}] become
elements of nftables maps in one shared table, so a packet costs one lookup
however many ports are mapped. Each family is published to the container's
address of that family (a dual-stack pod is reached over both); a hostIP
publishes to its family only. snat (default on) masquerades hairpin and
localhost traffic; masqAll masquerades every mapped connection. With no
mappings the plugin changes nothing. What ADD created is recorded per
attachment, so DEL and GC remove it even without the netns or a prevResult.
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from podnet.cni import result
from podnet.cni.config import config_errors, fields, runtime_or_args
from podnet.cni.errors import INVALID_CONFIG, CniError
from podnet.cni.plugins.host_local import valid_attachments
from podnet.cni.request import CniRequest
from podnet.errors import KernelError
from podnet.cni.hostns import HOST_NETNS, host_nft
from podnet.kernel import sysctl
from podnet.kernel.nftables import Chain, Element, Map, Set, Table, Transaction, base_chain, hooks
from podnet.kernel.nftables.rules import (CT_STATUS, FIB_DADDR_TYPE, IP_SADDR, L4PROTO, NFPROTO, RETURN, TH_DPORT,
                                          Dnat, Lookup, Masquerade, Rule, SetRef, concat, daddr, jump, match, rule, saddr)

TYPE = "podnet-portmap"
TABLE = Table("inet", hooks.PORTMAP)
DEFAULT_STATE_DIR = "/var/lib/cni/podnet-portmap"
_PROTOCOLS = ("tcp", "udp", "sctp")
_TARGET = {4: "ipv4_addr . inet_service", 6: "ipv6_addr . inet_service"}
_ADDRESS = {4: "ipv4_addr", 6: "ipv6_addr"}
_COLLECTIONS = tuple(
    item for v in (4, 6) for item in (
        Map(f"any{v}", "inet_proto . inet_service", _TARGET[v]),
        Map(f"host{v}", f"{_ADDRESS[v]} . inet_proto . inet_service", _TARGET[v]),
        Set(f"hairpin{v}", f"{_ADDRESS[v]} . {_ADDRESS[v]}"),
        Set(f"masqall{v}", f"{_ADDRESS[v]} . inet_proto . inet_service"),
    ))
_CHAINS = (base_chain(TABLE, "prerouting"), base_chain(TABLE, "output"), Chain("published"),
           base_chain(TABLE, "postrouting"))
_NAT_FAMILY = {4: "ip", 6: "ip6"}


def _rules() -> list[Rule]:
    """IPv6's loopback is left alone: the kernel never lets ::1 leave the host
    (there is no route_localnet for IPv6), so a DNAT'd connection to [::1] would
    hang where, unmapped, it is refused at once."""
    local = match(FIB_DADDR_TYPE, "local")
    rules = [rule("prerouting", local, jump("published")), rule("output", match(daddr(6), "::1"), RETURN),
             rule("output", local, jump("published"))]
    for v in (4, 6):
        family = match(NFPROTO, f"ipv{v}")
        rules += [rule("published", family, Dnat(_NAT_FAMILY[v], Lookup(concat(daddr(v), L4PROTO, TH_DPORT), f"host{v}"))),
                  rule("published", family, Dnat(_NAT_FAMILY[v], Lookup(concat(L4PROTO, TH_DPORT), f"any{v}")))]
    dnatted = match(CT_STATUS, "dnat")
    rules += [rule("postrouting", dnatted, match(concat(saddr(v), daddr(v)), SetRef(f"hairpin{v}")), Masquerade())
              for v in (4, 6)]
    rules.append(rule("postrouting", dnatted, match(IP_SADDR, "127.0.0.0/8"), Masquerade()))
    rules += [rule("postrouting", dnatted, match(concat(daddr(v), L4PROTO, TH_DPORT), SetRef(f"masqall{v}")),
                   Masquerade()) for v in (4, 6)]
    return rules


@dataclass(frozen=True)
class PortMapping:
    host_port: int
    container_port: int
    protocol: str
    host_ip: str | None


@dataclass(frozen=True)
class PortmapConfig:
    mappings: tuple[PortMapping, ...]
    snat: bool
    masq_all: bool
    state_dir: str

    @classmethod
    def parse(cls, config: dict[str, Any]) -> PortmapConfig:
        conf = fields(config, "")
        mappings = []
        raw = runtime_or_args(config, "portMappings") or []
        with config_errors():
            items = fields({"portMappings": raw}, "runtimeConfig")
            for mapping in items.records("portMappings"):
                protocol = (mapping.text("protocol", "tcp") or "tcp").lower()
                if protocol not in _PROTOCOLS:
                    raise CniError(INVALID_CONFIG, "invalid port mapping", f"{mapping.at('protocol')}: {protocol!r} is not tcp, udp or sctp")
                host_ip = mapping.address("hostIP") if mapping.text("hostIP") not in (None, "", "0.0.0.0", "::") else None
                mappings.append(PortMapping(mapping.integer("hostPort", required=True, minimum=1, maximum=65535),
                                            mapping.integer("containerPort", required=True, minimum=1, maximum=65535),
                                            protocol, str(host_ip) if host_ip else None))
            return cls(tuple(mappings), conf.boolean("snat", True), conf.boolean("masqAll"),
                       conf.text("stateDir", DEFAULT_STATE_DIR))


def render_elements(mappings: tuple[PortMapping, ...], container_ips: list[str], snat: bool,
                    masq_all: bool) -> list[Element]:
    """What ADD adds for these mappings; DEL deletes the same elements."""
    elements = []
    for ip_text in container_ips:
        ip = ipaddress.ip_address(ip_text)
        v = ip.version
        for m in mappings:
            if m.host_ip and ipaddress.ip_address(m.host_ip).version != v:
                continue
            target = (str(ip), str(m.container_port))
            if m.host_ip:
                elements.append(Element(f"host{v}", (m.host_ip, m.protocol, str(m.host_port)), target))
            else:
                elements.append(Element(f"any{v}", (m.protocol, str(m.host_port)), target))
            if masq_all:
                elements.append(Element(f"masqall{v}", (str(ip), m.protocol, str(m.container_port))))
        if snat:
            elements.append(Element(f"hairpin{v}", (str(ip), str(ip))))
    return sorted(set(elements), key=Element.text)


def _shared(element: Element) -> bool:
    """Hairpin and masqAll elements may be another mapping's too; host ports may not."""
    return element.set.startswith(("hairpin", "masqall"))


def _skeleton() -> Transaction:
    return Transaction(TABLE).add(TABLE, *_COLLECTIONS, *_CHAINS)


def _to_json(element: Element) -> dict[str, Any]:
    return {"set": element.set, "key": list(element.key), "value": list(element.value) if element.value else None}


def _from_json(item: dict[str, Any]) -> Element:
    return Element(item["set"], tuple(item["key"]), tuple(item["value"]) if item["value"] else None)


def _state_path(config: PortmapConfig, request: CniRequest) -> Path:
    return Path(config.state_dir) / request.network / f"{request.container_id}:{request.ifname}.json"


def _container_ips(prev: result.Result) -> list[str]:
    sandboxes = {i for i, interface in enumerate(prev.interfaces) if interface.sandbox}
    ips = [str(ipaddress.ip_interface(ip.address).ip) for ip in prev.ips
           if ip.interface is None or ip.interface in sandboxes]
    firsts: dict[int, str] = {}
    for ip in ips:
        firsts.setdefault(ipaddress.ip_address(ip).version, ip)
    return list(firsts.values())


def add(request: CniRequest) -> result.Result:
    config = PortmapConfig.parse(request.config)
    prev_data = request.config.get("prevResult")
    if not isinstance(prev_data, dict):
        raise CniError(INVALID_CONFIG, "portmap must be chained after a plugin that gives a prevResult")
    prev = result.Result.parse(prev_data)
    if not config.mappings:
        return prev
    elements = render_elements(config.mappings, _container_ips(prev), config.snat, config.masq_all)
    tx = _skeleton().flush(*_CHAINS).add(*_rules())
    tx.create(*(e for e in elements if not _shared(e))).add(*(e for e in elements if _shared(e)))
    try:
        host_nft().run(tx)
    except KernelError as err:
        if "File exists" in str(err):
            raise CniError(INVALID_CONFIG, "a host port is already mapped",
                           ", ".join(f"{m.host_port}/{m.protocol}" for m in config.mappings)) from None
        raise
    path = _state_path(config, request)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"elements": [_to_json(e) for e in elements],
                                "mappings": [asdict(m) for m in config.mappings]}))
    if config.snat:
        for interface in prev.interfaces:
            if not interface.sandbox:
                sysctl.ensure_path(HOST_NETNS, f"net.ipv4.conf.{interface.name}.route_localnet", "1")
    return prev


def _remove(path: Path) -> None:
    try:
        elements = [_from_json(item) for item in json.loads(path.read_text())["elements"]]
    except (OSError, ValueError, KeyError, TypeError):
        return
    host_nft().run(_skeleton().destroy(*elements))
    path.unlink(missing_ok=True)


def delete(request: CniRequest) -> None:
    _remove(_state_path(PortmapConfig.parse(request.config), request))


def check(request: CniRequest) -> None:
    config = PortmapConfig.parse(request.config)
    if config.mappings and not _state_path(config, request).exists():
        raise CniError(INVALID_CONFIG, "port mappings of this container are missing")


def gc(request: CniRequest) -> None:
    keep = valid_attachments(request.config)
    if keep is None:
        return
    directory = Path(PortmapConfig.parse(request.config).state_dir) / request.network
    if not directory.is_dir():
        return
    for entry in os.scandir(directory):
        container_id, _, ifname = entry.name.removesuffix(".json").partition(":")
        if (container_id, ifname) not in keep:
            _remove(Path(entry.path))


def status(request: CniRequest) -> None:
    """Ready whenever nft is."""
