"""portmap: publish container ports on the host (the seed's `docker run -p 8080:80`).

runtimeConfig.portMappings [{hostPort, containerPort, protocol, hostIP}] become
elements of nftables maps in one shared table, so a packet costs one lookup
however many ports are mapped. snat (default on) masquerades hairpin and
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
from podnet.cni.hostns import HOST_NETNS
from podnet.kernel import nft, sysctl

TYPE = "podnet-portmap"
TABLE = "podnet-portmap"
DEFAULT_STATE_DIR = "/var/lib/cni/podnet-portmap"
_PROTOCOLS = ("tcp", "udp", "sctp")

_SKELETON = f"""table inet {TABLE} {{
	map any4 {{ type inet_proto . inet_service : ipv4_addr . inet_service; }}
	map host4 {{ type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }}
	map any6 {{ type inet_proto . inet_service : ipv6_addr . inet_service; }}
	map host6 {{ type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; }}
	set hairpin4 {{ type ipv4_addr . ipv4_addr; }}
	set hairpin6 {{ type ipv6_addr . ipv6_addr; }}
	set masqall4 {{ type ipv4_addr . inet_proto . inet_service; }}
	set masqall6 {{ type ipv6_addr . inet_proto . inet_service; }}
	chain prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}
	chain output {{ type nat hook output priority -100; policy accept; }}
	chain published {{ }}
	chain postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}
}}
"""

_RULES = [
    "prerouting fib daddr type local jump published",
    "output fib daddr type local jump published",
    "published meta nfproto ipv4 dnat ip to ip daddr . meta l4proto . th dport map @host4",
    "published meta nfproto ipv4 dnat ip to meta l4proto . th dport map @any4",
    "published meta nfproto ipv6 dnat ip6 to ip6 daddr . meta l4proto . th dport map @host6",
    "published meta nfproto ipv6 dnat ip6 to meta l4proto . th dport map @any6",
    "postrouting ct status dnat ip saddr . ip daddr @hairpin4 masquerade",
    "postrouting ct status dnat ip6 saddr . ip6 daddr @hairpin6 masquerade",
    "postrouting ct status dnat ip saddr 127.0.0.0/8 masquerade",
    "postrouting ct status dnat ip daddr . meta l4proto . th dport @masqall4 masquerade",
    "postrouting ct status dnat ip6 daddr . meta l4proto . th dport @masqall6 masquerade",
]


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


def render_elements(mappings: tuple[PortMapping, ...], container_ips: list[str], snat: bool, masq_all: bool) -> list[str]:
    """One `map|set element` line per thing to add; the same lines, keyed, delete them."""
    elements = []
    for ip_text in container_ips:
        ip = ipaddress.ip_address(ip_text)
        v = ip.version
        for m in mappings:
            if m.host_ip and ipaddress.ip_address(m.host_ip).version != v:
                continue
            target = f"{ip} . {m.container_port}"
            if m.host_ip:
                elements.append(f"host{v} {{ {m.host_ip} . {m.protocol} . {m.host_port} : {target} }}")
            else:
                elements.append(f"any{v} {{ {m.protocol} . {m.host_port} : {target} }}")
            if masq_all:
                elements.append(f"masqall{v} {{ {ip} . {m.protocol} . {m.container_port} }}")
        if snat:
            elements.append(f"hairpin{v} {{ {ip} . {ip} }}")
    return sorted(set(elements))


def _key_only(element: str) -> str:
    """`map { key : value }` -> `map { key }`, for deletes."""
    name, _, body = element.partition(" ")
    return f"{name} {body.split(' : ')[0].rstrip(' }')} }}" if " : " in body else element


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
    script = _SKELETON + "".join(f"flush chain inet {TABLE} {rule.split()[0]}\n" for rule in ("prerouting", "output", "published", "postrouting"))
    script += "".join(f"add rule inet {TABLE} {rule}\n" for rule in _RULES)
    script += "".join(f"create element inet {TABLE} {e}\n" for e in elements if not e.startswith(("hairpin", "masqall")))
    script += "".join(f"add element inet {TABLE} {e}\n" for e in elements if e.startswith(("hairpin", "masqall")))
    try:
        nft.run_script(HOST_NETNS, script)
    except KernelError as err:
        if "File exists" in str(err):
            raise CniError(INVALID_CONFIG, "a host port is already mapped",
                           ", ".join(f"{m.host_port}/{m.protocol}" for m in config.mappings)) from None
        raise
    path = _state_path(config, request)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"elements": elements, "mappings": [asdict(m) for m in config.mappings]}))
    if config.snat:
        for interface in prev.interfaces:
            if not interface.sandbox:
                sysctl.ensure_path(HOST_NETNS, f"net.ipv4.conf.{interface.name}.route_localnet", "1")
    return prev


def _remove(path: Path) -> None:
    try:
        elements = json.loads(path.read_text())["elements"]
    except (OSError, ValueError, KeyError):
        return
    script = _SKELETON
    for element in elements:  # add first, so the delete succeeds whether or not it was there
        script += f"add element inet {TABLE} {element}\ndelete element inet {TABLE} {_key_only(element)}\n"
    nft.run_script(HOST_NETNS, script)
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
