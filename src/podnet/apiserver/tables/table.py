"""The `meta.k8s.io` Table kube-apiserver answers a list or get with when a client
asks for one (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`): column
definitions, then one row of cells per object, each row carrying its object,
its metadata only (the default, and what kubectl gets), or nothing.

A Printer is one kind's columns and the function from an object to its cells.
Rows hold every column, the wide ones (priority 1) too, as kube-apiserver makes
them: the client chooses which to show. The function of the object and the
clock is pure, so a Table is a value a test can write out whole.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from podnet.apiserver.tables.age import Clock
from podnet.errors import PodnetError

META_GROUP = "meta.k8s.io"
TABLE_VERSIONS = ("v1", "v1beta1")
INCLUDE_OBJECT = ("None", "Metadata", "Object")  # the query's includeObject; "" is Metadata

NAME_DESCRIPTION = (
    "Name must be unique within a namespace. Is required when creating resources, although some resources may allow "
    "a client to request the generation of an appropriate name automatically. Name is primarily intended for creation "
    "idempotence and configuration definition. Cannot be updated. More info: "
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names")
AGE_DESCRIPTION = (
    "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed "
    "to be set in happens-before order across separate operations. Clients may not set this value. It is represented "
    "in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata")

Cells = list[Any]  # strings, and integers where kube-apiserver puts integers


class TableRequestError(PodnetError):
    """A Table request kube-apiserver refuses with 400 BadRequest."""


@dataclass(frozen=True)
class Column:
    """One TableColumnDefinition; `type` is the OpenAPI type of its cells
    ("string", "integer", "date"), priority 1 shows only under `-o wide`."""

    name: str
    description: str
    type: str = "string"
    format: str = ""
    priority: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "format": self.format, "description": self.description,
                "priority": self.priority}


NAME = Column("Name", NAME_DESCRIPTION, format="name")
AGE = Column("Age", AGE_DESCRIPTION)


@dataclass(frozen=True)
class Printer:
    """A kind's columns, and its object's cells in their order (conditions too, for
    the pods that have finished)."""

    columns: tuple[Column, ...]
    cells: Callable[[Mapping[str, Any], Clock], Cells]
    conditions: Callable[[Mapping[str, Any]], list[dict[str, str]]] = field(default=lambda obj: [])


@dataclass(frozen=True)
class TableOptions:
    """What the request asked of its Table: which object each row carries, the
    Table's version, and no column definitions (a watch sends them once)."""

    include_object: str = "Metadata"
    version: str = "v1"
    no_headers: bool = False

    @classmethod
    def parse(cls, include_object: str | None = None, version: str = "v1", no_headers: bool = False) -> TableOptions:
        """From the query's includeObject (absent or empty: Metadata) and the Accept
        header's version, refused in kube-apiserver's words."""
        include = include_object or "Metadata"
        if include not in INCLUDE_OBJECT:
            raise TableRequestError(f'unrecognized includeObject value: "{include_object}"')
        if version not in TABLE_VERSIONS:
            raise TableRequestError(f"no Table exists in group version {META_GROUP}/{version}")
        return cls(include, version, no_headers)

    @property
    def api_version(self) -> str:
        return f"{META_GROUP}/{self.version}"


def is_list(value: Mapping[str, Any]) -> bool:
    return str(value.get("kind", "")).endswith("List") and "items" in value


def make_table(printer: Printer, value: Mapping[str, Any], now: datetime | float,
               options: TableOptions = TableOptions()) -> dict[str, Any]:
    """The Table of one object, or of a List (`{"kind": "PodList", "metadata":
    {"resourceVersion", "continue", "remainingItemCount"}, "items": [...]}`),
    whose list metadata the Table keeps."""
    clock = Clock.at(now)
    if is_list(value):
        item_version, item_kind = value.get("apiVersion", ""), str(value["kind"]).removesuffix("List")
        items = [{"apiVersion": item_version, "kind": item_kind, **item} for item in value["items"] or []]
        meta = {key: value["metadata"][key] for key in ("resourceVersion", "continue", "remainingItemCount")
                if (value.get("metadata") or {}).get(key)}
    else:
        items = [value]
        version = (value.get("metadata") or {}).get("resourceVersion")
        meta = {"resourceVersion": version} if version else {}
    return {
        "kind": "Table",
        "apiVersion": options.api_version,
        "metadata": meta,
        "columnDefinitions": None if options.no_headers else [column.to_json() for column in printer.columns],
        "rows": [_row(printer, item, clock, options) for item in items],
    }


def _row(printer: Printer, obj: Mapping[str, Any], clock: Clock, options: TableOptions) -> dict[str, Any]:
    row: dict[str, Any] = {"cells": printer.cells(obj, clock)}
    conditions = printer.conditions(obj)
    if conditions:
        row["conditions"] = conditions
    row["object"] = _carried(obj, options)
    return row


def _carried(obj: Mapping[str, Any], options: TableOptions) -> Mapping[str, Any] | None:
    if options.include_object == "Object":
        return obj
    if options.include_object == "None":
        return None
    return {"kind": "PartialObjectMetadata", "apiVersion": options.api_version, "metadata": obj.get("metadata") or {}}


def name_and_age(obj: Mapping[str, Any], clock: Clock) -> tuple[str, str]:
    metadata = obj.get("metadata") or {}
    return metadata.get("name", ""), clock.since(metadata.get("creationTimestamp"))


def default_cells(obj: Mapping[str, Any], clock: Clock) -> Cells:
    return list(name_and_age(obj, clock))


# A kind with no printer of its own gets what kube-apiserver gives a custom
# resource with no printer columns: NAME and AGE (a "date" column, aged).
DEFAULT = Printer((NAME, Column("Age", AGE_DESCRIPTION, type="date")), default_cells)
