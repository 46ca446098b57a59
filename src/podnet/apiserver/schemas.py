"""The schemas of the served kinds, as OpenAPI v3 components named as
kube-apiserver names them (io.k8s.api.core.v1.Pod), read from the official Python
client's models (kubernetes==37.0.3): every field's JSON name, type, description
and whether it is required. The lists carry merge_keys.py's extensions, from
which kubectl >= 1.32 computes its client-side apply patches. openapi.py serves
them; fieldvalidation.py walks them.

The client's model classes (V1Pod, V1DeploymentSpec) do not say which Go package
a type lives in. The meta types are known by name; every type a core/v1 kind or a
pod template reaches is core's; the rest belong to the group of the served kind
that reaches them (V1DeploymentSpec: apps). Models are imported one by one, on
first use, since the client's whole package is slow to import.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from podnet.apiserver import merge_keys
from podnet.apiserver.merge_keys import Rule
from podnet.apiserver.resources import SERVED, SUBRESOURCE_KINDS

Schema = dict[str, Any]
REF = "#/components/schemas/"
META_PACKAGE = "io.k8s.apimachinery.pkg.apis.meta"
META_TYPES = frozenset({"V1ObjectMeta", "V1ListMeta", "V1LabelSelector", "V1LabelSelectorRequirement",
                        "V1ManagedFieldsEntry", "V1OwnerReference", "V1Condition", "V1Status", "V1StatusDetails",
                        "V1StatusCause"})
CORE_ROOTS = ("V1PodTemplate",)  # core/v1 types other groups embed (a Deployment's pod template)
STATUS = "V1Status"  # what a delete may answer, in every document
STATUS_SCHEMA = f"{META_PACKAGE}.v1.Status"
# Kubernetes' Go types declare these integers int64; every other one is an int32.
INT64_FIELDS = frozenset({"generation", "observedGeneration", "deletionGracePeriodSeconds",
                          "terminationGracePeriodSeconds", "activeDeadlineSeconds", "runAsUser", "runAsGroup",
                          "fsGroup", "supplementalGroups", "tolerationSeconds", "expirationSeconds", "seconds"})
_CLASS_NAME = re.compile(r"^([A-Z][a-z]+)?(V\d+(?:alpha\d+|beta\d+)?)([A-Z]\w*)$")
_PRIMITIVES: dict[str, Schema] = {
    "str": {"type": "string"}, "bool": {"type": "boolean"}, "float": {"type": "number", "format": "double"},
    "datetime": {"type": "string", "format": "date-time"}, "bytes": {"type": "string", "format": "byte"},
}
GVK = tuple[str, str, str]  # group, version, kind


def _models() -> Any:
    from kubernetes.client import models  # the package resolves each class lazily

    return models


def model_class(group: str, version: str, kind: str) -> str | None:
    """The client's class of a kind, if it has one: V1Pod, CoreV1Event (core's
    Event) beside EventsV1Event (events.k8s.io's); None for a kind it lacks."""
    prefix = (group.split(".")[0] or "core").capitalize()
    name = f"{version.capitalize()}{kind}"
    for candidate in (prefix + name, name):
        try:
            getattr(_models(), candidate)
        except AttributeError:
            continue
        return candidate
    return None


@dataclass(frozen=True)
class Catalogue:
    """Every schema, by name; the schema of each served kind (and of Scale)."""

    components: dict[str, Schema]
    roots: dict[GVK, str]

    def reachable(self, names: list[str]) -> dict[str, Schema]:
        """The schemas `names` refer to, directly or not, themselves included."""
        found: dict[str, Schema] = {}
        todo = list(names)
        while todo:
            name = todo.pop()
            if name not in found:
                found[name] = self.components[name]
                todo.extend(_refs(found[name]))
        return {name: found[name] for name in sorted(found)}


def _refs(schema: Any) -> Iterator[str]:
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "$ref":
                yield value.removeprefix(REF)
            else:
                yield from _refs(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _refs(value)


def served_kinds() -> list[GVK]:
    """Every kind served, and what its subresources answer with (autoscaling/v1 Scale)."""
    found = [(r.group, r.version, r.kind.name) for r in SERVED]
    found += [gvk for r in SERVED for sub, gvk in SUBRESOURCE_KINDS.items() if sub in r.kind.subresources]
    return list(dict.fromkeys(found))


@functools.cache
def catalogue() -> Catalogue:
    """Built once: about a second, most of it importing the client's models."""
    return _Builder().build(served_kinds())


class _Builder:
    def __init__(self) -> None:
        self.packages: dict[str, str] = {}  # class -> Go package ("core", "apps", ...)
        self.extensions: dict[tuple[str, str], Schema] = {}  # (class, JSON field) -> list extensions

    def build(self, kinds: list[GVK]) -> Catalogue:
        classes = {gvk: model_class(*gvk) for gvk in kinds}
        core = [c for (group, _, _), c in classes.items() if c and not group]
        self._claim([*core, *CORE_ROOTS, STATUS], "core")
        for (group, _, _), cls in classes.items():
            if cls and group:
                self._claim([cls], group.split(".")[0])
        for (group, _, kind), cls in classes.items():
            if cls:
                self._extend(cls, merge_keys.rules_for(kind))
        components = {self.name(cls): self._schema(cls) for cls in self.packages}
        roots = {}
        listed = {(r.group, r.version, r.kind.name) for r in SERVED if "list" in r.verbs}
        for (group, version, kind), cls in classes.items():
            name = self.name(cls) if cls else f"{'.'.join(reversed(group.split('.')))}.{version}.{kind}"
            if not cls:
                components[name] = self._unknown(kind)
            components[name]["x-kubernetes-group-version-kind"] = [_gvk(group, version, kind)]
            if (group, version, kind) in listed:
                components[f"{name}List"] = self._list(name, group, version, kind)
            roots[(group, version, kind)] = name
        return Catalogue(components, roots)

    def _claim(self, roots: list[str], package: str) -> None:
        """Gives `package` every type reachable from `roots` that has none yet."""
        todo = list(roots)
        while todo:
            cls = todo.pop()
            if cls in self.packages:
                continue
            self.packages[cls] = "meta" if cls in META_TYPES else package
            todo.extend(name for text in _model(cls).openapi_types.values() if (name := _class_in(text)))

    def name(self, cls: str) -> str:
        match = _CLASS_NAME.match(cls)
        if match is None:
            raise ValueError(f"cannot name the client's model {cls}")
        version, kind = match.group(2).lower(), match.group(3)
        package = self.packages[cls]
        base = META_PACKAGE if package == "meta" else f"io.k8s.api.{package}"
        return f"{base}.{version}.{kind}"

    def _extend(self, cls: str, rules: merge_keys.Rules) -> None:
        """Puts each rule's extensions on the field it names, following the path
        from the kind's class (list items and map values implied)."""
        for path, rule in rules.items():
            *steps, last = path.split(".")
            owner: str | None = cls
            for step in steps:
                owner = _class_in(_field_types(owner).get(step, "")) if owner else None
            field_type = _field_types(owner).get(last) if owner else None
            if owner is None or field_type is None:
                raise ValueError(f"merge_keys names {path}, which {cls} does not have")
            extensions = _extensions(rule, field_type.startswith("List["))
            if self.extensions.setdefault((owner, last), extensions) != extensions:
                raise ValueError(f"merge_keys gives {owner}.{last} two different rules")

    def _schema(self, cls: str) -> Schema:
        model = _model(cls)
        properties: dict[str, Schema] = {}
        required = []
        fields = {info.serialization_alias or name: info for name, info in model.model_fields.items()}
        for attr, text in model.openapi_types.items():
            field_name = model.attribute_map[attr]
            info = fields[field_name]
            prop = self._type(text, info.annotation, field_name)
            if info.description:  # beside a $ref too (kubectl explain prints the type's own after it)
                prop = {"description": info.description, **prop}
            prop.update(self.extensions.get((cls, field_name), {}))
            properties[field_name] = prop
            if info.is_required():
                required.append(field_name)
        schema: Schema = {"description": _description(cls), "type": "object", "properties": properties}
        if required:
            schema["required"] = required
        return schema

    def _type(self, text: str, annotation: Any, field_name: str) -> Schema:
        if text.startswith("List["):
            return {"type": "array", "items": self._type(text[5:-1], None, field_name)}
        if text.startswith("Dict[str, "):
            return {"type": "object", "additionalProperties": self._type(text[10:-1], None, field_name)}
        if text == "int":
            return {"type": "integer", "format": "int64" if field_name in INT64_FIELDS else "int32"}
        if text == "object":
            if "int" in str(annotation) and "str" in str(annotation):  # IntOrString
                return {"type": "string", "format": "int-or-string", "x-kubernetes-int-or-string": True}
            return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        if text in _PRIMITIVES:
            return dict(_PRIMITIVES[text])
        return {"allOf": [{"$ref": REF + self.name(text)}]}

    def _unknown(self, kind: str) -> Schema:
        """A kind the client has no model of: its metadata known, the rest taken as given."""
        return {"description": f"{kind}, served by podnet; its fields are not described here.", "type": "object",
                "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                               "metadata": {"allOf": [{"$ref": REF + self.name("V1ObjectMeta")}],
                                            "description": _description("V1ObjectMeta")}},
                "x-kubernetes-preserve-unknown-fields": True}

    def _list(self, item: str, group: str, version: str, kind: str) -> Schema:
        return {"description": f"{kind}List is a list of {kind} objects.", "type": "object",
                "properties": {"apiVersion": {"type": "string"},
                               "items": {"type": "array", "items": {"allOf": [{"$ref": REF + item}]}},
                               "kind": {"type": "string"},
                               "metadata": {"allOf": [{"$ref": REF + self.name("V1ListMeta")}]}},
                "required": ["items"], "x-kubernetes-group-version-kind": [_gvk(group, version, f"{kind}List")]}


