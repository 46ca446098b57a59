"""Each network backend and each proxy mode is named in one registry
(network/backends.py, proxy/modes.py): flags, lab files, --help, the agent
and trace read it, so no other module spells a name (DESIGN.md: one registry
per choice). Docs and tests may."""

from __future__ import annotations

import ast
from pathlib import Path

import podnet
from podnet.network import backends
from podnet.proxy import modes

ROOT = Path(podnet.__file__).parent
REGISTRIES = {"network/backends.py": set(backends.BACKENDS), "proxy/modes.py": set(modes.MODES)}
# The same words meaning something else, each with its reason.
OTHER_MEANINGS = {
    ("kernel/vxlan.py", "vxlan"): "the kernel's link kind",
    ("kernel/nftables/nft.py", "nftables"): "libnftables' name, and its JSON's top key",
    ("kernel/nftables/nfnl.py", "nftables"): "what the root-namespace guard names",
    ("model/service.py", "nftables"): "a value of the per-Service annotation podnet.dev/proxy-mode, "
                                      "checked by the model, a floor below the proxy",
    ("model/service.py", "userspace"): "the same annotation's other value",
}


def _spelled(path: Path, names: set[str]) -> set[str]:
    """The names that occur as a string, or a word of one (an f-string's text, a help text)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found |= {name for name in names if name == node.value or f'"{name}"' in node.value}
    return found


def test_backends_and_proxy_modes_are_named_in_their_registries_only() -> None:
    names = set().union(*REGISTRIES.values())
    stray = []
    for path in sorted(ROOT.rglob("*.py")):
        where = str(path.relative_to(ROOT))
        if where in REGISTRIES:
            continue
        stray += [f"{where}: {name!r}" for name in sorted(_spelled(path, names)) if (where, name) not in OTHER_MEANINGS]
    assert stray == []


def test_every_registered_name_is_in_its_registry_once() -> None:
    for where, names in REGISTRIES.items():
        source = (ROOT / where).read_text()
        assert all(source.count(f'"{name}"') == 1 for name in names), where
