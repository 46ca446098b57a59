"""The enforcer's table in the Fake: every pair of the netpol model is traced
through the nodes it crosses, and where each packet ends must equal the
evaluator's answer: on single-stack pods, and on dual-stack ones over each
family. SCTP is traced here only: this kernel has no SCTP, so the real-packet
suite (tests/e2e/test_netpol.py) probes TCP and UDP."""

from __future__ import annotations

import pytest

from podnet.kernel.nftables import Set
from podnet.kernel.nftables.batch import encode
from podnet.kernel.nftables.fake import Fake
from podnet.kernel.nftables.tracer import Packet, Tracer, verdicts
from podnet.model.families import IPV4, IPV6
from podnet.model.meta import ObjectMeta
from podnet.model.node import Node
from podnet.policy.evaluator import PolicyView
from podnet.policy.ruleset import TABLE, render
from tests.policy_model import addresses, model_namespaces, model_pods, policies, truth_table

NODES = ("node1", "node2")
DUAL = (IPV4, IPV6)
STACKS = {  # the pods' families, and the family their connections use (None: each pod's primary one)
    "single-stack": ((IPV4,), None),
    "dual-stack-over-IPv4": (DUAL, IPV4),
    "dual-stack-over-IPv6": (DUAL, IPV6),
}
CASES = {
    "none": [],
    "deny-all-ingress": ["""
kind: NetworkPolicy
metadata: {name: deny, namespace: x}
spec: {podSelector: {}}
"""],
    "deny-all-both-ways": ["""
kind: NetworkPolicy
metadata: {name: deny, namespace: y}
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
"""],
    "and-or-peers-and-ports": ["""
kind: NetworkPolicy
metadata: {name: mixed, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {ns: y}}, podSelector: {matchLabels: {pod: b}}}, {podSelector: {matchLabels: {pod: c}}}]
    ports: [{port: 80}, {port: 81, protocol: UDP}]
  - from: [{namespaceSelector: {matchLabels: {ns: z}}}]
    ports: [{port: 79, endPort: 81}]
"""],
    "named-ports-and-ip-blocks": ["""
kind: NetworkPolicy
metadata: {name: named, namespace: z}
spec:
  podSelector: {}
  ingress:
  - ports: [{port: serve-81-tcp}, {port: serve-80-udp, protocol: UDP}]
  - from: [{ipBlock: {cidr: 10.244.0.0/16, except: [10.244.0.13/32, 10.244.1.0/24]}}]
"""],
    "audit-beside-enforced": ["""
kind: NetworkPolicy
metadata: {name: watch, namespace: x, annotations: {podnet.dev/enforcement: audit}}
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
""", """
kind: NetworkPolicy
metadata: {name: from-b, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress: [{from: [{podSelector: {matchLabels: {pod: b}}}]}]
"""],
    "sctp": ["""
kind: NetworkPolicy
metadata: {name: sctp-only, namespace: y}
spec:
  podSelector: {}
  ingress: [{ports: [{protocol: SCTP, port: 80}]}]
"""],
    "admin-deny-beats-allow": ["""
kind: ClusterNetworkPolicy
metadata: {name: no-z-into-x}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {matchLabels: {ns: x}}}
  ingress: [{action: Deny, from: [{namespaces: {matchLabels: {ns: z}}}]}]
""", """
kind: NetworkPolicy
metadata: {name: all-in, namespace: x}
spec: {podSelector: {}, ingress: [{}]}
"""],
    "admin-pass-then-networkpolicy-then-baseline": ["""
kind: ClusterNetworkPolicy
metadata: {name: pass-y}
spec:
  tier: Admin
  priority: 5
  subject: {namespaces: {}}
  ingress:
  - {action: Pass, from: [{namespaces: {matchLabels: {ns: y}}}]}
  - {action: Accept, from: [{pods: {namespaceSelector: {}, podSelector: {matchLabels: {pod: c}}}}],
     match: [{tcp: {port: {number: 80}}}]}
""", """
kind: ClusterNetworkPolicy
metadata: {name: lower}
spec:
  tier: Admin
  priority: 20
  subject: {namespaces: {}}
  ingress: [{action: Deny, from: [{namespaces: {matchLabels: {ns: y}}}]}]
""", """
kind: NetworkPolicy
metadata: {name: only-b, namespace: x}
spec: {podSelector: {matchLabels: {pod: a}}, ingress: [{from: [{namespaceSelector: {}, podSelector: {matchLabels: {pod: b}}}]}]}
""", """
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject: {pods: {namespaceSelector: {matchLabels: {ns: z}}, podSelector: {}}}
  ingress: [{action: Deny, from: [{namespaces: {}}]}]
  egress:
  - {action: Allow, to: [{pods: {namespaceSelector: {}, podSelector: {matchLabels: {pod: a}}}}],
     ports: [{portNumber: {protocol: UDP, port: 81}}]}
  - {action: Deny, to: [{networks: [10.244.0.0/16]}]}
"""],
    "ipv6-ip-blocks": ["""
kind: NetworkPolicy
metadata: {name: blocks, namespace: x}
spec:
  podSelector: {}
  policyTypes: [Ingress, Egress]
  ingress:
  - from: [{ipBlock: {cidr: "fd00:10:244::/64", except: ["fd00:10:244::13/128"]}}]
  egress:
  - to: [{ipBlock: {cidr: 10.244.0.0/24, except: [10.244.0.16/30]}}, {ipBlock: {cidr: "fd00:10:244::10/126"}}]
    ports: [{port: 80}, {port: serve-81-udp, protocol: UDP}]
"""],
    "cluster-networks-of-both-families": ["""
kind: ClusterNetworkPolicy
metadata: {name: y-out}
spec:
  tier: Admin
  priority: 1
  subject: {namespaces: {matchLabels: {ns: y}}}
  egress:
  - {action: Deny, to: [{networks: ["fd00:10:244::10/127"]}]}
  - {action: Accept, to: [{networks: [10.244.0.0/28]}], match: [{tcp: {port: {number: 80}}}]}
  - {action: Deny, to: [{networks: [10.244.0.0/16, "fd00:10:244::/64"]}]}
  ingress:
  - {action: Deny, from: [{pods: {namespaceSelector: {matchLabels: {ns: z}}, podSelector: {matchLabels: {pod: a}}}}]}
"""],
    "egress-wins": ["""
kind: NetworkPolicy
metadata: {name: out, namespace: x}
spec:
  podSelector: {matchLabels: {pod: b}}
  policyTypes: [Egress]
  egress:
  - to: [{podSelector: {}}]
    ports: [{port: serve-80-tcp}]
""", """
kind: NetworkPolicy
metadata: {name: all-in, namespace: y}
spec: {podSelector: {}, ingress: [{}]}
"""],
}


