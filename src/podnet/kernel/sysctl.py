"""Sysctls of one namespace (net.* keys are per namespace in the kernel)."""

from __future__ import annotations

from pathlib import Path

from podnet.kernel import netns


def _proc_path(key: str) -> Path:
    if not key.startswith("net."):
        raise ValueError(f"only net.* sysctls are per namespace, not {key}")
    return Path("/proc/sys") / key.replace(".", "/")


def get(namespace: str, key: str) -> str:
    return netns.run_in(namespace, lambda: _proc_path(key).read_text().strip())


def ensure(namespace: str, key: str, value: str) -> bool:
    """Set the sysctl if it differs; returns whether it changed."""
    return ensure_path(str(netns.path(namespace)), key, value)


def ensure_path(ns_path: str, key: str, value: str) -> bool:
    """The same for a namespace given by path (a CNI plugin's host namespace)."""
    netns.guard_root(ns_path, f"sysctl {key}")

    def apply() -> bool:
        target = _proc_path(key)
        if target.read_text().strip() == value:
            return False
        target.write_text(value)
        return True

    return netns.run_in_path(ns_path, apply)
