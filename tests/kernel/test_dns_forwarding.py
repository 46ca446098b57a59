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


def start(namespace: str, port: int, *options: str) -> subprocess.Popen:  # type: ignore[type-arg]
    process = subprocess.Popen(netns.exec_argv(namespace, [
        sys.executable, "-m", "podnet", "dns", "--listen", "127.0.0.1", "--port", str(port), *options]),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
    upstream = start(namespace, 5300, "--store", str(tmp_path / "up.db"), "--zone", "example.org", "--ttl", "60")
    resolver = start(namespace, 5301, "--store", str(tmp_path / "cluster.db"), "--forward", "127.0.0.1:5300")
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


def hosts_upstream(namespace: str, tmp_path: Path, port: int, address: str) -> subprocess.Popen:  # type: ignore[type-arg]
    """An upstream answering n0..n299.example.org with `address`."""
    hosts = tmp_path / f"hosts-{port}"
    hosts.write_text("".join(f"{address} n{i}.example.org\n" for i in range(300)))
    return start(namespace, port, "--zone", "", "--hosts", str(hosts))


def test_a_dead_upstream_is_checked_left_out_and_taken_back(make_netns, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """As CoreDNS's forward: an upstream that failed is asked `. NS` every 0.5 s;
    once three checks in a row go unanswered it is down and queries skip it; when
    it answers again, it is first in line again (policy sequential)."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    namespace = make_netns()
    silent = subprocess.Popen(netns.exec_argv(namespace, [  # reads queries and never answers
        sys.executable, "-c", "import socket, time; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
        "s.bind(('127.0.0.1', 5311)); time.sleep(120)"]))
    hosts_upstream(namespace, tmp_path, 5312, "203.0.113.2")
    start(namespace, 5313, "--zone", "", "--forward", "127.0.0.1:5311", "--forward", "127.0.0.1:5312",
          "--policy", "sequential", "--no-loop-check", "--metrics", "127.0.0.1:9153")
    names = (f"n{i}.example.org" for i in range(300))  # a new name each time: none comes from the cache

    def ask() -> tuple[str, float]:
        started = time.monotonic()
        answer = dig(namespace, 5313, "+short", "+time=4", next(names)).strip()
        return answer, time.monotonic() - started

    answer, took = ask()
    assert answer == "203.0.113.2" and took >= 2  # the first waits out the silent one's 2 s
    deadline = time.monotonic() + 6
    while ask()[1] > 0.5:  # the silent one is still asked first, and waited for
        assert time.monotonic() < deadline, "the silent upstream was not left out within 6 s"
    answer, took = ask()
    assert answer == "203.0.113.2" and took < 0.5
    metrics = in_netns(namespace, "curl", "-s", "http://127.0.0.1:9153/metrics").stdout
    checks = [line for line in metrics.splitlines()
              if line.startswith('coredns_proxy_healthcheck_failures_total{proxy_name="forward",to="127.0.0.1:5311"}')]
    assert checks and float(checks[0].split()[-1]) >= 3
    silent.kill()
    silent.wait()
    hosts_upstream(namespace, tmp_path, 5311, "203.0.113.1")  # it comes back
    deadline = time.monotonic() + 3
    while ask()[0] != "203.0.113.1":
        assert time.monotonic() < deadline, "the upstream that came back was not taken back within 3 s"
        time.sleep(0.1)
