"""IP families, in Kubernetes' words: a cluster, a Service or an EndpointSlice is
IPv4, IPv6 or both, and the first family it names is its primary one."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from podnet.errors import ManifestError
from podnet.model.fields import Fields

IPV4, IPV6 = "IPv4", "IPv6"
FAMILIES = (IPV4, IPV6)
VERSIONS = {IPV4: 4, IPV6: 6}


def family_of(address: str) -> str:
    """The family of an address or a CIDR ("fd00::5", "10.244.0.0/16")."""
    return IPV6 if ":" in address else IPV4


def split_cidrs(text: str) -> tuple[str, ...]:
    """A flag's comma-separated CIDRs ("10.244.0.0/16,fd00:10:244::/56"), as kube's
    --cluster-cidr and --service-cluster-ip-range take them, the primary first."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


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


def parse_families(fields: Fields, key: str) -> tuple[str, ...]:
    """A list of families, as a Service's spec.ipFamilies is checked (in the API's words)."""
    families: list[str] = []
    for path, value in fields.items(key):
        if value not in FAMILIES:
            raise ManifestError(path, f"Unsupported value: {value!r}: supported values: \"IPv4\", \"IPv6\"")
        if value in families:
            raise ManifestError(path, f"Duplicate value: {value!r}")
        families.append(str(value))
    return tuple(families)


def host_port(host: str, port: int) -> str:
    """HOST:PORT as URLs and flags write it: an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
