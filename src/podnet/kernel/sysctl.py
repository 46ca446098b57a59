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

    def apply() -> bool:
        target = _proc_path(key)
        if target.read_text().strip() == value:
            return False
        target.write_text(value)
        return True

    return netns.run_in(namespace, apply)
