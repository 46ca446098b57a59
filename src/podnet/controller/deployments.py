"""A Deployment kept at its replicas and rolled to a new template, as the
Deployment and ReplicaSet controllers do it together. Pure: given the
deployment and its pods, what to create and what to delete.

Pods carry the template's hash as their pod-template-hash label; those with
the current hash are the new ReplicaSet, the rest the old. Names take the
lowest free ordinal (web-0, web-1, ...) rather than ReplicaSet's random
suffix, so a lab's pods keep names a person can type.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from podnet.model.deployment import TEMPLATE_HASH, Deployment, DeploymentStatus
from podnet.model.pod import Pod


@dataclass(frozen=True)
class Changes:
    create: list[Pod] = field(default_factory=list)
    delete: list[Pod] = field(default_factory=list)


def owned(deployment: Deployment, pods: list[Pod]) -> list[Pod]:
    """Those it still selects: a pod relabelled out of the selector is let go
    (and replaced), as a ReplicaSet releases it."""
    return [p for p in deployment.controlled(pods) if deployment.selector.matches(p.metadata.labels)]


def _doomed_first(pod: Pod) -> tuple[int, int, int]:
    """Which to delete first, as a ReplicaSet picks: unscheduled, then not ready,
    then the highest ordinal (the newest)."""
    return (pod.node_name is not None, pod.ready, -_ordinal(pod))


def _ordinal(pod: Pod) -> int:
    tail = pod.metadata.name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else -1


def reconcile(deployment: Deployment, pods: list[Pod]) -> Changes:
    mine = owned(deployment, pods)
    live = [p for p in mine if not p.terminating]
    current = deployment.template_hash
    new = [p for p in live if p.metadata.labels.get(TEMPLATE_HASH) == current]
    old = [p for p in live if p.metadata.labels.get(TEMPLATE_HASH) != current]
    replicas = deployment.replicas
    neighbours = [p for p in pods if p.metadata.namespace == deployment.metadata.namespace]
    if not old:
        if len(new) < replicas:
            return Changes(create=_fresh(deployment, neighbours, replicas - len(new)))
        return Changes(delete=sorted(new, key=_doomed_first)[:len(new) - replicas])
    if len(new) > replicas:
        return Changes(delete=sorted(new, key=_doomed_first)[:len(new) - replicas])
    # A rollout: surge new pods, then let old ones go as far as availability allows.
    room = replicas + deployment.surge() - len(live)
    create = _fresh(deployment, neighbours, max(0, min(room, replicas - len(new))))
    unhealthy_old = [p for p in old if not p.ready]
    ready = sum(1 for p in live if p.ready)
    allowed = max(0, ready - (replicas - deployment.unavailable()))
    healthy_old = sorted((p for p in old if p.ready), key=_doomed_first)
    delete = unhealthy_old + healthy_old[:allowed]
    return Changes(create=create, delete=delete)


def _fresh(deployment: Deployment, neighbours: list[Pod], count: int) -> list[Pod]:
    taken = {p.metadata.name for p in neighbours}
    names: list[str] = []
    ordinal = 0
    while len(names) < count:
        name = f"{deployment.metadata.name}-{ordinal}"
        if name not in taken:
            names.append(name)
        ordinal += 1
    return [deployment.pod(name) for name in names]


def status_of(deployment: Deployment, pods: list[Pod]) -> DeploymentStatus:
    """The counts the Deployment and ReplicaSet controllers report, over the pods
    it owns now: of its generation, all of them, the current template's, the
    ready ones and (with no minReadySeconds) the available ones."""
    live = [p for p in owned(deployment, pods) if not p.terminating]
    updated = [p for p in live if p.metadata.labels.get(TEMPLATE_HASH) == deployment.template_hash]
    ready = sum(1 for p in live if p.ready)
    return DeploymentStatus(deployment.metadata.generation, len(live), len(updated), ready, ready)
