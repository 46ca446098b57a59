"""Where a resource came from, so that writing it back loses nothing.

podnet's model reads only the fields podnet acts on; a Kubernetes object has many
more (a container's image and env, a Service's annotations for other tools,
uid and creationTimestamp). A parsed resource keeps the document it was read
from and the resource as first parsed, and `document_of` writes the model's
fields over that document: what the model changed is changed, what it removed is
removed, and what it never read stays as it was. A resource made from another
(`dataclasses.replace`, a Deployment's pod from its template) keeps the other's
origin, so a pod inherits its template's image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


class Modelled(Protocol):
    @property
    def origin(self) -> Origin | None: ...

    def to_manifest(self) -> dict[str, Any]: ...


@dataclass(frozen=True, eq=False)
class Origin:
    document: dict[str, Any]  # as read (from the store, a file, a request): never changed in place
    parsed: Modelled  # the resource as first parsed from it


def remember(resource: Any, document: Any) -> Any:
    """The resource, knowing the document it was parsed from (set once, at parse)."""
    if isinstance(document, dict):
        object.__setattr__(resource, "origin", Origin(document, resource))
    return resource


def document_of(resource: Modelled) -> dict[str, Any]:
    """The whole object to store: the model's fields over its origin's document."""
    rendered = resource.to_manifest()
    origin = resource.origin
    if origin is None:
        return rendered
    base = rendered if origin.parsed is resource else origin.parsed.to_manifest()
    return overlay(origin.document, base, rendered)  # type: ignore[no-any-return]


def overlay(document: Any, base: Any, rendered: Any) -> Any:
    """`rendered` (the model now) over `document` (as read), where `base` is what
    the model made of the document. Mappings merge key by key: a key the model
    dropped since `base` goes, one it never had stays. Lists whose items line up
    merge item by item (a container keeps its image); other lists, and values,
    are the model's."""
    if isinstance(rendered, dict) and isinstance(document, dict):
        base = base if isinstance(base, dict) else {}
        merged = {key: value for key, value in document.items() if key in rendered or key not in base}
        for key, value in rendered.items():
            merged[key] = overlay(document[key], base.get(key), value) if key in document else value
        return merged
    if isinstance(rendered, list) and isinstance(document, list) and _aligned(document, rendered):
        bases = base if isinstance(base, list) and len(base) == len(rendered) else [None] * len(rendered)
        return [overlay(d, b, r) for d, b, r in zip(document, bases, rendered)]
    return rendered


def _aligned(document: list[Any], rendered: list[Any]) -> bool:
    """Same length, and each pair of mappings agrees on the plain values both hold:
    the same items in the same order."""
    if len(document) != len(rendered):
        return False
    for old, new in zip(document, rendered):
        if isinstance(old, dict) and isinstance(new, dict):
            shared = [k for k in old.keys() & new.keys() if not isinstance(new[k], (dict, list))]
            if any(old[k] != new[k] for k in shared):
                return False
        elif isinstance(old, dict) or isinstance(new, dict):
            return False
    return True
