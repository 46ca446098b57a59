"""NetworkPolicy semantics on the upstream netpol model, by the pure evaluator:
the oracle the conformance suite compares the kernel with. On dual-stack pods,
selectors answer alike over IPv4 and IPv6, and an ipBlock only over its CIDR's family."""

from __future__ import annotations

from dataclasses import replace

import pytest

from podnet.errors import ManifestError
from podnet.model.manifest import parse_resource
from podnet.model.clusternetworkpolicy import ClusterNetworkPolicy
from podnet.model.families import IPV4, IPV6
from podnet.model.meta import ObjectMeta
from podnet.model.node import Node
from podnet.model.pod import Container, ContainerPort
from podnet.policy.evaluator import PolicyView, evaluate
from tests.policy_model import NAMESPACES, PODS, model_namespaces, model_pods, only, policies, policy, truth_table

ALL = [f"{n}/{p}" for n in NAMESPACES for p in PODS]

DENY_INGRESS_X = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: x}
spec:
  podSelector: {}
"""

ALLOW_FROM = """
kind: NetworkPolicy
metadata: {{name: allow, namespace: x}}
spec:
  podSelector: {{matchLabels: {{pod: a}}}}
  ingress:
  - from: {peers}
"""


def view(*policies, pods=None):  # type: ignore[no-untyped-def]
    return PolicyView(pods or model_pods(), model_namespaces(), policies)


def denied_into(targets: list[str], sources: list[str] | None = None) -> set[tuple[str, str]]:
    return {(s, t) for t in targets for s in (sources if sources is not None else ALL) if s != t}


def test_without_policies_everything_is_allowed() -> None:
    assert only(truth_table(view(), 80)) == set()


def test_deny_all_ingress_isolates_the_namespace_but_not_a_pod_from_itself() -> None:
    table = truth_table(view(policy(DENY_INGRESS_X)), 80)
    assert only(table) == denied_into(["x/a", "x/b", "x/c"])
    assert table[("x/a", "x/a")]


def test_a_pod_selector_alone_means_the_policy_s_namespace() -> None:
    allow = policy(ALLOW_FROM, peers="[{podSelector: {matchLabels: {pod: b}}}]")
    assert only(truth_table(view(allow), 80)) == denied_into(["x/a"]) - {("x/b", "x/a")}


def test_namespace_and_pod_selector_in_one_peer_mean_and_in_two_peers_or() -> None:
    both = policy(ALLOW_FROM, peers="[{namespaceSelector: {matchLabels: {ns: y}}, podSelector: {matchLabels: {pod: b}}}]")
    assert only(truth_table(view(both), 80)) == denied_into(["x/a"]) - {("y/b", "x/a")}
    either = policy(ALLOW_FROM, peers="[{namespaceSelector: {matchLabels: {ns: y}}}, {podSelector: {matchLabels: {pod: b}}}]")
    assert only(truth_table(view(either), 80)) == denied_into(["x/a"]) - {("y/a", "x/a"), ("y/b", "x/a"), ("y/c", "x/a"),
                                                                       ("x/b", "x/a")}


def test_match_expressions_select() -> None:
    allow = policy(ALLOW_FROM, peers="[{namespaceSelector: {matchExpressions: [{key: ns, operator: NotIn, values: [x, y]}]}}]")
    assert only(truth_table(view(allow), 80)) == denied_into(["x/a"], [s for s in ALL if not s.startswith("z/")])


def test_an_empty_namespace_selector_is_every_pod_but_no_address_outside() -> None:
    allow = policy(ALLOW_FROM, peers="[{namespaceSelector: {}}]")
    v = view(allow)
    assert only(truth_table(v, 80)) == set()
    x_a = v.of_pod(v.pods[0])
    assert not evaluate(v, v.party("203.0.113.10"), x_a, 80).allowed


def test_a_namespace_allowed_on_port_81_only() -> None:
    text = """
kind: NetworkPolicy
metadata: {name: y-on-81, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {ns: y}}}]
    ports: [{port: 81}]
