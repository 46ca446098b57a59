"""A user's own lab, up while the suite runs, is not the suite's (issue 25): the
leftover check leaves it out, the root namespace's picture does not move with it,
and the suite's clean-up removes the suite's labs and leaves the user's up."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from podnet.kernel import netns

from tests import rootns, scope
from tests.helpers import podnet, renamed_example

# "test-...": as close to the suite's names as a user's lab can come
TOPOLOGY = """apiVersion: podnet.dev/v1alpha1
kind: Topology
metadata: {{name: {name}}}
hosts:
  - name: web
    command: [podnet, echo, --port, "80"]
    readyPort: 80
  - name: client
links:
  - endpoints: ["web:eth0", "client:eth0"]
    addresses: [192.168.77.1/24, 192.168.77.2/24]
"""


def user_lab_file(kind: str, name: str, directory: Path) -> Path:
    if kind == "cluster":
        return renamed_example("cluster.yaml", name, directory)
    path = directory / "user.yaml"
    path.write_text(TOPOLOGY.format(name=name))
    return path


def namespaces_of(lab: str) -> list[str]:
    return [ns for ns in netns.list_namespaces(f"pn-{lab}") if ns == f"pn-{lab}" or ns.startswith(f"pn-{lab}.")]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["topology", "cluster"])
def test_a_users_lab_is_neither_a_leftover_nor_cleaned_up(kind: str, tmp_path: Path) -> None:
    user = f"test-{uuid.uuid4().hex[:6]}"
    suites = f"{scope.LABS}scope"
    before = rootns.snapshot()
    podnet("lab", "up", str(user_lab_file(kind, user, tmp_path)), as_user=True, timeout=120)
    try:
        theirs = namespaces_of(user)
        processes = set(netns.processes_in(theirs))
        assert theirs and processes  # the user's lab runs: an echo server, or agents, pods, the control plane
        podnet("lab", "up", str(renamed_example("veth-pair.yaml", suites, tmp_path)))
        sockets = [f"net-{os.stat(netns.path(ns)).st_ino}." for ns in theirs]

        def is_theirs(leftover: str) -> bool:
            if leftover.startswith("process "):
                return int(leftover.split()[1]) in processes
            return user in leftover or any(socket in leftover for socket in sockets)

        leftovers = rootns.podnet_leftovers()
        assert {f"namespace pn-{suites}.red", f"lab record {suites}"} <= set(leftovers)
        assert not [leftover for leftover in leftovers if is_theirs(leftover)], leftovers
        assert user not in podnet("lab", "status").stdout  # the suite does not see it either

        out = podnet("lab", "down", "--all", "--prefix", scope.NAMESPACES + "scope").stdout  # the suite's clean-up
        assert "removed 2 namespaces" in out and not namespaces_of(suites)
        assert namespaces_of(user) == theirs and set(netns.processes_in(theirs)) == processes
        assert user in podnet("lab", "status", user, as_user=True).stdout
        assert rootns.differences(before, rootns.snapshot()) == []
    finally:
        podnet("lab", "down", suites)
        podnet("lab", "down", user, as_user=True)
    assert not namespaces_of(user)
