"""The resources this API serves, read from the one Kind registry
(model/kinds.py): their paths, verbs, short names and categories, as discovery
and every request need them."""

from __future__ import annotations

from dataclasses import dataclass

from podnet.apiserver import derived, reviews
from podnet.model import kinds
from podnet.model.kinds import Kind

VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
READ_ONLY = ("get", "list", "watch")
SUBRESOURCE_VERBS = ("get", "patch", "update")
SUBRESOURCE_KINDS = {"scale": ("autoscaling", "v1", "Scale")}  # what a subresource answers with, if not its kind


@dataclass(frozen=True)
class Resource:
    kind: Kind
    derive: derived.Derive | None = None  # made from other objects when read, never stored
    review: reviews.Review | None = None  # answered when created, never stored
    sources: tuple[str, ...] = ()  # the stored kinds a derived one is made from: its watch follows them

    @property
    def verbs(self) -> tuple[str, ...]:
        return ("create",) if self.review else READ_ONLY if self.derive else VERBS

    @property
    def name(self) -> str:  # the URL's word: pods
        return self.kind.plural

    @property
    def group(self) -> str:
        return self.kind.group

    @property
    def version(self) -> str:
        return self.kind.version

    @property
    def singular(self) -> str:
        return self.kind.name.lower()


DERIVED = {  # how each kind only read is made, and from what
    "Endpoints": Resource(kinds.readable_from_word("endpoints"), derived.endpoints,  # type: ignore[arg-type]
                          sources=("EndpointSlice",)),
    "ReplicaSet": Resource(kinds.readable_from_word("replicasets"), derived.replicasets,  # type: ignore[arg-type]
                           sources=("Deployment", "Pod")),
}
REVIEWS = (
    Resource(Kind("SelfSubjectAccessReview", "selfsubjectaccessreviews", (), None, namespaced=False,
                  group_version="authorization.k8s.io/v1"), review=reviews.access),
    Resource(Kind("SelfSubjectRulesReview", "selfsubjectrulesreviews", (), None, namespaced=False,
                  group_version="authorization.k8s.io/v1"), review=reviews.rules),
    Resource(Kind("SelfSubjectReview", "selfsubjectreviews", (), None, namespaced=False,
                  group_version="authentication.k8s.io/v1"), review=reviews.identity),
)
EVENTS_V1 = Resource(Kind("Event", "events", ("ev",), None, group_version="events.k8s.io/v1"), derived.events,
                     sources=("Event",))
SERVED: tuple[Resource, ...] = (*(Resource(kind) for kind in kinds.KINDS),
                                 *(DERIVED[kind.name] for kind in kinds.DERIVED), EVENTS_V1, *REVIEWS)
_BY_PATH = {(r.group, r.version, r.name): r for r in SERVED}


def find(group: str, version: str, name: str) -> Resource | None:
    return _BY_PATH.get((group, version, name))


def group_versions() -> dict[str, list[str]]:
    """Every group (but the core one, "") and its versions, in the order served."""
    found: dict[str, list[str]] = {}
    for resource in SERVED:
        if resource.group and resource.version not in found.setdefault(resource.group, []):
            found[resource.group].append(resource.version)
    return found


def served_group_versions() -> list[tuple[str, str]]:
    """Every (group, version) served, the core v1 first: what the OpenAPI documents cover."""
    core = [("", "v1")] if in_group_version("", "v1") else []
    return core + [(group, version) for group, versions in group_versions().items() for version in versions]


def in_group_version(group: str, version: str) -> list[Resource]:
    return [r for r in SERVED if (r.group, r.version) == (group, version)]
