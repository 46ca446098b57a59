from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest

from podnet.kernel import netns

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
