"""The enforcer controller on a fake kernel: no table without isolated pods, the
bridge sysctls set with the first table, a dual-stack pod isolated by both its
addresses, the table of before dual stack removed, and a new pod isolated from
its CNI ADD on, before the store shows its address."""

from __future__ import annotations

from dataclasses import replace

from podnet.store.snapshot import Snapshot
from podnet.kernel.nftables import Chain, Transaction
from podnet.model.families import IPV4, IPV6
from podnet.policy.enforcer import BRIDGED_TRAFFIC, BRIDGED_TRAFFIC_V6, PolicyEnforcer
from podnet.policy.ruleset import LEGACY_TABLE, TABLE
from tests.fakes import FakeNodeKernel
from tests.policy_model import model_namespaces, model_pods, policy

DENY_X = policy("kind: NetworkPolicy\nmetadata: {name: deny, namespace: x}\nspec: {podSelector: {}}\n")


def snapshot(pods, policies=()):  # type: ignore[no-untyped-def]
    return Snapshot(1, [], list(pods), [], [], model_namespaces(), list(policies))


def isolated(kernel: FakeNodeKernel) -> set[str]:
    if TABLE not in kernel.nft.tables:
        return set()
    elements = kernel.nft.tables[TABLE].elements
    return {key[0] for name in ("ingress_pods", "ingress_pods6") for key in elements.get(name, ())}


def test_no_table_without_an_isolated_pod_and_one_with() -> None:
    kernel = FakeNodeKernel()
    enforcer = PolicyEnforcer(kernel, "node1")
    assert enforcer.sync(snapshot(model_pods())) == "removed" and TABLE not in kernel.nft.tables
    assert enforcer.sync(snapshot(model_pods(), [DENY_X])) == "table"
    assert isolated(kernel) == {"10.244.0.10", "10.244.0.11", "10.244.0.12"}
    assert kernel.sysctls[BRIDGED_TRAFFIC] == "1"
    assert enforcer.sync(snapshot(model_pods(), [DENY_X])) == "none"
    assert enforcer.sync(snapshot(model_pods())) == "removed" and TABLE not in kernel.nft.tables


def test_a_new_pod_is_isolated_from_its_cni_add_until_the_store_shows_it() -> None:
    kernel = FakeNodeKernel()
    enforcer = PolicyEnforcer(kernel, "node1")
    pods = model_pods()
    new = replace(pods[0], metadata=replace(pods[0].metadata, name="new"), pod_ips=(), ready=False)
    enforcer.sync(snapshot([*pods, new], [DENY_X]))
    assert "10.244.0.99" not in isolated(kernel)
    enforcer.admit(replace(new, pod_ips=("10.244.0.99",)))  # between CNI ADD and its start
    assert "10.244.0.99" in isolated(kernel)
    enforcer.sync(snapshot([*pods, new], [DENY_X]))  # a pass before the kubelet wrote the address
    assert "10.244.0.99" in isolated(kernel)
    enforcer.sync(snapshot(pods, [DENY_X]))  # deleted before it started: forgotten
    assert "10.244.0.99" not in isolated(kernel)


def test_a_dual_stack_pod_is_isolated_by_both_its_addresses() -> None:
    kernel = FakeNodeKernel()
    enforcer = PolicyEnforcer(kernel, "node1")
    assert enforcer.sync(snapshot(model_pods(families=(IPV4, IPV6)), [DENY_X])) == "table"
    assert isolated(kernel) == {"10.244.0.10", "10.244.0.11", "10.244.0.12",
                                "fd00:10:244::10", "fd00:10:244::11", "fd00:10:244::12"}
    assert kernel.sysctls[BRIDGED_TRAFFIC] == kernel.sysctls[BRIDGED_TRAFFIC_V6] == "1"


def test_the_ipv4_table_of_before_dual_stack_is_removed() -> None:
    kernel = FakeNodeKernel()
    kernel.nft.run(Transaction(LEGACY_TABLE).add(LEGACY_TABLE, Chain("ingress")))  # left by an older agent
    assert LEGACY_TABLE in kernel.nft.tables
    enforcer = PolicyEnforcer(kernel, "node1")
    enforcer.sync(snapshot(model_pods()))
    assert LEGACY_TABLE not in kernel.nft.tables and TABLE not in kernel.nft.tables
