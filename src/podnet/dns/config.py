"""What one `podnet dns` serves, from command-line options or from a Corefile.

The Corefile reader understands the plugins a Kubernetes cluster's CoreDNS uses
(kubeadm's default Corefile works as it is) and the seed's `hosts /etc/hosts`:
    errors log reload loadbalance    accepted; podnet always does their work or none is needed
    health [ADDR]                    GET /health on ADDR (default :8080)
    ready [ADDR]                     GET /ready on ADDR (default :8181)
    prometheus [ADDR]                GET /metrics on ADDR (default :9153)
    kubernetes ZONE... { pods disabled|insecure|verified; ttl N; fallthrough }
    hosts [FILE] { fallthrough }
    forward . TO... { policy random|round_robin|sequential; health_check DURATION; max_fails N; expire DURATION }
    cache [TTL] { success N; denial N; prefetch AMOUNT [DURATION [PERCENT%]] }
    loop
Anything else is refused by name, with its line number.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from podnet.dns.cache import Prefetch
from podnet.dns.forward import EXPIRE, HEALTH_CHECK, MAX_FAILS, POLICIES
from podnet.dns.zone import POD_MODES
from podnet.errors import PodnetError

IGNORED_PLUGINS = ("errors", "log", "reload", "loadbalance", "debug")
DEFAULT_ADDRESSES = {"health": ("0.0.0.0", 8080), "ready": ("0.0.0.0", 8181), "prometheus": ("0.0.0.0", 9153)}
Address = tuple[str, int]
EVERY_ADDRESS = ("0.0.0.0", "::")  # IPv4's socket first: the one most queries come to


class ConfigError(PodnetError):
    """A Corefile or option podnet cannot serve; names the line and the problem."""


@dataclass(frozen=True)
class DnsConfig:
    listen: Address = ("0.0.0.0", 53)
    domain: str | None = "cluster.local"  # None: no kubernetes plugin, no store needed
    ttl: int = 5
    pods: str = "insecure"
    hosts_file: str | None = None
    upstreams: tuple[Address, ...] = ()
    policy: str = "random"
    health_check: float = HEALTH_CHECK  # seconds between the checks of an upstream that failed
    max_fails: int = MAX_FAILS  # checks failed in a row after which an upstream is down (0: never)
    expire: float = EXPIRE  # seconds an unused upstream socket is kept
    cache_capacity: int = 10000
    cache_max_ttl: int = 3600
    prefetch: Prefetch | None = None
    loop_check: bool = False
    http: dict[str, Address] = field(default_factory=dict)  # "health", "ready", "prometheus" -> address
    workers: int = 1  # processes sharing the port (SO_REUSEPORT)

    @property
    def listen_hosts(self) -> tuple[str, ...]:
        """Where the sockets are bound: every address ("0.0.0.0" or "::", as
        CoreDNS's `.:53`) is every address of both families, a socket each, since
        a pod of a dual-stack cluster asks the DNS Service's IPv6 ClusterIP too."""
        host = self.listen[0]
        return EVERY_ADDRESS if host in ("", *EVERY_ADDRESS) else (host,)


def parse_address(text: str, default_port: int) -> Address:
    """"10.0.0.1", "10.0.0.1:53", "[fd00::1]:53", ":8080" (every address), "dns://1.1.1.1"."""
    text = text.removeprefix("dns://")
    match = re.fullmatch(r"\[(?P<v6>[^\]]+)\](?::(?P<p6>\d+))?|(?P<host>[^:]*)(?::(?P<port>\d+))?", text)
    if ":" in text and not text.startswith("[") and text.count(":") > 1:
        host, port = text, None  # a bare IPv6 address
    elif match:
        host = match["v6"] or match["host"] or "0.0.0.0"
        port = match["p6"] or match["port"]
    else:
        raise ConfigError(f"{text!r} is not an address")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"{text!r} is not an IP address (podnet does not resolve names for its upstreams)") from None
    number = int(port) if port else default_port
    if not 0 < number < 65536:
        raise ConfigError(f"{text!r}: port {number} is out of range")
    return host, number