"""
    v = view(policy(text))
    assert only(truth_table(v, 80)) == denied_into(["x/a"])
    assert only(truth_table(v, 81)) == denied_into(["x/a"], [s for s in ALL if not s.startswith("y/")])
    assert only(truth_table(v, 81, "UDP")) == denied_into(["x/a"])  # the protocol defaults to TCP


def test_named_ports_are_resolved_on_each_destination_pod() -> None:
    pods = model_pods()
    # x/b calls its TCP 81 port "serve-80-tcp": the same name, another number
    pods[1] = replace(pods[1], containers=(Container("serve", ports=(ContainerPort(81, "serve-80-tcp", "TCP"),)),))
    text = """
kind: NetworkPolicy
metadata: {name: named, namespace: x}
spec:
  podSelector: {}
  ingress:
  - ports: [{port: serve-80-tcp}]
"""
    v = view(policy(text), pods=pods)
    assert only(truth_table(v, 80)) == denied_into(["x/b", "x/c"]) - denied_into(["x/c"])  # x/b serves the name on 81
    assert only(truth_table(v, 81)) == denied_into(["x/a", "x/c"])
    assert only(truth_table(v, 80, "UDP")) == denied_into(["x/a", "x/b", "x/c"])


def test_named_egress_ports_resolve_on_the_destination() -> None:
    text = """