def _cluster(texts: list[str], families: tuple[str, ...] = (IPV4,)) -> tuple[PolicyView, dict[str, Tracer]]:
    """The model spread over two nodes (x/a, x/c, y/b, ... alternate), a Fake per node."""
    pods = model_pods(families=families)
    pods = [p.scheduled(NODES[i % 2]) for i, p in enumerate(pods)]
    nodes = [Node(ObjectMeta(n, namespace=""), pod_cidrs=(f"10.250.{i}.0/24", f"fd00:10:250:{i}::/64")[:len(families)],
                  internal_ips=(f"192.168.56.{11 + i}", f"fd00:192:168:56::{11 + i}")[:len(families)])
             for i, n in enumerate(NODES)]
    namespaced, cluster_wide = policies(texts)
    view = PolicyView(pods, model_namespaces(), namespaced, nodes, cluster_wide)
    tracers = {}
    for node in NODES:
        fake = Fake()
        table = render(view, node)
        if table is not None:
            fake.run(table)
        tracers[node] = Tracer(fake)
    return view, tracers


def _kernel_allows(view: PolicyView, tracers: dict[str, Tracer], source: str, destination: str, port: int,
                   protocol: str, family: str | None = None) -> bool:
    """The packet crosses the source's node, then (if another) the destination's."""
    by_key = {p.metadata.key: p for p in view.pods}
    s, d = by_key[source], by_key[destination]
    at = addresses(view.pods, family)
    packet = Packet(at[source], at[destination], protocol.lower(), port)
    crossed = dict.fromkeys([s.node_name, d.node_name])
    return all(verdicts(tracers[node or ""].trace(packet)) == {"accept"} for node in crossed)