def resolv_conf_servers(path: str) -> list[Address]:
    """`forward . /etc/resolv.conf`: that file's nameservers."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror}") from None
    return [parse_address(line.split()[1], 53) for line in lines if line.startswith("nameserver") and len(line.split()) > 1]


def _duration(text: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", text)
    if not match:
        raise ConfigError(f"{text!r} is not a duration (like 500ms, 30s or 1m)")
    return float(match[1]) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[match[2]]


def _integer(text: str, what: str) -> int:
    if not text.isdigit():
        raise ConfigError(f"{what}: {text!r} is not a whole number")
    return int(text)


@dataclass
class _Directive:
    line: int
    name: str
    args: list[str]
    block: list[_Directive]


def _tokens(text: str) -> list[tuple[int, list[str]]]:
    """Lines of words, with comments gone and braces as words of their own."""
    lines = []
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split("#", 1)[0].replace("{", " { ").replace("}", " } ").split()
        if words:
            lines.append((number, words))
    return lines


def _directives(lines: list[tuple[int, list[str]]], start: int, closing: bool) -> tuple[list[_Directive], int]:
    found: list[_Directive] = []
    i = start
    while i < len(lines):
        number, words = lines[i]
        if words == ["}"]:
            if not closing:
                raise ConfigError(f"Corefile line {number}: '}}' without a block to close")
            return found, i + 1
        if words[-1] == "{":
            inner, i = _directives(lines, i + 1, True)
            found.append(_Directive(number, words[0], words[1:-1], inner))
            continue
        if "{" in words or "}" in words:
            raise ConfigError(f"Corefile line {number}: put '{{' at the end of a line and '}}' on a line of its own")
        found.append(_Directive(number, words[0], words[1:], []))
        i += 1
    if closing:
        raise ConfigError("Corefile: a block is not closed (missing '}')")
    return found, i


def parse_corefile(text: str) -> DnsConfig:
    blocks, _ = _directives(_tokens(text), 0, False)
    if len(blocks) != 1:
        raise ConfigError("Corefile: podnet serves one server block, like `.:53 { ... }`")
    server = blocks[0]
    zone, _, port = server.name.partition(":")
    if zone != ".":
        raise ConfigError(f"Corefile line {server.line}: the server block must be for '.' (got {zone!r})")
    config = DnsConfig(listen=("0.0.0.0", _integer(port, "port") if port else 53), domain=None, pods="disabled")
    for directive in server.block:
        config = _apply(config, directive)
    return config


def _apply(config: DnsConfig, d: _Directive) -> DnsConfig:
    where = f"Corefile line {d.line}: {d.name}"
    try:
        if d.name in IGNORED_PLUGINS:
            return config
        if d.name in DEFAULT_ADDRESSES:
            address = parse_address(d.args[0], DEFAULT_ADDRESSES[d.name][1]) if d.args else DEFAULT_ADDRESSES[d.name]
            return replace(config, http={**config.http, d.name: address})
        if d.name == "kubernetes":
            return _kubernetes(config, d)
        if d.name == "hosts":
            return replace(config, hosts_file=d.args[0] if d.args else "/etc/hosts")
        if d.name == "forward":
            return _forward(config, d)
        if d.name == "cache":
            return _cache(config, d)
        if d.name == "loop":
            return replace(config, loop_check=True)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None
    raise ConfigError(f"{where}: unknown plugin (podnet knows: kubernetes, hosts, forward, cache, loop, health, "
                      f"ready, prometheus, {', '.join(IGNORED_PLUGINS)})")


def _first(d: _Directive) -> str:
    return d.args[0] if d.args else ""


def _choice(option: _Directive, choices: tuple[str, ...]) -> str:
    if _first(option) not in choices:
        raise ConfigError(f"{option.name} must be one of {', '.join(choices)}")
    return _first(option)


def _kubernetes(config: DnsConfig, d: _Directive) -> DnsConfig:
    zones = [z.rstrip(".") for z in d.args if not z.endswith(("in-addr.arpa", "ip6.arpa"))]
    if len(zones) != 1:
        raise ConfigError("name exactly one cluster zone (reverse zones are answered anyway)")
    config = replace(config, domain=zones[0])
    for option in d.block:
        if option.name == "pods":
            config = replace(config, pods=_choice(option, POD_MODES))
        elif option.name == "ttl":
            config = replace(config, ttl=_integer(_first(option), "ttl"))
        elif option.name not in ("fallthrough", "endpoint", "namespaces"):
            raise ConfigError(f"unknown option {option.name!r}")
    return config


def _forward(config: DnsConfig, d: _Directive) -> DnsConfig:
    if len(d.args) < 2 or d.args[0] != ".":
        raise ConfigError("write `forward . UPSTREAM...`; podnet forwards every name outside its zones")
    upstreams: list[Address] = []
    for target in d.args[1:]:
        upstreams += resolv_conf_servers(target) if target.startswith("/") else [parse_address(target, 53)]
    config = replace(config, upstreams=tuple(upstreams))
    for option in d.block:
        if option.name == "policy":
            config = replace(config, policy=_choice(option, POLICIES))
        elif option.name == "health_check":
            config = replace(config, health_check=_duration(_first(option)))
        elif option.name == "max_fails":
            config = replace(config, max_fails=_integer(_first(option), "max_fails"))
        elif option.name == "expire":
            config = replace(config, expire=_duration(_first(option)))
        elif option.name not in ("force_tcp", "prefer_udp", "max_concurrent"):
            raise ConfigError(f"unknown option {option.name!r}")
    return config


def _cache(config: DnsConfig, d: _Directive) -> DnsConfig:
    config = replace(config, cache_max_ttl=_integer(d.args[0], "ttl") if d.args else config.cache_max_ttl)
    for option in d.block:
        if option.name in ("success", "denial"):
            config = replace(config, cache_capacity=_integer(_first(option), option.name))
        elif option.name == "prefetch":
            amount = _integer(option.args[0], "prefetch") if option.args else 1
            window = _duration(option.args[1]) if len(option.args) > 1 else 60.0
            percent = _integer(option.args[2].rstrip("%"), "prefetch percentage") if len(option.args) > 2 else 10
            config = replace(config, prefetch=Prefetch(amount, window, percent))
        elif option.name != "serve_stale":
            raise ConfigError(f"unknown option {option.name!r}")
    return config
