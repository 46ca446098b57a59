"""The scheduler and the Deployment controller as pure functions: where pods go,
and what a rollout creates and deletes at each step."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from podnet.controller.deployments import reconcile
from podnet.controller.scheduler import schedule
from podnet.model.deployment import TEMPLATE_HASH, Deployment
from podnet.model.manifest import parse_resource
from podnet.model.node import Node
from podnet.model.pod import Pod


def node(name: str, ready: bool = True, **labels: str) -> Node:
    return parse_resource({"kind": "Node", "metadata": {"name": name, "labels": labels}, "status": {
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}})  # type: ignore[return-value]


def pod(name: str, node_name: str | None = None, **spec: Any) -> Pod:
    return parse_resource({"kind": "Pod", "metadata": {"name": name},  # type: ignore[return-value]
                           "spec": {**({"nodeName": node_name} if node_name else {}), **spec}})


def deployment(replicas: int, image: str = "v1", surge: int | str = "25%", unavailable: int | str = "25%") -> Deployment:
    return parse_resource({"kind": "Deployment", "metadata": {"name": "web"}, "spec": {  # type: ignore[return-value]
        "replicas": replicas, "strategy": {"rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": image}]}}}})


def test_pods_go_to_the_ready_node_with_fewest_pods_that_matches_their_selector() -> None:
    nodes = [node("a"), node("b"), node("down", ready=False), node("ssd", disk="ssd")]
    running = [pod("x", "a"), pod("y", "a"), pod("z", "b")]
    bindings = schedule([pod("p1"), pod("p2"), pod("p3"), pod("fast", nodeSelector={"disk": "ssd"})], nodes, running)
    assert [b.node for b in bindings] == ["ssd", "b", "ssd", "ssd"]
    (nowhere,) = schedule([pod("gpu", nodeSelector={"gpu": "yes"})], nodes, running)
    assert nowhere.node is None
    assert nowhere.reason == "0/4 nodes are available: 1 node(s) were not ready, 3 node(s) didn't match Pod's node affinity/selector"


def test_a_cordoned_node_gets_no_new_pods_and_says_so() -> None:
    cordoned = parse_resource({"kind": "Node", "metadata": {"name": "a"}, "spec": {"unschedulable": True}})
    assert isinstance(cordoned, Node) and cordoned.to_manifest()["spec"]["unschedulable"] is True
    nodes = [cordoned, node("b")]
    assert [b.node for b in schedule([pod("p1"), pod("p2")], nodes, [])] == ["b", "b"]
    (nowhere,) = schedule([pod("p3")], [cordoned], [])
    assert (nowhere.node, nowhere.reason) == (None, "0/1 nodes are available: 1 node(s) were unschedulable")


def converge(d: Deployment, pods: list[Pod], ready: bool = True, rounds: int = 20) -> tuple[list[Pod], list[int]]:
    """Apply the controller's changes round after round (new pods turning ready at
    once), recording how many pods were live after each round."""
    sizes = []
    for _ in range(rounds):
        changes = reconcile(d, pods)
        if not changes.create and not changes.delete:
            break
        doomed = {p.metadata.name for p in changes.delete}
        pods = [p for p in pods if p.metadata.name not in doomed]
        pods += [replace(p, node_name="n", pod_ips=("10.0.0.1",), ready=ready) for p in changes.create]
        sizes.append(len(pods))
    return pods, sizes


def test_replicas_converge_with_ordinal_names_and_the_template_hash() -> None:
    d = deployment(3)
    pods, _ = converge(d, [])
    assert sorted(p.metadata.name for p in pods) == ["web-0", "web-1", "web-2"]
    assert {p.metadata.labels[TEMPLATE_HASH] for p in pods} == {d.template_hash}
    assert all(p.metadata.owner == ("Deployment", "web") for p in pods)
    pods, _ = converge(d.scaled(1), pods)
    assert [p.metadata.name for p in pods] == ["web-0"]  # the newest go first
    pods, _ = converge(d.scaled(2), pods)
    assert sorted(p.metadata.name for p in pods) == ["web-0", "web-1"]


def test_a_rollout_stays_within_max_surge_and_max_unavailable() -> None:
    old, _ = converge(deployment(6), [])
    new = deployment(6, image="v2")  # maxSurge 25% of 6 rounds up to 2, maxUnavailable down to 1
    pods, sizes = converge(new, old)
    assert len(pods) == 6 and {p.metadata.labels[TEMPLATE_HASH] for p in pods} == {new.template_hash}
    assert max(sizes) <= 6 + 2 and min(sizes) >= 6 - 1, sizes


def test_a_rollout_without_surge_replaces_one_at_a_time() -> None:
    old, _ = converge(deployment(4, surge=0, unavailable=1), [])
    pods, sizes = converge(deployment(4, image="v2", surge=0, unavailable=1), old)
    assert len(pods) == 4 and max(sizes) <= 4 and min(sizes) >= 3, sizes


def test_a_relabelled_pod_is_let_go_and_replaced() -> None:
    d = deployment(2)
    pods, _ = converge(d, [])
    moved = replace(pods[0], metadata=replace(pods[0].metadata, labels={"app": "other"}))
    changes = reconcile(d, [moved, pods[1]])
    assert [p.metadata.name for p in changes.create] == ["web-2"] and not changes.delete
