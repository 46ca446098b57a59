"""IP families, in Kubernetes' words: a cluster, a Service or an EndpointSlice is
IPv4, IPv6 or both, and the first family it names is its primary one."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IPV4, IPV6 = "IPv4", "IPv6"
FAMILIES = (IPV4, IPV6)
VERSIONS = {IPV4: 4, IPV6: 6}


def family_of(address: str) -> str:
    """The family of an address or a CIDR ("fd00::5", "10.244.0.0/16")."""
    return IPV6 if ":" in address else IPV4


def of_family(addresses: Iterable[str], family: str) -> list[str]:
    return [a for a in addresses if family_of(a) == family]


def first_of(addresses: Iterable[str], family: str) -> str | None:
    return next(iter(of_family(addresses, family)), None)


def families_of(addresses: Iterable[str]) -> tuple[str, ...]:
    """The families present, in the order they first appear."""
    return tuple(dict.fromkeys(family_of(a) for a in addresses))


def version(family: str) -> int:
    return VERSIONS[family]


def is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def host_port(host: str, port: int) -> str:
    """HOST:PORT as URLs and flags write it: an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
