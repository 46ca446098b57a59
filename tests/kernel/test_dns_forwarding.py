"""`podnet dns` forwarding to a real upstream (another `podnet dns`), and its cache."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from podnet.kernel import netns
from tests.helpers import in_netns


def start(namespace: str, store: Path, port: int, *extra: str) -> subprocess.Popen:  # type: ignore[type-arg]
    process = subprocess.Popen(netns.exec_argv(namespace, [
        sys.executable, "-m", "podnet", "dns", "--store", str(store), "--listen", "127.0.0.1", "--port", str(port),
        *extra]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while in_netns(namespace, "sh", "-c", f"nc -z 127.0.0.1 {port}", check=False).returncode != 0:
        assert time.monotonic() < deadline and process.poll() is None, "podnet dns did not start"
        time.sleep(0.05)
    return process


def dig(namespace: str, port: int, *args: str) -> str:
    return in_netns(namespace, "dig", "@127.0.0.1", "-p", str(port), "+time=1", "+tries=1", *args, check=False).stdout


def test_forwarding_and_cache(make_netns, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    if os.geteuid() != 0:
        pytest.skip("needs root")
    namespace = make_netns()
    upstream = start(namespace, tmp_path / "up.db", 5300, "--zone", "example.org", "--ttl", "60")
    resolver = start(namespace, tmp_path / "cluster.db", 5301, "--forward", "127.0.0.1:5300")
    try:
        assert dig(namespace, 5301, "+short", "TXT", "dns-version.example.org").strip() == '"1.1.0"'
        assert dig(namespace, 5301, "+short", "TXT", "dns-version.cluster.local").strip() == '"1.1.0"'
        negative = dig(namespace, 5301, "nope.example.org")
        assert "status: NXDOMAIN" in negative and "SOA" in negative
        upstream.terminate()
        upstream.wait()
        # the upstream is gone: the repeat questions are answered from the cache
        assert dig(namespace, 5301, "+short", "TXT", "dns-version.example.org").strip() == '"1.1.0"'
        assert "status: NXDOMAIN" in dig(namespace, 5301, "nope.example.org")
        assert "status: SERVFAIL" in dig(namespace, 5301, "other.example.org")  # not cached, no upstream
    finally:
        for process in (upstream, resolver):
            process.kill()
            process.wait()