kind: NetworkPolicy
metadata: {name: out, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  policyTypes: [Egress]
  egress:
  - ports: [{port: serve-81-udp, protocol: UDP}]
"""
    v = view(policy(text))
    assert only(truth_table(v, 81, "UDP")) == set()
    assert only(truth_table(v, 80, "UDP")) == {("x/a", t) for t in ALL if t != "x/a"}


def test_end_port_ranges() -> None:
    text = """
kind: NetworkPolicy
metadata: {name: range, namespace: x}
spec:
  podSelector: {}
  ingress:
  - ports: [{port: 79, endPort: 80}]
"""
    v = view(policy(text))
    assert only(truth_table(v, 80)) == set()
    assert only(truth_table(v, 81)) == denied_into(["x/a", "x/b", "x/c"])


def test_ip_blocks_match_pod_addresses_minus_their_exceptions() -> None:
    text = """
kind: NetworkPolicy
metadata: {name: block, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from: [{ipBlock: {cidr: 10.244.0.0/24, except: [10.244.0.13/32]}}]
"""
    v = view(policy(text))  # y/a is 10.244.0.13
    assert only(truth_table(v, 80)) == {("y/a", "x/a")}
    assert not evaluate(v, v.party("203.0.113.10"), v.of_pod(v.pods[0]), 80).allowed


def test_the_client_s_egress_wins_over_the_server_s_ingress() -> None:
    deny_egress = """
kind: NetworkPolicy
metadata: {name: no-out, namespace: y}
spec:
  podSelector: {matchLabels: {pod: b}}
  policyTypes: [Egress]
"""
    allow_all_in = """
kind: NetworkPolicy
metadata: {name: all-in, namespace: x}
spec:
  podSelector: {}
  ingress: [{}]
"""
    v = view(policy(deny_egress), policy(allow_all_in))
    assert only(truth_table(v, 80)) == {("y/b", t) for t in ALL if t != "y/b"}
    verdict = evaluate(v, v.of_pod(v.pods[4]), v.of_pod(v.pods[0]), 80)
    assert verdict.egress and not verdict.egress.allowed and verdict.ingress and verdict.ingress.allowed
    assert "y/no-out" in verdict.why


def test_empty_egress_does_not_isolate_egress_unless_its_type_says_so() -> None:
    inferred = """
kind: NetworkPolicy
metadata: {name: p, namespace: x}
spec:
  podSelector: {}
  ingress: [{}]
  egress: []
"""
    assert policy(inferred).policy_types == ("Ingress",)
    assert only(truth_table(view(policy(inferred)), 80)) == set()
    explicit = inferred.replace("egress: []", "egress: []\n  policyTypes: [Ingress, Egress]")
    assert only(truth_table(view(policy(explicit)), 80)) == {(s, t) for s in ("x/a", "x/b", "x/c") for t in ALL if s != t}


def test_the_union_of_policies_selecting_a_pod() -> None:
    from_b = policy(ALLOW_FROM, peers="[{podSelector: {matchLabels: {pod: b}}}]")
    from_c = policy(ALLOW_FROM.replace("name: allow", "name: allow-c"), peers="[{podSelector: {matchLabels: {pod: c}}}]")
    assert only(truth_table(view(from_b, from_c), 80)) == denied_into(["x/a"]) - {("x/b", "x/a"), ("x/c", "x/a")}


def test_a_pod_s_own_node_always_reaches_it() -> None:
    node = Node(ObjectMeta("node1", namespace=""), pod_cidrs=("10.244.0.0/24",), internal_ips=("192.168.56.11",))
    other = Node(ObjectMeta("node2", namespace=""), pod_cidrs=("10.244.1.0/24",), internal_ips=("192.168.56.12",))
    v = PolicyView(model_pods(), model_namespaces(), [policy(DENY_INGRESS_X)], [node, other])
    x_a = v.of_pod(v.pods[0])
    assert evaluate(v, v.party("10.244.0.1"), x_a, 80).allowed  # the bridge, as probes come
    assert evaluate(v, v.party("192.168.56.11"), x_a, 80).allowed
    assert not evaluate(v, v.party("192.168.56.12"), x_a, 80).allowed


@pytest.mark.parametrize(("spec", "problem"), [
    ("podSelector: {}\n  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8}, podSelector: {}}]}]", "may not be combined"),
    ("podSelector: {}\n  ingress: [{from: [{}]}]", "must have podSelector, namespaceSelector or ipBlock"),
    ("podSelector: {}\n  ingress: [{ports: [{port: http, endPort: 90}]}]", "needs a numeric port"),
    ("podSelector: {}\n  ingress: [{ports: [{port: 90, endPort: 80}]}]", "below port 90"),
    ("podSelector: {}\n  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8, except: [11.0.0.0/8]}}]}]", "strict subset"),
    ("podSelector: {}\n  ingress: [{from: [{ipBlock: {cidr: '2001:db8::/64', except: ['2001:db8:1::/80']}}]}]",
     r"except\[0\]: Invalid value: '2001:db8:1::/80': must be a strict subset of `cidr`"),
    ("podSelector: {}\n  ingress: [{from: [{ipBlock: {cidr: '2001:db8::/64', except: ['2001:db8::/64']}}]}]",
     "must be a strict subset of `cidr`"),
    ("podSelector: {}\n  ingress: [{from: [{ipBlock: {cidr: '::/0', except: [10.0.0.0/8]}}]}]",
     r"except\[0\]: Invalid value: '10.0.0.0/8': must be a strict subset of `cidr`"),
    ("podSelector: {}\n  ingress: [{from: [{ipBlock: {cidr: 0.0.0.0/0, except: ['::ffff:0:0/96']}}]}]",
     "must be a strict subset of `cidr`"),
    ("podSelector: {}\n  ingress: [{from: [{ipBlock: {cidr: '2001:db8::/129'}}]}]",
     r"ipBlock.cidr: Invalid value: '2001:db8::/129': must be a valid CIDR value, \(e.g. 10.9.8.0/24 or 2001:db8::/64\)"),
    ("podSelector: {}\n  policyTypes: [Inbound]", "not Ingress or Egress"),
    ("podSelector: {}\n  ingress: [{ports: [{protocol: ICMP}]}]", "not TCP, UDP or SCTP"),
    ("podSelector: {}\n  ingress: [{ports: [{port: Not_A_Name}]}]", "not a valid port name"),
    ("ingress: []", "spec.podSelector"),
])
def test_invalid_policies_are_refused_naming_the_field(spec: str, problem: str) -> None:
    with pytest.raises(ManifestError, match=problem):
        policy(f"kind: NetworkPolicy\nmetadata: {{name: p, namespace: x}}\nspec:\n  {spec}\n")


def test_a_policy_survives_its_manifest() -> None:
    text = """
kind: NetworkPolicy
metadata: {name: p, namespace: x, annotations: {podnet.dev/enforcement: audit}}
spec:
  podSelector: {matchExpressions: [{key: pod, operator: In, values: [a, b]}]}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {ns: y}}, podSelector: {}}, {ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}},
           {ipBlock: {cidr: "2001:db8::/32", except: ["2001:db8:1::/48", "2001:db8:2::5/128"]}}]
    ports: [{port: serve-80-tcp}, {protocol: UDP, port: 81, endPort: 90}, {protocol: SCTP}]
  egress: [{to: [{namespaceSelector: {}}]}]