@pytest.mark.parametrize("stack", sorted(STACKS))
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize(("port", "protocol"), [(80, "TCP"), (81, "TCP"), (80, "UDP"), (81, "UDP"), (80, "SCTP")])
def test_the_table_drops_exactly_what_the_evaluator_denies(case: str, port: int, protocol: str, stack: str) -> None:
    families, family = STACKS[stack]
    view, tracers = _cluster(CASES[case], families)
    expected = truth_table(view, port, protocol, family)
    got = {pair: _kernel_allows(view, tracers, *pair, port, protocol, family) for pair in expected}
    assert got == expected


def test_replies_pass_whatever_the_policies() -> None:
    view, tracers = _cluster(CASES["deny-all-ingress"])
    packet = Packet("10.244.0.13", "10.244.0.10", "tcp", 80, ct_state="established")
    assert verdicts(tracers["node1"].trace(packet)) == {"accept"}
    assert verdicts(tracers["node1"].trace(Packet("10.244.0.13", "10.244.0.10", "tcp", 80))) == {"drop"}


def test_audit_mode_logs_what_it_would_drop_and_drops_nothing() -> None:
    view, tracers = _cluster(CASES["audit-beside-enforced"])
    x_b, y_a = (next(p for p in view.pods if p.metadata.key == key) for key in ("x/b", "y/a"))
    outcomes = tracers[x_b.node_name or ""].trace(Packet(y_a.pod_ip or "", x_b.pod_ip or "", "tcp", 80))
    assert verdicts(outcomes) == {"accept"}
    assert any('log prefix "audit ingress x/watch" group 7170' in hit for o in outcomes for hit in o.hits)


def test_ipv6_replies_pass_whatever_the_policies() -> None:
    view, tracers = _cluster(CASES["deny-all-ingress"], DUAL)
    reply = Packet("fd00:10:244::13", "fd00:10:244::10", "tcp", 80, ct_state="established")
    assert verdicts(tracers["node1"].trace(reply)) == {"accept"}
    assert verdicts(tracers["node1"].trace(Packet("fd00:10:244::13", "fd00:10:244::10", "tcp", 80))) == {"drop"}


def test_a_dual_stack_pod_s_addresses_lead_to_the_same_chain() -> None:
    view, _ = _cluster(CASES["and-or-peers-and-ports"], DUAL)
    table = render(view, "node1")
    assert table is not None
    fake = Fake()
    fake.run(table)
    elements = fake.tables[TABLE].elements
    assert elements["ingress_pods"][("10.244.0.10",)].value == elements["ingress_pods6"][("fd00:10:244::10",)].value


def test_an_ipv4_table_holds_nothing_of_ipv6_and_goes_over_netlink() -> None:
    """A single-stack IPv4 node's table is what it was before dual stack (in an
    inet table): no IPv6 set, map or rule, so the netlink encoder takes it whole
    rather than handing it to nft's script."""
    for case in sorted(CASES):
        view, _ = _cluster(CASES[case])
        table = render(view, "node1")
        if table is None:
            continue
        keys = {obj.key for _, obj in table.operations if isinstance(obj, Set)}
        assert keys and not any("ipv6_addr" in key for key in keys), case
        assert encode(table, {}).messages, case  # raises Unsupported for what only nft's script can build
