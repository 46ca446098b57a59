"""A node's policy table (ranges, flag lists, named ports, ipBlocks with holes,
logged drops, audit mode) loads into the kernel over netlink exactly as nft
loads the same table as a script."""

from __future__ import annotations

from podnet.kernel.nftables.nft import Nft
from podnet.kernel.nftables.nfnl import NetlinkNft
from podnet.policy.evaluator import PolicyView
from podnet.policy.ruleset import render
from tests.helpers import in_netns
from tests.policy_model import model_namespaces, model_pods, policy

POLICIES = ["""
kind: NetworkPolicy
metadata: {name: mixed, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {ns: y}}, podSelector: {matchLabels: {pod: b}}},
           {ipBlock: {cidr: 10.244.0.0/16, except: [10.244.0.13/32, 10.244.1.0/24]}}]
    ports: [{port: 80}, {port: 79, endPort: 81, protocol: UDP}, {port: serve-81-tcp}, {protocol: SCTP}]
  egress: [{to: [{podSelector: {}}], ports: [{port: serve-80-udp, protocol: UDP}]}]
""", """
kind: NetworkPolicy
metadata: {name: watch, namespace: y, annotations: {podnet.dev/enforcement: audit}}
spec: {podSelector: {}}
"""]


def test_netlink_builds_the_policy_table_nft_builds(make_netns) -> None:  # type: ignore[no-untyped-def]
    table = render(PolicyView(model_pods(), model_namespaces(), [policy(text) for text in POLICIES]), "node1")
    assert table is not None
    by_script, by_netlink = make_netns(), make_netns()
    Nft.in_namespace(by_script).run(table)
    NetlinkNft.in_namespace(by_netlink).run(table)
    listed = [in_netns(name, "nft", "list", "ruleset").stdout for name in (by_script, by_netlink)]
    assert "udp dport 79-81" in listed[1] and "ct state established,related accept" in listed[1]
    assert 'log prefix "audit ingress y/watch" group 7170' in listed[1]
    assert listed[0] == listed[1]
