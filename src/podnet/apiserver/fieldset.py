"""The set of fields an object sets, as server-side apply counts them
(structured-merge-diff): a path per leaf value, per item of a keyed list (and its
fields) and per member of a set, written as managedFields' FieldsV1 keys:
`f:spec`, `k:{"name":"web"}` (an item by its list's map keys), `v:"a"` (a set's
member). Atomic lists and maps are one leaf. The merge rules say which is which.

Also the way back: FieldsV1 to paths, a path's value in an object, the object
cut down to a set of paths, and a path removed from it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from podnet.apiserver.merge_keys import Rule, Rules

Path = tuple[str, ...]
MEMBER = "."  # FieldsV1's mark of a path that is itself in the set and has fields under it
UNTRACKED = frozenset({"apiVersion", "kind"})
UNTRACKED_METADATA = frozenset({"name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
                                "selfLink", "managedFields", "deletionTimestamp", "deletionGracePeriodSeconds"})


def fields_of(obj: dict[str, Any], rules: Rules) -> frozenset[Path]:
    """Every path the object sets, but its identity (kind, name, uid, versions),
    which no manager owns."""
    return frozenset(field_values(obj, rules))


def field_values(obj: dict[str, Any], rules: Rules) -> dict[Path, Any]:
    """fields_of, each path with the value it names (a leaf's, an item's)."""
    found: dict[Path, Any] = {}
    for key, value in obj.items():
        if key == "metadata" and isinstance(value, dict):
            value = {field: item for field, item in value.items() if field not in UNTRACKED_METADATA} or None
        if key not in UNTRACKED:
            _walk(value, (f"f:{key}",), key, rules, found)
    return found


def _walk(value: Any, path: Path, names: str, rules: Rules, found: dict[Path, Any]) -> None:
    if value is None:
        return
    rule = rules.get(names)
    if isinstance(value, dict) and value and not (rule and rule.list_type == "atomic"):
        for key, item in value.items():
            _walk(item, path + (f"f:{key}",), f"{names}.{key}", rules, found)
    elif isinstance(value, list) and value and keyed_list(value, rule):
        for item in value:
            item_path = path + (item_key(item, rule),)
            found[item_path] = item
            if isinstance(item, dict):
                for key, field in item.items():
                    _walk(field, item_path + (f"f:{key}",), f"{names}.{key}", rules, found)
    else:
        found[path] = value


def rule_at(rules: Rules, path: Path) -> Rule | None:
    """The rule of the field a path names (its list items are implied)."""
    return rules.get(".".join(token[2:] for token in path if token.startswith("f:")))


def keyed_list(items: list[Any], rule: Rule | None) -> bool:
    """Whether a list's items are owned one by one: a declared map of objects or set of primitives."""
    if rule is None or rule.list_type == "atomic":
        return False
    if rule.list_type == "map":
        return all(isinstance(item, dict) for item in items)
    return not any(isinstance(item, (dict, list)) for item in items)


def item_key(item: Any, rule: Rule) -> str:
    """A list item's FieldsV1 key: `k:{...}` by its map keys (defaults filling the
    missing ones, as kube-apiserver does), `v:...` for a set's member."""
    if rule.list_type == "set":
        return "v:" + _json(item)
    defaults = dict(rule.key_defaults)
    keys = {key: item.get(key, defaults.get(key)) for key in rule.map_keys if key in item or key in defaults}
    return "k:" + _json(keys)


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_json = _ENCODER.encode


def leaves(fields: Iterable[Path]) -> frozenset[Path]:
    """The paths no other path of the set lies under."""
    fields = frozenset(fields)
    parents = {path[:length] for path in fields for length in range(1, len(path))}
    return fields - parents


def to_fields_v1(fields: Iterable[Path]) -> dict[str, Any]:
    """The set in managedFields' FieldsV1 form, keys sorted as kube-apiserver writes them."""
    fields = frozenset(fields)
    tree: dict[str, Any] = {}
    for path in fields:
        node = tree
        for token in path:
            node = node.setdefault(token, {})
    for path in fields:
        node = tree
        for token in path:
            node = node[token]
        if node and MEMBER not in node:
            node[MEMBER] = {}
    return _sorted(tree)


def _sorted(tree: dict[str, Any]) -> dict[str, Any]:
    return {key: _sorted(tree[key]) for key in sorted(tree)}


def from_fields_v1(tree: Any, prefix: Path = ()) -> frozenset[Path]:
    """The paths a FieldsV1 value holds."""
    found: set[Path] = set()
    for key, child in (tree.items() if isinstance(tree, dict) else ()):
        if key == MEMBER:
            found |= {prefix} if prefix else set()
        elif isinstance(child, dict) and child:
            found |= from_fields_v1(child, prefix + (key,))
        else:
            found.add(prefix + (key,))
    return frozenset(found)


def path_text(path: Path) -> str:
    """A path as kube-apiserver prints it in a conflict: `.spec.containers[name="web"].image`."""
    text = ""
    for token in path:
        kind, body = token[:2], token[2:]
        if kind == "f:":
            text += "." + body
        elif kind == "k:":
            text += "[" + ",".join(f"{key}={_json(value)}" for key, value in sorted(json.loads(body).items())) + "]"
        else:
            text += f"[={body}]"
    return text


def value_at(obj: dict[str, Any], path: Path, rules: Rules) -> Any:
    """The value a path names in the object; KeyError if it has none."""
    parent, selector = _locate(obj, path, rules)
    return parent[selector]


def remove_path(obj: dict[str, Any], path: Path, rules: Rules) -> None:
    """Take the value a path names out of the object, if it has one."""
    try:
        parent, selector = _locate(obj, path, rules)
    except KeyError:
        return
    del parent[selector]


def _locate(obj: dict[str, Any], path: Path, rules: Rules) -> tuple[Any, Any]:
    """The container holding the path's value and its key or index there."""
    if not path:
        raise KeyError("an empty path")
    node: Any = obj
    for depth, token in enumerate(path):
        if token.startswith("f:") and isinstance(node, dict) and token[2:] in node:
            parent, selector = node, token[2:]
        elif isinstance(node, list):
            rule = rule_at(rules, path[:depth])
            index = next((i for i, item in enumerate(node) if rule and item_key(item, rule) == token), None)
            if index is None:
                raise KeyError(token)
            parent, selector = node, index
        else:
            raise KeyError(token)
        node = parent[selector]
    return parent, selector


def extract(obj: dict[str, Any], fields: Iterable[Path], rules: Rules) -> dict[str, Any]:
    """The object cut down to the given fields (what one manager set), its
    identity kept: the inverse of fields_of."""
    fields = frozenset(fields)
    parents = {path[:length] for path in fields for length in range(1, len(path))}
    extracted = _extract(obj, (), fields, parents | fields, parents, rules)
    identity = {key: value for key, value in obj.get("metadata", {}).items()
                if key in UNTRACKED_METADATA and key != "managedFields"}
    if identity:
        extracted["metadata"] = identity | extracted.get("metadata", {})
    return {key: obj[key] for key in UNTRACKED if key in obj} | extracted


def _extract(value: Any, path: Path, fields: frozenset[Path], under: set[Path], parents: set[Path],
             rules: Rules) -> Any:
    if path in fields and path not in parents:
        return value
    if isinstance(value, dict):
        return {key: _extract(item, path + (f"f:{key}",), fields, under, parents, rules)
                for key, item in value.items() if path + (f"f:{key}",) in under}
    rule = rule_at(rules, path)
    return [_extract(item, path + (item_key(item, rule),), fields, under, parents, rules)
            for item in value if rule and path + (item_key(item, rule),) in under]
