"""A request's path, read as kube-apiserver reads it: the group and version, the
resource, the namespace, the object's name and a subresource
(`/apis/apps/v1/namespaces/shop/deployments/cart/scale`)."""

from __future__ import annotations

from dataclasses import dataclass

from podnet.apiserver import resources
from podnet.apiserver.resources import Resource
from podnet.apiserver.status import ApiError


@dataclass(frozen=True)
class Target:
    resource: Resource
    namespace: str | None  # None: cluster-scoped, or every namespace
    name: str | None  # None: the collection
    subresource: str | None = None
    watch_path: bool = False  # the legacy /watch/ form


def parse(path: str) -> Target | None:
    """None for a path that is not a resource's (discovery, health, ...)."""
    segments = [s for s in path.split("/") if s]
    if segments[:2] == ["api", "v1"]:
        group, version, rest = "", "v1", segments[2:]
    elif len(segments) >= 3 and segments[0] == "apis":
        group, version, rest = segments[1], segments[2], segments[3:]
    else:
        return None
    if not rest:
        return None
    watch_path = rest[0] == "watch"
    if watch_path:
        rest = rest[1:]
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in ("status", "finalize"):
        namespace, rest = rest[1], rest[2:]
    resource = resources.find(group, version, rest[0]) if rest else None
    if resource is None:
        what = f"{group}/{version}" if group else version
        raise ApiError(404, f"the server could not find the requested resource ({rest[0] if rest else what})")
    if len(rest) > 3:
        raise ApiError(404, "the server could not find the requested resource")
    subresource = rest[2] if len(rest) == 3 else None
    if subresource is not None and subresource not in resource.kind.subresources:
        raise ApiError(404, f"the server could not find the requested resource ({resource.name}/{subresource})")
    if namespace is not None and not resource.kind.namespaced:
        raise ApiError(404, f"the server could not find the requested resource ({resource.name})")
    return Target(resource, namespace, rest[1] if len(rest) >= 2 else None, subresource, watch_path)
