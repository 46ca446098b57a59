"""The cluster at one revision, and the Controller that reconciles from it.

The agent lists the store once per pass and hands every controller the same
snapshot, so they agree on what the cluster looks like; a controller keeps the
kernel it was given in step with it, and is idempotent, so running it again
repairs drift. Both live here, below every controller, so that the agent, the
subsystems it runs (network, proxy, policy, observe) and trace share one word.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from podnet.model.clusternetworkpolicy import ClusterNetworkPolicy
from podnet.model.endpointslice import EndpointSlice
from podnet.model.namespace import Namespace
from podnet.model.networkpolicy import NetworkPolicy
from podnet.model.node import Node
from podnet.model.pod import Pod
from podnet.model.service import Service
from podnet.store import resources
from podnet.store.base import Store


@dataclass(frozen=True)
class Snapshot:
    revision: int
    nodes: list[Node]
    pods: list[Pod]
    services: list[Service]
    slices: list[EndpointSlice]
    namespaces: list[Namespace] = field(default_factory=list)
    policies: list[NetworkPolicy] = field(default_factory=list)
    cluster_policies: list[ClusterNetworkPolicy] = field(default_factory=list)

    @classmethod
    def read(cls, store: Store) -> Snapshot:
        nodes, revision = resources.list_kind(store, Node)
        pods, _ = resources.list_kind(store, Pod)
        services, _ = resources.list_kind(store, Service)
        slices, _ = resources.list_kind(store, EndpointSlice)
        namespaces, _ = resources.list_kind(store, Namespace)
        policies, _ = resources.list_kind(store, NetworkPolicy)
        cluster_policies, _ = resources.list_kind(store, ClusterNetworkPolicy)
        return cls(revision, nodes, pods, services, slices, namespaces, policies, cluster_policies)

    def node(self, name: str) -> Node | None:
        return next((n for n in self.nodes if n.metadata.name == name), None)


class Controller(Protocol):
    name: str

    def sync(self, snapshot: Snapshot) -> None: ...
