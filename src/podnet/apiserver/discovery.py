"""Discovery: what kubectl and client libraries ask first. The legacy documents
(/api, /api/v1, /apis, /apis/G/V) and the aggregated ones (apidiscovery.k8s.io
v2, and v2beta1 for kubectl 1.26-1.29), chosen exactly by the Accept header, as
kube-apiserver chooses them."""

from __future__ import annotations

from typing import Any

from podnet.apiserver.pod_streams import SUBRESOURCES as POD_STREAMS
from podnet.apiserver.resources import SUBRESOURCE_KINDS, SUBRESOURCE_VERBS, Resource, group_versions, in_group_version

AGGREGATED = "apidiscovery.k8s.io"
AGGREGATED_VERSIONS = ("v2", "v2beta1")


def aggregated_version(accept: str) -> str | None:
    """The aggregated discovery version the Accept header asks for first, if any:
    `application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,...`."""
    for offer in accept.split(","):
        params = dict(p.strip().split("=", 1) for p in offer.split(";")[1:] if "=" in p)
        if params.get("g") == AGGREGATED and params.get("as") == "APIGroupDiscoveryList" \
                and params.get("v") in AGGREGATED_VERSIONS:
            return params["v"]
        if offer.split(";")[0].strip() in ("application/json", "*/*") and "as" not in params:
            return None  # plain JSON preferred before any aggregated offer
    return None


def content_type(version: str) -> str:
    return f"application/json;g={AGGREGATED};v={version};as=APIGroupDiscoveryList"


def api_versions(server_address: str) -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]}


def api_group_list() -> dict[str, Any]:
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_group(name, versions)
                                                                     for name, versions in group_versions().items()]}


def api_group(name: str) -> dict[str, Any] | None:
    versions = group_versions().get(name)
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name, versions)} if versions else None


def _group(name: str, versions: list[str]) -> dict[str, Any]:
    listed = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": listed, "preferredVersion": listed[0]}


def resource_list(group: str, version: str) -> dict[str, Any] | None:
    served = in_group_version(group, version)
    if not served:
        return None
    resources = []
    for resource in served:
        resources.append(_legacy(resource))
        for sub in resource.kind.subresources:
            (group_, version_, kind), verbs = _subresource(resource, sub)
            entry = {"name": f"{resource.name}/{sub}", "singularName": "", "namespaced": resource.kind.namespaced,
                     "kind": kind, "verbs": verbs}
            if sub in SUBRESOURCE_KINDS:
                entry.update(group=group_, version=version_)
            resources.append(entry)
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{group}/{version}" if group else version,
            "resources": resources}


def _subresource(resource: Resource, sub: str) -> tuple[tuple[str, str, str], list[str]]:
    """What a subresource answers with (group, version, kind), and its verbs: a
    pod's exec is PodExecOptions, created (or got, by a WebSocket); its log, got."""
    stream = POD_STREAMS.get(sub) if resource.kind.name == "Pod" else None
    if stream is not None:
        return (resource.group, resource.version, stream.kind), list(stream.verbs)
    return SUBRESOURCE_KINDS.get(sub, (resource.group, resource.version, resource.kind.name)), list(SUBRESOURCE_VERBS)


def _legacy(resource: Resource) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": resource.name, "singularName": resource.singular,
                             "namespaced": resource.kind.namespaced, "kind": resource.kind.name,
                             "verbs": list(resource.verbs)}
    if resource.kind.short_names:
        entry["shortNames"] = list(resource.kind.short_names)
    if resource.kind.categories:
        entry["categories"] = list(resource.kind.categories)
    return entry


def aggregated(core: bool, version: str) -> dict[str, Any]:
    """/api (core: the "" group) or /apis (every other group) as one document."""
    groups = {"": ["v1"]} if core else group_versions()
    items = [{"metadata": {"name": name, "creationTimestamp": None},
              "versions": [{"version": v, "resources": [_aggregated(r) for r in in_group_version(name, v)],
                            "freshness": "Current"} for v in versions]}
             for name, versions in groups.items()]
    return {"kind": "APIGroupDiscoveryList", "apiVersion": f"{AGGREGATED}/{version}", "metadata": {}, "items": items}


def _aggregated(resource: Resource) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": resource.name, "singularResource": resource.singular,
        "responseKind": {"group": resource.group, "version": resource.version, "kind": resource.kind.name},
        "scope": "Namespaced" if resource.kind.namespaced else "Cluster", "verbs": list(resource.verbs)}
    if resource.kind.short_names:
        entry["shortNames"] = list(resource.kind.short_names)
    if resource.kind.categories:
        entry["categories"] = list(resource.kind.categories)
    if resource.kind.subresources:
        entry["subresources"] = [_aggregated_subresource(resource, sub) for sub in resource.kind.subresources]
    return entry


def _aggregated_subresource(resource: Resource, sub: str) -> dict[str, Any]:
    answers, verbs = _subresource(resource, sub)
    return {"subresource": sub, "verbs": verbs, "responseKind": dict(zip(("group", "version", "kind"), answers))}
