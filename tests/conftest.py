"""Suite-wide guard: the root network namespace is the same after the suite as
before it, and nothing the suite made (namespace, lab record, process) is left
over. The suite works in a lab scope of its own (scope.py), so a user's lab, up
before or during a run, neither fails the check nor is removed by its cleanup."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from podnet.lab import names

from tests import rootns, scope

os.environ[names.SCOPE_VARIABLE] = scope.SCOPE  # here, at import: every podnet the suite starts inherits it


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
        subprocess.run([sys.executable, "-m", "podnet", "lab", "down", "--all", "--prefix", scope.NAMESPACES],
                       capture_output=True)
        pytest.fail("the suite changed the machine:\n" + "\n".join(problems), pytrace=False)
