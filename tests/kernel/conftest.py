from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest

from podnet.kernel import netns
from podnet.kernel.netlink import open_namespace

from tests import scope


@pytest.fixture
def make_netns() -> Iterator[Callable[[], str]]:
    """Fresh podnet namespaces for one test, removed (with their processes) after it."""
    if os.geteuid() != 0:
        pytest.skip("kernel tests need root")
    created: list[str] = []

    def make() -> str:
        name = f"{scope.NAMESPACES}kernel.{uuid.uuid4().hex[:8]}"
        netns.create(name)
        created.append(name)
        return name

    yield make
    netns.kill_processes_in(created)
    for name in created:
        netns.delete(name)


@pytest.fixture
def make_veth_pair(make_netns: Callable[[], str]) -> Callable[[str, str, str], tuple[str, str]]:
    """Two fresh namespaces joined by a veth, `ifname` in the first and eth0 in
    the second, each end addressed and up; returns the two namespaces."""

    def make(ifname: str, address: str, peer_address: str) -> tuple[str, str]:
        near, far = make_netns(), make_netns()
        with open_namespace(near) as ns:
            ns.ensure_veth(ifname, "eth0", far)
            ns.ensure_address(ifname, address)
            ns.set_up(ifname)
        with open_namespace(far) as ns:
            ns.ensure_address("eth0", peer_address)
            ns.set_up("eth0")
        return near, far

    return make
