"""Writing the plugin binaries: small launchers for the thin entry point."""

from __future__ import annotations

import sys
from pathlib import Path

import podnet

PLUGINS = ("podnet-bridge", "podnet-host-local", "podnet-loopback", "podnet-portmap")


def launcher(plugin: str) -> str:
    """-I ignores the environment's PYTHON* settings, -S skips site-packages: the
    relay needs neither, and they cost more than the relay itself."""
    source = Path(podnet.__file__).resolve().parent.parent
    return (f"#!{sys.executable} -IS\n"
            "import sys\n"
            f"sys.path.insert(0, {str(source)!r})\n"
            "from podnet.cni.entry import main\n"
            f"main({plugin!r})\n")


def install(directory: str | Path) -> list[Path]:
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for plugin in PLUGINS:
        path = target / plugin
        tmp = path.with_suffix(".tmp")
        tmp.write_text(launcher(plugin))
        tmp.chmod(0o755)
        tmp.replace(path)
        written.append(path)
    return written
