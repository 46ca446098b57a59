"""Spec versions: which we speak, and comparing them."""

from __future__ import annotations

from podnet.cni.errors import INCOMPATIBLE_VERSION, CniError

SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
LATEST = SUPPORTED_VERSIONS[-1]


def parse(version: str) -> tuple[int, int, int]:
    try:
        major, minor, patch = (int(part) for part in version.split("."))
    except ValueError:
        raise CniError(INCOMPATIBLE_VERSION, "invalid version", repr(version)) from None
    return major, minor, patch


def at_least(version: str, floor: str) -> bool:
    return parse(version) >= parse(floor)


def check_supported(version: str) -> str:
    """The config's version, if we speak it; the spec's code 1 otherwise."""
    if version not in SUPPORTED_VERSIONS:
        parse(version)
        raise CniError(INCOMPATIBLE_VERSION, "incompatible CNI versions",
                       f"config is {version!r}, plugin supports {list(SUPPORTED_VERSIONS)}")
    return version


def version_info(cni_version: str = LATEST) -> dict[str, object]:
    return {"cniVersion": cni_version, "supportedVersions": list(SUPPORTED_VERSIONS)}
