"""Running podnet and commands inside lab namespaces, as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def podnet(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "podnet", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "COLUMNS": "200"})
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
