"""Writing the plugin binaries: the C relay when it is built, small Python
launchers for the thin entry point otherwise, and the launchers always beside
them (in .podnet/) for the relay to fall back on when no agent runs."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import podnet
from podnet.errors import PodnetError

PLUGINS = ("podnet-bridge", "podnet-host-local", "podnet-dhcp", "podnet-loopback", "podnet-portmap")
RELAY_SOURCE = Path(__file__).with_name("relay.c")
RELAY = Path(__file__).with_name("relay")  # built from relay.c by ./run
FALLBACK_DIR = ".podnet"
RELAYS = ("auto", "c", "python")


def launcher(plugin: str) -> str:
    """-I ignores the environment's PYTHON* settings, -S skips site-packages: the
    relay needs neither, and they cost more than the relay itself."""
    source = Path(podnet.__file__).resolve().parent.parent
    return (f"#!{sys.executable} -IS\n"
            "import sys\n"
            f"sys.path.insert(0, {str(source)!r})\n"
            "from podnet.cni.entry import main\n"
            f"main({plugin!r})\n")


def c_relay_built() -> bool:
    return RELAY.exists() and RELAY.stat().st_mtime >= RELAY_SOURCE.stat().st_mtime


def _write(path: Path, content: bytes | Path) -> None:
    """Atomically, so a runtime exec'ing the plugin meanwhile sees the old one or the new."""
    tmp = path.with_name(f".{path.name}.tmp")
    if isinstance(content, Path):
        shutil.copyfile(content, tmp)
    else:
        tmp.write_bytes(content)
    tmp.chmod(0o755)
    tmp.replace(path)


def install(directory: str | Path, relay: str = "auto") -> list[Path]:
    """The plugins in `directory`: `relay` is "c", "python", or "auto" (C when built)."""
    if relay not in RELAYS:
        raise PodnetError(f"relay must be one of {', '.join(RELAYS)}, not {relay!r}")
    use_c = relay == "c" or (relay == "auto" and c_relay_built())
    if use_c and not c_relay_built():
        raise PodnetError(f"the C relay is not built (or older than {RELAY_SOURCE.name}): "
                          f"run `cc -O2 -o {RELAY} {RELAY_SOURCE}`, or ./run, which does")
    target = Path(directory)
    (target / FALLBACK_DIR).mkdir(parents=True, exist_ok=True)
    written = []
    for plugin in PLUGINS:
        _write(target / FALLBACK_DIR / plugin, launcher(plugin).encode())
        path = target / plugin
        _write(path, RELAY if use_c else launcher(plugin).encode())
        written.append(path)
    return written