"""
    found = policy(text)
    assert found.audit and found.policy_types == ("Ingress", "Egress")
    assert parse_resource(found.to_manifest()) == found


def test_cluster_network_policy_tiers() -> None:
    """Admin before NetworkPolicy before Baseline; the first matching rule of a tier
    decides; Pass skips the rest of the tier."""
    from tests.unit.test_policy_ruleset import CASES
    from tests.policy_model import policies

    namespaced, cluster_wide = policies(CASES["admin-pass-then-networkpolicy-then-baseline"])
    v = PolicyView(model_pods(), model_namespaces(), namespaced, (), cluster_wide)
    pods = {p.metadata.key: v.of_pod(p) for p in v.pods}

    def allowed(source: str, target: str, port: int = 80, protocol: str = "TCP") -> bool:
        return evaluate(v, pods[source], pods[target], port, protocol).allowed

    assert allowed("y/b", "x/a") and not allowed("y/a", "x/a")  # passed by Admin, judged by the NetworkPolicy
    assert allowed("y/a", "x/b")  # passed, not isolated, no Baseline for x: allowed ("lower" never read)
    assert allowed("x/c", "x/a") and not allowed("x/c", "x/a", 81)  # Admin Accept overrides the NetworkPolicy
    assert not allowed("y/c", "x/a")  # rules are read in order: y's Pass comes before the Accept of pods c
    assert not allowed("x/b", "z/b") and not allowed("y/a", "z/a")  # the Baseline denies what reaches z
    verdict = evaluate(v, pods["y/a"], pods["z/a"], 80)
    assert verdict.ingress and verdict.ingress.because == ("cnp/default ingress[0] (Deny)",)
    assert not allowed("z/c", "x/a")  # z's egress: the Baseline denies the pod network but pods a on 81/UDP
    assert allowed("z/b", "x/a", 81, "UDP")  # ... which x/a's NetworkPolicy lets in from any pod b
    assert evaluate(v, pods["z/b"], pods["y/a"], 81, "UDP").allowed  # egress to a pod a on 81/UDP: Allow
    assert not evaluate(v, pods["z/b"], pods["y/b"], 81, "UDP").allowed  # the networks Deny


DUAL = (IPV4, IPV6)
PROBES = [(80, "TCP"), (81, "TCP"), (80, "UDP"), (81, "UDP"), (80, "SCTP")]


def _addresses_of_one_family(texts: list[str]) -> bool:
    """Whether any ipBlock or network of the policies names addresses (of one family)."""
    namespaced, cluster_wide = policies(texts)
    blocks = [peer.ip_block for p in namespaced for r in (*p.ingress, *p.egress) for peer in r.peers if peer.ip_block]
    networks = [peer.networks for c in cluster_wide for r in (*c.ingress, *c.egress) for peer in r.peers
                if peer.networks]
    return bool(blocks or networks)


def _selector_cases() -> list[str]:
    from tests.unit.test_policy_ruleset import CASES

    return [name for name, texts in sorted(CASES.items()) if not _addresses_of_one_family(texts)]


@pytest.mark.parametrize("case", _selector_cases())
def test_selectors_answer_alike_over_ipv4_and_ipv6(case: str) -> None:
    from tests.unit.test_policy_ruleset import CASES

    namespaced, cluster_wide = policies(CASES[case])
    dual = PolicyView(model_pods(families=DUAL), model_namespaces(), namespaced, (), cluster_wide)
    single = PolicyView(model_pods(), model_namespaces(), namespaced, (), cluster_wide)
    for port, protocol in PROBES:
        over_ipv4 = truth_table(dual, port, protocol, IPV4)
        assert over_ipv4 == truth_table(dual, port, protocol, IPV6) == truth_table(single, port, protocol)


BLOCK = """
kind: NetworkPolicy
metadata: {{name: block-{name}, namespace: x}}
spec:
  podSelector: {{matchLabels: {{pod: a}}}}
  ingress:
  - from: [{blocks}]
