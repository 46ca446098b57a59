"""The upstream netpol e2e model: namespaces x, y and z labelled ns=<name>, pods
a, b and c in each labelled pod=<name>, each serving TCP and UDP on 80 and 81
under port names like serve-80-tcp. The unit tests of the evaluator and the
conformance suite both build on it.

Dual stack: `model_pods(families=(IPV4, IPV6))` gives each pod an address of
each family (10.244.0.<n> and fd00:10:244::<n>), and `truth_table(...,
family=IPV6)` and `addresses(..., IPV6)` judge and probe by the IPv6 ones. Left
out, the family is each pod's primary one, as before dual stack."""

from __future__ import annotations

from typing import Any

import yaml

from podnet.model.clusternetworkpolicy import ClusterNetworkPolicy
from podnet.model.families import IPV4, IPV6, first_of
from podnet.model.manifest import parse_resource
from podnet.model.meta import ObjectMeta
from podnet.model.namespace import Namespace
from podnet.model.networkpolicy import NetworkPolicy
from podnet.model.pod import Container, ContainerPort, Pod

NAMESPACES, PODS = ("x", "y", "z"), ("a", "b", "c")
PORTS = tuple((port, protocol) for port in (80, 81) for protocol in ("TCP", "UDP"))


def port_name(port: int, protocol: str) -> str:
    return f"serve-{port}-{protocol.lower()}"


def model_namespaces() -> list[Namespace]:
    return [Namespace(ObjectMeta(name, namespace="", labels={"ns": name})).labelled() for name in NAMESPACES]


MODEL_ADDRESSES = {IPV4: "10.244.0.{n}", IPV6: "fd00:10:244::{n}"}  # the n-th pod's, n from 10


def model_pods(ips: dict[str, str | tuple[str, ...]] | None = None, node: str = "node1",
               families: tuple[str, ...] = (IPV4,)) -> list[Pod]:
    """Pods x/a .. z/c; `ips` (an address or one per family) by "ns/pod", else
    an address of each of `families` (the first primary): 10.244.0.<n>, fd00:10:244::<n>."""
    pods = []
    for i, (namespace, name) in enumerate((n, p) for n in NAMESPACES for p in PODS):
        ports = tuple(ContainerPort(port, port_name(port, protocol), protocol) for port, protocol in PORTS)
        key = f"{namespace}/{name}"
        given = (ips or {}).get(key)
        pod_ips = (given,) if isinstance(given, str) else given or \
            tuple(MODEL_ADDRESSES[family].format(n=10 + i) for family in families)
        pods.append(Pod(ObjectMeta(name, namespace, labels={"pod": name}), (Container("serve", ports=ports),),
                        node_name=node, pod_ips=pod_ips, ready=True, phase="Running"))
    return pods


def addresses(pods: Any, family: str | None = None) -> dict[str, str]:
    """ "ns/pod" -> the address to probe it at: of `family`, or its primary one."""
    return {p.metadata.key: (first_of(p.pod_ips, family) if family else p.pod_ip) or "" for p in pods}


def policy(text: str, **values: Any) -> NetworkPolicy:
    """A NetworkPolicy from YAML, formatted with `values`."""
    found = parse_resource(yaml.safe_load(text.format(**values) if values else text))
    assert isinstance(found, NetworkPolicy)
    return found


def policies(texts: list[str]) -> tuple[list[NetworkPolicy], list[ClusterNetworkPolicy]]:
    """NetworkPolicies and ClusterNetworkPolicies (and the v1alpha1 kinds read as them) from YAML."""
    found = [parse_resource(yaml.safe_load(text)) for text in texts]
    return ([p for p in found if isinstance(p, NetworkPolicy)],
            [p for p in found if isinstance(p, ClusterNetworkPolicy)])


def truth_table(view: Any, port: int, protocol: str = "TCP", family: str | None = None) -> dict[tuple[str, str], bool]:
    """(from, to) -> allowed for every pair of the model's pods, by the evaluator,
    the pods talking over their addresses of `family` (by default their primary one)."""
    from podnet.policy.evaluator import evaluate

    pods = view.pods
    return {(s.metadata.key, d.metadata.key):
            evaluate(view, view.of_pod(s, family), view.of_pod(d, family), port, protocol).allowed
            for s in pods for d in pods}


def only(table: dict[tuple[str, str], bool]) -> set[tuple[str, str]]:
    """The denied pairs: what a case asserts, as most pairs stay allowed."""
    return {pair for pair, allowed in table.items() if not allowed}
