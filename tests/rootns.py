"""A picture of the root network namespace, to prove the suite never changes it."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

# Counters and timers that move on their own; everything else must stay still.
_VOLATILE_SYSCTLS = {"nf_conntrack_count", "tcp_mem", "udp_mem", "tcp_fastopen_key", "base_reachable_time",
                     "base_reachable_time_ms", "stable_secret", "flowlabel_state_ranges"}
_SYSCTL_DIRS = ("net/ipv4", "net/ipv4/conf/all", "net/ipv4/conf/default", "net/ipv6/conf/all",
                "net/ipv6/conf/default", "net/core", "net/bridge", "net/netfilter", "net/unix")


def _run(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=False).stdout


def _sysctls() -> dict[str, str]:
    values = {}
    for directory in _SYSCTL_DIRS:
        base = Path("/proc/sys") / directory
        if not base.is_dir():
            continue
        for entry in sorted(base.iterdir()):
            if not entry.is_file() or entry.name in _VOLATILE_SYSCTLS or not os.access(entry, os.R_OK):
                continue
            try:
                values[f"{directory}/{entry.name}"] = entry.read_text().strip()
            except OSError:
                continue
    return values


def snapshot() -> dict[str, object]:
    """Links, addresses, routes, rules, neighbours of our kind, nft, netns and sysctls."""
    no_lifetimes = re.compile(r"\s+(valid_lft|preferred_lft|expires)\s+\S+")
    return {
        "links": _run("ip", "-o", "link", "show"),
        "addresses": no_lifetimes.sub("", _run("ip", "-o", "addr", "show")),
        "routes": no_lifetimes.sub("", _run("ip", "route", "show", "table", "all")
                                   + _run("ip", "-6", "route", "show", "table", "all")),
        "rules": _run("ip", "rule") + _run("ip", "-6", "rule"),
        "nft": _run("nft", "list", "ruleset"),
        "netns": _run("ip", "netns", "list"),
        "sysctls": _sysctls(),
    }


def differences(before: dict[str, object], after: dict[str, object]) -> list[str]:
    problems = []
    for key in before:
        if before[key] == after[key]:
            continue
        if isinstance(before[key], dict):
            changed = {k for k in set(before[key]) | set(after[key]) if before[key].get(k) != after[key].get(k)}  # type: ignore[union-attr]
            problems.append(f"{key} changed: {sorted(changed)}")
        else:
            problems.append(f"{key} changed:\n--- before\n{before[key]}\n--- after\n{after[key]}")
    return problems


def podnet_leftovers() -> list[str]:
    """Anything podnet made that is still here: namespaces, lab records, processes."""
    found = [f"namespace {name}" for name in _run("ip", "netns", "list").split() if name.startswith("pn-")]
    labs = Path("/run/podnet/labs")
    if labs.is_dir():
        found += [f"lab record {entry}" for entry in os.listdir(labs)]
    etc = Path("/etc/netns")
    if etc.is_dir():
        found += [f"/etc/netns/{entry}" for entry in os.listdir(etc) if entry.startswith("pn-")]
    agents = Path("/run/podnet/agents")
    if agents.is_dir():
        found += [f"agent socket {entry}" for entry in os.listdir(agents)]
    held = Path("/run/podnet/dhcp-leases")
    if held.is_dir():
        found += [f"DHCP lease record {entry}" for entry in os.listdir(held)]
    for line in _run("pgrep", "-a", "-f", r"podnet(\.echo|\.supervise| agent| echo| cni serve| controller| dns --store /run/podnet| cni dhcp-daemon)").splitlines():
        pid = int(line.split()[0])
        if pid != os.getpid():
            found.append(f"process {line}")
    return found
