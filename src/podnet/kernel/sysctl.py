"""Sysctls of one namespace (net.* keys are per namespace in the kernel)."""

from __future__ import annotations

from pathlib import Path

from podnet.kernel import netns


def _proc_path(key: str) -> Path:
    """A key as "net.ipv4.ip_forward", or with slashes ("net/ipv6/conf/eth0.100/accept_dad")
    where a part (an interface's name) holds a dot, as sysctl(8) takes it."""
    parts = key.split("/") if "/" in key else key.split(".")
    if parts[0] != "net" or ".." in parts:
        raise ValueError(f"only net.* sysctls are per namespace, not {key}")
    return Path("/proc/sys").joinpath(*parts)


def get(namespace: str, key: str) -> str:
    return netns.run_in(namespace, lambda: _proc_path(key).read_text().strip())


def read_path(ns_path: str, key: str) -> str | None:
    """A sysctl of the namespace at ns_path, or None where the kernel has no such
    key (an interface that is not there; IPv6 turned off at boot)."""

    def read() -> str | None:
        try:
            return _proc_path(key).read_text().strip()
        except FileNotFoundError:
            return None

    return netns.run_in_path(ns_path, read)


def ensure(namespace: str, key: str, value: str) -> bool:
    """Set the sysctl if it differs; returns whether it changed."""
    return ensure_path(str(netns.path(namespace)), key, value)


def ensure_path(ns_path: str, key: str, value: str) -> bool:
    """The same for a namespace given by path (a CNI plugin's host namespace)."""
    return bool(ensure_all_path(ns_path, {key: value}))


def ensure_all_path(ns_path: str, settings: dict[str, str]) -> list[str]:
    """Several sysctls of one namespace, in one visit to it (a thread for a
    namespace other than the caller's); returns the keys that changed."""
    netns.guard_root(ns_path, f"sysctl {', '.join(settings)}")

    def apply() -> list[str]:
        changed = []
        for key, value in settings.items():
            target = _proc_path(key)
            if target.read_text().strip() != value:
                target.write_text(value)
                changed.append(key)
        return changed

    return netns.run_in_path(ns_path, apply)
