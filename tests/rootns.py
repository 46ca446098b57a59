"""A picture of the root network namespace, to prove the suite never changes it,
and the list of what the suite made that is still here. Both leave out a user's
own labs (scope.py), which may come and go during a run."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from podnet.kernel import netns
from podnet.lab import state

from tests import scope

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
        "netns": "".join(line for line in _run("ip", "netns", "list").splitlines(keepends=True)
                         if not scope.is_foreign(line.split(" ")[0])),
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
    """Anything the suite made that is still here: namespaces, lab records,
    agents' sockets, DHCP lease records, processes. A user's lab is told apart by
    its names, and what is named by a namespace's inode (a socket) or found by its
    command line (a process) by living in one of the user's namespaces. Those are
    listed last, so a user's lab that comes or goes meanwhile is still told apart."""
    agents = Path("/run/podnet/agents")
    sockets = _entries(agents)
    processes = [line for line in _run("pgrep", "-a", "-f", r"podnet(\.echo|\.supervise| agent| echo| cni serve| controller| apiserver| dns --store /run/podnet| cni dhcp-daemon)").splitlines()
                 if int(line.split()[0]) != os.getpid()]
    foreign = {identity for name in netns.list_namespaces() if scope.is_foreign(name)
               and (identity := _identity(str(netns.path(name))))}
    found = [f"namespace {name}" for name in netns.list_namespaces(scope.NAMESPACES)]
    found += [f"lab record {entry}" for entry in _entries(state.labs_dir()) if entry.startswith(scope.LABS)]
    found += [f"/etc/netns/{entry}" for entry in _entries(netns.ETC_NETNS) if scope.is_ours(entry)]
    their_sockets = {f"net-{inode}" for _, inode in foreign}
    found += [f"agent socket {entry}" for entry in sockets
              if entry.split(".")[0] not in their_sockets and (agents / entry).exists()]
    # the suite's DHCP daemons keep their records elsewhere, as a lab's do: anything here is a stray daemon's
    found += [f"DHCP lease record {entry}" for entry in _entries(Path("/run/podnet/dhcp-leases"))]
    for line in processes:
        identity = _identity(f"/proc/{line.split()[0]}/ns/net")
        if identity and identity not in foreign:
            found.append(f"process {line}")
    return found


def _entries(directory: Path) -> list[str]:
    return sorted(os.listdir(directory)) if directory.is_dir() else []


def _identity(ns_path: str) -> tuple[int, int] | None:
    """A network namespace's identity; None for one gone (or a process ended)."""
    try:
        st = os.stat(ns_path)
    except OSError:
        return None
    return st.st_dev, st.st_ino
