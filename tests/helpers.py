"""Running podnet and commands inside lab namespaces, as a user would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from podnet.lab import names

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
PODNET = [sys.executable, "-m", "podnet"]


def podnet(*args: str, check: bool = True, timeout: float = 60, as_user: bool = False) -> subprocess.CompletedProcess[str]:
    """podnet in the suite's lab scope (scope.py); as_user: outside it, as a user
    of the machine with labs of their own."""
    env = {**os.environ, "COLUMNS": "200"}
    if as_user:
        env.pop(names.SCOPE_VARIABLE, None)
    proc = subprocess.run([sys.executable, "-m", "podnet", *args], capture_output=True, text=True, timeout=timeout,
                          env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"podnet {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def in_netns(namespace: str, *argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", "netns", "exec", namespace, *argv], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} in {namespace} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def renamed_example(example: str, name: str, directory: Path) -> Path:
    """A copy of an example lab under another lab name, so tests never collide
    with a lab the user has up."""
    documents = list(yaml.safe_load_all((EXAMPLES / example).read_text()))
    documents[0]["metadata"]["name"] = name
    target = directory / example
    target.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return target


def within(seconds: float, check: Callable[[], bool], interval: float = 0.05) -> bool:
    """Whether check() comes true within the seconds given (asked until then)."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def curl_json(namespace: str, url: str) -> dict:  # type: ignore[type-arg]
    return json.loads(in_netns(namespace, "curl", "-s", "-m", "5", url).stdout)


def agent_pid(lab: str, node: str) -> int | None:
    """The node's agent process (not its supervisor, whose command line holds the agent's)."""
    found = subprocess.run(["pgrep", "-f", f"^\\S+ -m podnet agent --node {node} --netns pn-{lab}.{node} "],
                           capture_output=True, text=True).stdout.split()
    assert len(found) <= 1, found
    return int(found[0]) if found else None


def parent_pid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def kill_agent(lab: str, node: str) -> Callable[[], None]:
    """SIGKILL the node's agent with its supervisor held (SIGSTOP), so it stays
    down; returns what lets the supervisor start it again."""
    pid = agent_pid(lab, node)
    assert pid is not None
    supervisor = parent_pid(pid)
    os.kill(supervisor, signal.SIGSTOP)
    os.kill(pid, signal.SIGKILL)
    return lambda: os.kill(supervisor, signal.SIGCONT)
