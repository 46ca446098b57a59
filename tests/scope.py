"""The suite's own names, which no user's lab can have, so the suite checks and
cleans up only what it made and a user's lab stays up through a run.

The suite runs in the lab scope "test" (PODNET_LAB_SCOPE, set by conftest.py for
every podnet it starts): its labs are named test_<name>, and every namespace it
makes, a lab's or a kernel or CNI test's own, starts with pn-test_. A user's lab
is named by a DNS label, which holds no '_'.
"""

from __future__ import annotations

from podnet.kernel import netns
from podnet.lab import names

SCOPE = "test"
LABS = names.scope_prefix(SCOPE)  # "test_": every lab the suite brings up is named so
NAMESPACES = names.lab_namespace(LABS)  # "pn-test_": every namespace the suite makes


def is_ours(namespace: str) -> bool:
    return namespace.startswith(NAMESPACES)


def is_foreign(namespace: str) -> bool:
    """A podnet namespace that someone else made: a user's lab, a benchmark."""
    return namespace.startswith(netns.PREFIX) and not is_ours(namespace)
