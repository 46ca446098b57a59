"""How lab objects are named in the kernel.

Namespaces are "pn-<lab>" (a cluster's fabric), "pn-<lab>.<node>" and
"pn-<lab>.<namespace>.<pod>": the dots keep one lab's names from being a prefix
of another's, and `ip netns` reads like a map of the lab.
Link names must fit the kernel's 15 characters, so long ones get a hash.

A scope (PODNET_LAB_SCOPE, which the test suite sets) keeps one user of the
machine's labs apart from another's: in scope "test" every lab is named
"test_<name>", so its namespaces start with "pn-test_". A lab's own name is a
DNS label, which holds no '_', so no lab made outside a scope ever has such a
name, and the scope finds, checks and removes only its own.
"""

from __future__ import annotations

import os

from podnet.kernel.netns import PREFIX

IFNAMSIZ = 15
SCOPE_VARIABLE = "PODNET_LAB_SCOPE"
_SCOPE_SEPARATOR = "_"


def scope_prefix(scope: str | None = None) -> str:
    """What a scope's lab names start with ("test_" for "test"); nothing outside
    a scope. By default the scope this process runs in."""
    scope = os.environ.get(SCOPE_VARIABLE, "") if scope is None else scope
    return f"{scope}{_SCOPE_SEPARATOR}" if scope else ""


def in_scope(lab: str) -> bool:
    """Whether this process's scope holds the lab; outside a scope, every lab."""
    return lab.startswith(scope_prefix())


def scope_namespaces() -> str:
    """What every namespace of this process's scope starts with ("pn-" outside one)."""
    return lab_namespace(scope_prefix())


def lab_namespace(lab: str) -> str:
    return f"{PREFIX}{lab}"


def lab_prefix(lab: str) -> str:
    """Every namespace of the lab but the first starts with this."""
    return f"{PREFIX}{lab}."


def member_namespace(lab: str, member: str) -> str:
    """A node of a cluster, or a host, router or switch of a topology."""
    return f"{lab_prefix(lab)}{member}"


def pod_namespace(lab: str, namespace: str, pod: str) -> str:
    return f"{lab_prefix(lab)}{namespace}.{pod}"


def _digest(text: str, length: int) -> str:
    import hashlib  # here: hashlib loads OpenSSL, and most commands name no link

    return hashlib.sha1(text.encode()).hexdigest()[:length]


KERNEL_RESERVED_IFNAMES = ("all", "default")  # they would clash with /proc/sys/net/*/conf/{all,default}


def short_ifname(name: str) -> str:
    """The name itself when it fits (and the kernel takes it), else a recognisable
    head and a hash."""
    if len(name) <= IFNAMSIZ and name not in KERNEL_RESERVED_IFNAMES:
        return name
    return f"{name[:6]}-{_digest(name, 8)}"

