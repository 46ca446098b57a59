"""Resources in the store: Kubernetes-style keys, manifests as values."""

from __future__ import annotations

from podnet.model.manifest import Resource, parse_resource
from podnet.store.base import Event, Store

_PLURAL = {"Node": "nodes", "Pod": "pods", "Service": "services", "Deployment": "deployments"}
REGISTRY = "/registry/"


def prefix(kind: str) -> str:
    return f"{REGISTRY}{_PLURAL[kind]}/"


def key(kind: str, namespace: str, name: str) -> str:
    """Cluster-scoped kinds (Node) have no namespace segment, as in Kubernetes."""
    return f"{prefix(kind)}{namespace}/{name}" if namespace else f"{prefix(kind)}{name}"


def key_of(resource: Resource) -> str:
    return key(resource.kind, resource.metadata.namespace, resource.metadata.name)


def put(store: Store, resource: Resource) -> int:
    return store.put(key_of(resource), resource.to_manifest())


def delete(store: Store, resource: Resource) -> int | None:
    return store.delete(key_of(resource))


def list_kind(store: Store, kind: str) -> tuple[list[Resource], int]:
    entries, revision = store.list(prefix(kind))
    return [parse_resource(entry.value, entry.key) for entry in entries], revision


def get(store: Store, kind: str, namespace: str, name: str) -> Resource | None:
    entry = store.get(key(kind, namespace, name))
    return parse_resource(entry.value, entry.key) if entry else None


def decode(event: Event) -> Resource | None:
    return parse_resource(event.value, event.key) if event.value else None