"""
V4_BLOCK = "{ipBlock: {cidr: 10.244.0.0/24, except: [10.244.0.13/32]}}"  # y/a is 10.244.0.13
V6_BLOCK = "{ipBlock: {cidr: 'fd00:10:244::/64', except: ['fd00:10:244::13/128']}}"  # and fd00:10:244::13


@pytest.mark.parametrize(("blocks", "over_ipv4", "over_ipv6"), [
    ([V4_BLOCK], {("y/a", "x/a")}, denied_into(["x/a"])),
    ([V6_BLOCK], denied_into(["x/a"]), {("y/a", "x/a")}),
    ([V4_BLOCK, V6_BLOCK], {("y/a", "x/a")}, {("y/a", "x/a")}),
    (["{ipBlock: {cidr: 0.0.0.0/0}}"], set(), denied_into(["x/a"])),
    (["{ipBlock: {cidr: '::/0'}}"], denied_into(["x/a"]), set()),
], ids=["ipv4-block", "ipv6-block", "a-block-of-each", "all-of-ipv4", "all-of-ipv6"])
def test_an_ip_block_answers_only_for_its_own_family(blocks: list[str], over_ipv4: set[tuple[str, str]],
                                                      over_ipv6: set[tuple[str, str]]) -> None:
    v = PolicyView(model_pods(families=DUAL), model_namespaces(),
                   [policy(BLOCK, name=len(blocks), blocks=", ".join(blocks))])
    assert only(truth_table(v, 80, family=IPV4)) == over_ipv4
    assert only(truth_table(v, 80, family=IPV6)) == over_ipv6


def test_a_dual_stack_pod_is_known_by_each_of_its_addresses() -> None:
    v = PolicyView(model_pods(families=DUAL), model_namespaces(), [])
    x_b = v.pods[1]
    assert v.party("10.244.0.11").pod == x_b and v.party("fd00:10:244::11").pod == x_b
    assert v.party("fd00:10:244:0:0::11").pod == x_b  # however the address is spelled
    assert str(v.of_pod(x_b).address) == "10.244.0.11" and str(v.of_pod(x_b, IPV6).address) == "fd00:10:244::11"


def test_a_pod_s_own_node_reaches_it_over_either_family() -> None:
    node = Node(ObjectMeta("node1", namespace=""), pod_cidrs=("10.244.0.0/24", "fd00:10:244::/64"),
                internal_ips=("192.168.56.11", "fd00:56::11"))
    other = Node(ObjectMeta("node2", namespace=""), pod_cidrs=("10.244.1.0/24", "fd00:10:244:1::/64"),
                 internal_ips=("192.168.56.12", "fd00:56::12"))
    v = PolicyView(model_pods(families=DUAL), model_namespaces(), [policy(DENY_INGRESS_X)], [node, other])
    x_a = v.of_pod(v.pods[0], IPV6)
    assert evaluate(v, v.party("fd00:10:244::1"), x_a, 80).allowed  # the bridge's IPv6 address
    assert evaluate(v, v.party("fd00:56::11"), x_a, 80).allowed
    assert not evaluate(v, v.party("fd00:56::12"), x_a, 80).allowed


def test_a_node_peer_holds_the_node_s_addresses_of_both_families() -> None:
    text = """
kind: ClusterNetworkPolicy
metadata: {name: to-nodes}
spec:
  tier: Admin
  priority: 1
  subject: {namespaces: {}}
  egress: [{action: Deny, to: [{nodes: {matchLabels: {role: infra}}}]}]
"""
    (found,) = policies([text])[1]
    assert isinstance(found, ClusterNetworkPolicy)
    infra = Node(ObjectMeta("infra", namespace="", labels={"role": "infra"}), internal_ips=("192.168.56.9", "fd00:56::9"))
    v = PolicyView(model_pods(families=DUAL), model_namespaces(), [], [infra], [found])
    x_a = v.of_pod(v.pods[0])
    for address in ("192.168.56.9", "fd00:56::9", "fd00:56:0::9"):
        assert not evaluate(v, x_a, v.party(address), 80).allowed
    assert evaluate(v, x_a, v.party("fd00:56::10"), 80).allowed
