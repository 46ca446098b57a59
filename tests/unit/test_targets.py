"""How people name the ends of a connection, for trace, policy check and the web
view alike: one row per way of writing it."""

from __future__ import annotations

import pytest

from podnet.model.targets import Reference, TargetError, parse

CASES = {
    "a bare name is a pod in the namespace given": ("web-1", Reference("Pod", "web-1", "apps")),
    "namespace/name is a pod": ("shop/cart-0", Reference("Pod", "cart-0", "shop")),
    "pod/name": ("pod/web-1", Reference("Pod", "web-1", "apps")),
    "po/name, kubectl's short name": ("po/web-1", Reference("Pod", "web-1", "apps")),
    "namespace/pods/name": ("shop/pods/cart-0", Reference("Pod", "cart-0", "shop")),
    "svc/name is a Service": ("svc/web", Reference("Service", "web", "apps")),
    "service/name": ("service/web", Reference("Service", "web", "apps")),
    "namespace/svc/name": ("shop/svc/cart", Reference("Service", "cart", "shop")),
    "node/name has no namespace": ("node/worker", Reference("Node", "worker")),
    "no/name, kubectl's short name": ("no/worker", Reference("Node", "worker")),
    "an IPv4 address": ("10.244.1.2", Reference("address", "10.244.1.2")),
    "an IPv6 address, written canonically": ("fd00:0::1", Reference("address", "fd00::1")),
    "the lab's outside host": ("internet", Reference("internet", "internet")),
    "a pod named like a kind word is a pod": ("node", Reference("Pod", "node", "apps")),
}


@pytest.mark.parametrize("word, expected", CASES.values(), ids=CASES.keys())
def test_ways_of_naming_an_end(word: str, expected: Reference) -> None:
    assert parse(word, "apps") == expected


REFUSED = {
    "an empty part": ("apps//web", "is not a pod"),
    "four parts": ("a/b/c/d", "is not a pod"),
    "three parts without a kind": ("a/b/c", "is not a pod"),
    "a kind that is not an end": ("deploy/web", "a Deployment is not an end of a connection"),
    "a node in a namespace": ("apps/node/worker", "a Node is in no namespace; give node/NAME"),
}


@pytest.mark.parametrize("word, problem", REFUSED.values(), ids=REFUSED.keys())
def test_what_names_no_end_is_refused_in_one_line(word: str, problem: str) -> None:
    with pytest.raises(TargetError, match=problem):
        parse(word, "apps")
