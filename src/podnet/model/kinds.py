"""The one registry of kinds: each kind's name, plural, short names and class.

Manifest parsing, the store's keys, `podnet get` and lab files all ask here, so
adding a kind (NetworkPolicy, Namespace, EndpointSlice) touches this table and
its module, nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from podnet.model.clusternetworkpolicy import ClusterNetworkPolicy
from podnet.model.deployment import Deployment
from podnet.model.endpointslice import EndpointSlice
from podnet.model.event import Event
from podnet.model.lease import Lease
from podnet.model.namespace import Namespace
from podnet.model.networkpolicy import NetworkPolicy
from podnet.model.node import Node
from podnet.model.pod import Pod
from podnet.model.service import Service
from podnet.model.stored import ConfigMap, Secret, ServiceAccount


@dataclass(frozen=True)
class Kind:
    name: str  # as in a manifest: Pod
    plural: str  # as in the store's keys and `podnet get`: pods
    short_names: tuple[str, ...]  # kubectl's: po
    cls: Any
    namespaced: bool = True
    group_version: str = "v1"  # its apiVersion: v1, apps/v1, ...
    categories: tuple[str, ...] = ()  # ("all",): what `kubectl get all` lists
    subresources: tuple[str, ...] = ()  # status, scale

    @property
    def words(self) -> tuple[str, ...]:
        """What `podnet get` accepts for it, as kubectl does."""
        return (self.name.lower(), self.plural, *self.short_names)

    @property
    def group(self) -> str:
        return self.group_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.group_version.rpartition("/")[2]


KINDS: tuple[Kind, ...] = (
    Kind("Namespace", "namespaces", ("ns",), Namespace, namespaced=False, subresources=("status",)),
    Kind("Node", "nodes", ("no",), Node, namespaced=False, subresources=("status",)),
    Kind("Pod", "pods", ("po",), Pod, categories=("all",),
         subresources=("attach", "exec", "log", "portforward", "status")),  # the first four are its kubelet's
    Kind("Service", "services", ("svc",), Service, categories=("all",), subresources=("status",)),
    Kind("Deployment", "deployments", ("deploy",), Deployment, group_version="apps/v1", categories=("all",),
         subresources=("status", "scale")),
    Kind("EndpointSlice", "endpointslices", (), EndpointSlice, group_version="discovery.k8s.io/v1"),
    Kind("Lease", "leases", (), Lease, group_version="coordination.k8s.io/v1"),
    Kind("Event", "events", ("ev",), Event),
    Kind("NetworkPolicy", "networkpolicies", ("netpol",), NetworkPolicy, group_version="networking.k8s.io/v1"),
    Kind("ClusterNetworkPolicy", "clusternetworkpolicies", ("cnp",), ClusterNetworkPolicy, namespaced=False,
         group_version="policy.networking.k8s.io/v1alpha2"),
    Kind("ConfigMap", "configmaps", ("cm",), ConfigMap),
    Kind("Secret", "secrets", (), Secret),
    Kind("ServiceAccount", "serviceaccounts", ("sa",), ServiceAccount),
)
DERIVED: tuple[Kind, ...] = (  # served for reading only, made from other kinds when read and never stored
    Kind("Endpoints", "endpoints", ("ep",), None),
    Kind("ReplicaSet", "replicasets", ("rs",), None, group_version="apps/v1", categories=("all",)),
)
_BY_NAME = {kind.name: kind for kind in KINDS}
_BY_WORD = {word: kind for kind in KINDS for word in kind.words}
_READABLE_BY_WORD = {**{word: kind for kind in DERIVED for word in kind.words}, **_BY_WORD}


def named(name: str) -> Kind | None:
    """The kind a manifest's `kind:` names (case as Kubernetes writes it)."""
    return _BY_NAME.get(name)


def of(cls: type) -> Kind:
    return _BY_NAME[cls.kind]


def from_word(word: str) -> Kind | None:
    """A kind as a user types it on the command line: pods, pod, po, Pod."""
    return _BY_WORD.get(word.lower())


def readable_from_word(word: str) -> Kind | None:
    """As from_word, and the kinds only read (endpoints, replicasets): what `get` and `describe` may name."""
    return _READABLE_BY_WORD.get(word.lower())


def names() -> list[str]:
    return [kind.name for kind in KINDS]
