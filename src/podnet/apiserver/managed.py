"""Field managers, as kube-apiserver keeps them in `metadata.managedFields`:
server-side apply (`application/apply-patch+yaml`) and the bookkeeping of
ordinary writes, so that an apply conflicts with what `kubectl scale` or an
earlier client-side apply set.

Each manager owns a set of field paths (fieldset.py). An apply merges the
applied object into the live one and removes what the applier set before but
applies no longer, unless another manager owns it (apply_merge.py); it
conflicts where it would change a field another manager owns, and with force
takes the field over. An update
gives its manager the fields it changed, taking them from the others.
A manager is one per name, operation and subresource (and API version, for
updates), as kube-apiserver tells them apart.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from podnet.apiserver.apply_merge import merge_applied, prune
from podnet.apiserver.fieldset import Path, field_values, fields_of, from_fields_v1, leaves, path_text, to_fields_v1
from podnet.apiserver.merge_keys import Rules, rules_for
from podnet.apiserver.patch import PatchError

APPLY, UPDATE = "Apply", "Update"
BEFORE_FIRST_APPLY = "before-first-apply"  # who owns what an untracked object already holds
KUBECTL = "kubectl"  # kubectl apply --server-side's manager
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


@dataclass(frozen=True)
class Manager:
    """One managedFields entry: who, by which operation, and the fields it owns."""

    manager: str
    operation: str
    api_version: str
    subresource: str = ""
    time: str | None = None
    fields: frozenset[Path] = field(default=frozenset(), compare=False)

    @property
    def identity(self) -> tuple[str, str, str, str]:
        """What tells managers apart: an applier is the same whatever version it applies."""
        return self.manager, self.operation, self.subresource, "" if self.operation == APPLY else self.api_version

    def describe(self) -> str:
        """As kube-apiserver names a manager in a conflict: `"kubectl" using apps/v1`."""
        text = json.dumps(self.manager)
        if self.subresource:
            text += f" with subresource {json.dumps(self.subresource)}"
        return text + (f" using {self.api_version}" if self.operation == UPDATE else "")

    def to_json(self) -> dict[str, Any]:
        entry = {"manager": self.manager, "operation": self.operation, "apiVersion": self.api_version}
        entry |= {"time": self.time} if self.time else {}
        entry |= {"fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(self.fields)}
        return entry | ({"subresource": self.subresource} if self.subresource else {})


@dataclass(frozen=True)
class Conflict:
    """A field the apply would change that another manager owns."""

    manager: Manager
    path: Path

    def cause(self) -> dict[str, str]:
        """The Status cause kube-apiserver gives for it."""
        return {"type": "FieldManagerConflict", "message": f"conflict with {self.manager.describe()}",
                "field": path_text(self.path)}


def server_side_apply(live: dict[str, Any] | None, applied: dict[str, Any], manager: str, force: bool = False, *,
                      subresource: str = "",
                      now: datetime | None = None) -> tuple[dict[str, Any], tuple[Conflict, ...]]:
    """The object after `manager` applies `applied` to `live` (None or {} creates it),
    and the conflicts that refused it: with conflicts and no force, the object is
    `live` unchanged; with force the applier takes the fields over. Through the
    resource an apply sets no status, through "status" nothing else."""
    live = live or {}
    rules = rules_for(applied.get("kind") or live.get("kind", ""))
    applied = {key: value for key, value in _without_managers(applied).items()
               if key in ("apiVersion", "kind") or (key == "status") == (subresource == "status")}
    current = _without_managers(live)
    managers = _managers(live, rules)
    me = Manager(manager, APPLY, applied.get("apiVersion") or live.get("apiVersion", ""), subresource)
    previous = next((entry for entry in managers if entry.identity == me.identity), None)
    others = [entry for entry in managers if entry.identity != me.identity]
    applying = _scoped(fields_of(applied, rules), subresource)
    merged = merge_applied(current, applied, rules)
    kept = applying.union(*(entry.fields for entry in others))
    prune(merged, (previous.fields if previous else frozenset()) - applying, kept, rules)
    changed, removed = _changes(current, merged, rules, subresource)
    taken_over = _client_side_applied(live, rules) if manager == KUBECTL else frozenset()
    conflicts = tuple(Conflict(entry, path) for entry in others for path in sorted(entry.fields & changed - taken_over))
    if conflicts and not force:
        return live, conflicts
    time = _stamp(now) if merged != current or previous is None else previous.time
    owners = [replace(entry, fields=entry.fields - changed - removed) for entry in others]
    if manager == KUBECTL and LAST_APPLIED in merged.get("metadata", {}).get("annotations", {}):
        merged["metadata"]["annotations"][LAST_APPLIED] = _last_applied(applied)
    return _with_managers(merged, owners + [replace(me, time=time, fields=applying)]), ()


def _client_side_applied(live: dict[str, Any], rules: Rules) -> frozenset[Path]:
    """What kubectl's client-side apply set (its last-applied-configuration
    annotation): kube-apiserver lets "kubectl" take it over without a conflict,
    so that `kubectl apply --server-side` can follow a plain `kubectl apply`."""
    try:
        return fields_of(json.loads(live["metadata"]["annotations"][LAST_APPLIED]), rules)
    except (KeyError, TypeError, AttributeError, ValueError):
        return frozenset()


def _last_applied(applied: dict[str, Any]) -> str:
    """The annotation kubectl's client-side apply reads, kept in step by its server-side applies."""
    config = copy.deepcopy(applied)
    annotations = config.get("metadata", {}).get("annotations", {})
    annotations.pop(LAST_APPLIED, None)
    if not annotations:
        config.get("metadata", {}).pop("annotations", None)
    return json.dumps(config, sort_keys=True, separators=(",", ":"))