def _extensions(rule: Rule, is_list: bool) -> Schema:
    extensions: Schema = {}
    if rule.merge_key or rule.merge_set:
        extensions["x-kubernetes-patch-strategy"] = "merge"
    if rule.merge_key:
        extensions["x-kubernetes-patch-merge-key"] = rule.merge_key
    if is_list:
        extensions["x-kubernetes-list-type"] = rule.list_type
        if rule.map_keys:
            extensions["x-kubernetes-list-map-keys"] = list(rule.map_keys)
    elif rule.list_type == "atomic":
        extensions["x-kubernetes-map-type"] = "atomic"
    return extensions


def _gvk(group: str, version: str, kind: str) -> dict[str, str]:
    return {"group": group, "version": version, "kind": kind}


def _model(cls: str) -> Any:
    return getattr(_models(), cls)


def _class_in(text: str) -> str | None:
    """The model class a type names, inside List[...] or Dict[str, ...]: V1Container."""
    for wrapper in ("List[", "Dict[str, "):
        if text.startswith(wrapper):
            return _class_in(text[len(wrapper):-1])
    return text if _CLASS_NAME.match(text) else None


def _field_types(cls: str) -> dict[str, str]:
    """JSON field name -> the client's type text."""
    model = _model(cls)
    return {model.attribute_map[attr]: text for attr, text in model.openapi_types.items()}


def _description(cls: str) -> str:
    doc = _model(cls).__doc__ or ""
    return " ".join(doc.split("Attributes:")[0].split())
