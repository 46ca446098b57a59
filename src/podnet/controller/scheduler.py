"""Binding pods to nodes: the ready, schedulable (not cordoned) node with the
fewest pods among those whose labels match the pod's nodeSelector, as
kube-scheduler's least-allocated score would pick for pods without requests.
Pure: the control plane writes the result."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from podnet.model.node import Node
from podnet.model.pod import Pod
from podnet.model.selector import matches_labels


@dataclass(frozen=True)
class Binding:
    pod: Pod
    node: str | None  # None: it fits nowhere
    reason: str = ""  # why not, in kube-scheduler's words


def schedule(pending: Iterable[Pod], nodes: list[Node], pods: list[Pod]) -> list[Binding]:
    """Each pending pod in turn, counting the ones placed before it."""
    load = Counter(p.node_name for p in pods if p.node_name and not p.terminating)
    ready = [n for n in nodes if n.ready and not n.unschedulable]
    bindings = []
    for pod in pending:
        fits = [n for n in ready if matches_labels(pod.node_selector, n.metadata.labels)]
        if not fits:
            bindings.append(Binding(pod, None, _why_not(pod, nodes, ready)))
            continue
        chosen = min(fits, key=lambda n: (load[n.metadata.name], n.metadata.name))
        load[chosen.metadata.name] += 1
        bindings.append(Binding(pod, chosen.metadata.name))
    return bindings


def _why_not(pod: Pod, nodes: list[Node], ready: list[Node]) -> str:
    if not nodes:
        return "0/0 nodes are available: no nodes registered"
    not_ready = sum(1 for n in nodes if not n.ready)
    cordoned = sum(1 for n in nodes if n.ready and n.unschedulable)
    mismatched = sum(1 for n in ready if not matches_labels(pod.node_selector, n.metadata.labels))
    parts = [f"{count} node(s) {why}" for count, why in ((not_ready, "were not ready"),
                                                       (cordoned, "were unschedulable"),
                                                       (mismatched, "didn't match Pod's node affinity/selector"))
             if count]
    return f"0/{len(nodes)} nodes are available: {', '.join(parts)}"
