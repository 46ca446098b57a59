"""The seed's ipvsadm numbers, for real, through the userspace proxy mode."""

from __future__ import annotations

import collections
import json
import time
from collections.abc import Iterator

import pytest

from tests.helpers import in_netns, podnet, renamed_example

LAB = "test_ipvs"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    podnet("lab", "up", str(renamed_example("ipvs.yaml", LAB, tmp_path_factory.mktemp("ipvs"))))
    try:
        services = json.loads(podnet("get", "svc", "-A", "--lab", LAB, "-o", "json").stdout)["items"]
        yield {s["metadata"]["name"]: s["spec"]["clusterIP"] for s in services}
    finally:
        podnet("lab", "down", LAB)


def split(lab: dict[str, str], service: str, count: int) -> collections.Counter:  # type: ignore[type-arg]
    """count connections one after another, as `for i in {1..100}; do curl ...; done`."""
    script = f'for i in $(seq {count}); do curl -s -m 2 http://{lab[service]}/; echo "<>"; done'
    out = in_netns(f"pn-{LAB}.default.client", "sh", "-c", script, timeout=120).stdout
    got = collections.Counter(json.loads(chunk)["pod"] for chunk in out.split("<>") if chunk.strip())
    assert sum(got.values()) in (0, count), f"only {sum(got.values())} of {count} requests were answered"
    return got


def wait_for_proxy(lab: dict[str, str], service: str) -> None:
    deadline = time.monotonic() + 5
    while not split(lab, service, 1):
        assert time.monotonic() < deadline, f"{service} is not proxied"
        time.sleep(0.1)


def test_round_robin_splits_100_as_33_33_34(lab: dict[str, str]) -> None:
    wait_for_proxy(lab, "web-rr")
    assert sorted(split(lab, "web-rr", 100).values()) == [33, 33, 34]


def test_weighted_least_connection_with_weights_1_1_98(lab: dict[str, str]) -> None:
    got = split(lab, "web-wlc", 100)
    assert sorted(got.values()) == [1, 1, 98] and got["web-c"] == 98


def test_udp_round_robin(lab: dict[str, str]) -> None:
    address = lab["dns-rr"]
    pods = []
    for _ in range(6):
        out = in_netns(f"pn-{LAB}.default.client", "sh", "-c", f"echo hi | nc -u -w2 {address} 53").stdout
        assert out, "a datagram went unanswered"
        pods.append(json.loads(out)["pod"])
    assert collections.Counter(pods) == {"web-a": 2, "web-b": 2, "web-c": 2}
