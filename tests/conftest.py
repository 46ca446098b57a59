"""Suite-wide guard: the root network namespace is the same after the suite as
before it, and nothing podnet made (namespace, lab record, process) is left over."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests import rootns


@pytest.fixture(scope="session", autouse=True)
def root_namespace_unchanged():  # type: ignore[no-untyped-def]
    if os.geteuid() != 0:
        yield  # only unit tests can run without root, and they touch no kernel state
        return
    leftovers_before = set(rootns.podnet_leftovers())
    before = rootns.snapshot()
    yield
    after = rootns.snapshot()
    problems = rootns.differences(before, after)
    problems += [f"left behind: {item}" for item in rootns.podnet_leftovers() if item not in leftovers_before]
    if problems:
        subprocess.run([sys.executable, "-m", "podnet", "lab", "down", "--all"], capture_output=True)
        pytest.fail("the suite changed the machine:\n" + "\n".join(problems), pytrace=False)