def record_update(before: dict[str, Any] | None, after: dict[str, Any], manager: str, operation: str = UPDATE, *,
                  subresource: str = "", now: datetime | None = None) -> dict[str, Any]:
    """`after` with its managedFields, once `manager` wrote it over `before` (None
    for a create) by an ordinary write: it owns what it changed, which the other
    managers lose; what the write removed, nobody owns any more. Managers the
    write itself sets through the resource (kubectl rewrites them when it moves
    a client-side apply to server-side) are taken as written, as kube-apiserver does."""
    before = before or {}
    rules = rules_for(after.get("kind") or before.get("kind", ""))
    current, written = _without_managers(before), _without_managers(after)
    changed, removed = _changes(current, written, rules, subresource)
    me = Manager(manager, operation, after.get("apiVersion") or before.get("apiVersion", ""), subresource)
    managers = (not subresource and managers_of(after)) or managers_of(before)
    previous = next((entry for entry in managers if entry.identity == me.identity), None)
    owners = [replace(entry, fields=entry.fields - changed - removed)
              for entry in managers if entry.identity != me.identity]
    mine = ((previous.fields if previous else frozenset()) - removed) | changed
    time = _stamp(now) if changed or previous is None else previous.time
    return _with_managers(written, owners + [replace(me, time=time, fields=mine)])


def conflict_error(conflicts: tuple[Conflict, ...]) -> PatchError:
    """The 409 kube-apiserver answers a refused apply with, causes and all."""
    causes = tuple(conflict.cause() for conflict in conflicts)
    if len(conflicts) == 1:
        only = conflicts[0]
        message = f"Apply failed with 1 conflict: conflict with {only.manager.describe()}: {path_text(only.path)}"
        return PatchError(409, message, causes=causes)
    lines = []
    for identity in sorted({conflict.manager.identity for conflict in conflicts}):
        mine = [conflict for conflict in conflicts if conflict.manager.identity == identity]
        lines.append(f"conflicts with {mine[0].manager.describe()}:")
        lines += [f"- {path_text(conflict.path)}" for conflict in mine]
    return PatchError(409, f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines), causes=causes)


def managers_of(obj: dict[str, Any]) -> list[Manager]:
    """The object's managedFields entries, their FieldsV1 read into paths."""
    return [Manager(entry.get("manager", ""), entry.get("operation", ""), entry.get("apiVersion", ""),
                    entry.get("subresource", ""), entry.get("time"), from_fields_v1(entry.get("fieldsV1", {})))
            for entry in obj.get("metadata", {}).get("managedFields") or () if isinstance(entry, dict)]


def _managers(live: dict[str, Any], rules: Rules) -> list[Manager]:
    """The live object's managers; on the first apply to an object nobody tracked,
    what it holds belongs to "before-first-apply", as in kube-apiserver."""
    managers = managers_of(live)
    held = frozenset() if managers else _scoped(fields_of(live, rules), "")
    if not held:
        return managers
    return [Manager(BEFORE_FIRST_APPLY, UPDATE, live.get("apiVersion", ""), fields=held)]


def _with_managers(obj: dict[str, Any], managers: list[Manager]) -> dict[str, Any]:
    """The object with these managers written in, sorted as kube-apiserver sorts
    them; a manager left owning nothing is dropped."""
    kept = sorted((entry for entry in managers if entry.fields),
                  key=lambda entry: (entry.operation, entry.time or "", entry.manager, entry.api_version,
                                     entry.subresource))
    if not kept:
        return obj
    return obj | {"metadata": obj.get("metadata", {}) | {"managedFields": [entry.to_json() for entry in kept]}}


def _without_managers(obj: dict[str, Any]) -> dict[str, Any]:
    """The object without its managedFields (sharing all else with it)."""
    if "managedFields" not in obj.get("metadata", {}):
        return obj
    return obj | {"metadata": {key: value for key, value in obj["metadata"].items() if key != "managedFields"}}


def _scoped(fields: frozenset[Path], subresource: str) -> frozenset[Path]:
    """The fields a write through the resource (all but status) or its status owns."""
    in_status = subresource == "status"
    return frozenset(path for path in fields if (path[0] == "f:status") == in_status)


def _changes(before: dict[str, Any], after: dict[str, Any], rules: Rules,
             subresource: str) -> tuple[frozenset[Path], frozenset[Path]]:
    """(added or modified, removed) fields from one object to the other."""
    old, new = field_values(before, rules), field_values(after, rules)
    old_fields, new_fields = _scoped(frozenset(old), subresource), _scoped(frozenset(new), subresource)
    modified = {path for path in leaves(old_fields) & leaves(new_fields) if old[path] != new[path]}
    return (new_fields - old_fields) | modified, old_fields - new_fields


def _stamp(now: datetime | None) -> str:
    return (now or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
