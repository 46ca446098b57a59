"""Strategic merge patch, as kube-apiserver applies it (k8s.io/apimachinery's
strategicpatch): maps merge key by key and null deletes a key, lists declared
`patchStrategy: merge` merge item by item (by their merge key, or as a set of
primitives), every other list is replaced. The patch may carry directives:

- `$patch: replace` / `$patch: delete` in a map (replace it whole, delete it);
  in a merged list, `{"$patch": "replace"}` replaces the list and
  `{"name": "x", "$patch": "delete"}` deletes the items with that key;
- `$retainKeys: [...]` clears the map's other fields (a union's members);
- `$setElementOrder/<list>: [...]` orders the list (kubectl apply sends it);
- `$deleteFromPrimitiveList/<list>: [...]` removes values from a set.

Where the merged list's order is not set, the items the patch names come in its
order and the others keep their place relative to them, as in the Go code: an
item only the patch has goes before the server's items it cannot be placed
among (a container added by `kubectl patch` comes first). One
deliberate difference: a map patched with `$patch: delete` is removed (the
Go code leaves an empty map, which omitempty then hides for most fields).
"""

from __future__ import annotations

import copy
from typing import Any

from podnet.apiserver.merge_keys import Rules
from podnet.apiserver.patch import PatchError, json_kind

DIRECTIVE = "$patch"
RETAIN_KEYS = "$retainKeys"
SET_ORDER = "$setElementOrder/"
DELETE_FROM = "$deleteFromPrimitiveList/"
_DELETED = object()  # what a map patched with `$patch: delete` becomes
_MISSING = object()
Path = tuple[str, ...]  # field names from the root, list items implied


def strategic_merge_patch(obj: dict[str, Any], patch: Any, rules: Rules) -> dict[str, Any]:
    """The object with the strategic merge patch applied; `rules` are the kind's
    (merge_keys.rules_for). Malformed patches raise PatchError in kube-apiserver's words."""
    if not isinstance(patch, dict):
        raise PatchError(400, f"json: cannot unmarshal {json_kind(patch)} into Go value of type "
                              "map[string]interface {}")
    merged = _merge_map(copy.deepcopy(obj), copy.deepcopy(patch), (), rules)
    return {} if merged is _DELETED else merged


def _merge_map(original: dict[str, Any], patch: dict[str, Any], at: Path, rules: Rules) -> Any:
    if DIRECTIVE in patch:
        directive = patch.pop(DIRECTIVE)
        if directive == "replace":
            return _merge_map({}, patch, at, rules)
        if directive == "delete":
            return _DELETED
        raise PatchError(400, f"unknown patch type: {_go(directive)} in map: {_go(patch | {DIRECTIVE: directive})}")
    _retain_keys(original, patch)
    for key in [key for key in patch if key.startswith(SET_ORDER)]:
        _set_element_order(original, patch, key, at, rules)
    deletions = {key: patch.pop(key) for key in list(patch) if key.startswith(DELETE_FROM)}
    for key, value in patch.items():
        if value is None:
            original.pop(key, None)
        else:
            _put(original, key, _merge_value(original.get(key, _MISSING), value, at + (key,), rules))
    for key, values in deletions.items():
        _delete_from_primitive_list(original, key, values)
    return original


def _merge_value(original: Any, patch: Any, at: Path, rules: Rules) -> Any:
    """The patch's value merged into the original's; a value the original lacks, or
    of another type, is the patch's own, its directives and nulls applied to nothing."""
    if isinstance(patch, dict):
        return _merge_map(original if isinstance(original, dict) else {}, patch, at, rules)
    if isinstance(patch, list):
        return _merge_list(original if isinstance(original, list) else [], patch, at, rules)
    return patch


def _put(target: dict[str, Any], key: str, value: Any) -> None:
    if value is _DELETED:
        target.pop(key, None)
    else:
        target[key] = value


def _merge_list(original: list[Any], patch: list[Any], at: Path, rules: Rules) -> list[Any]:
    rule = rules.get(".".join(at))
    if rule is None or not rule.strategic_merge:
        return [_merge_value(_MISSING, item, at, rules) for item in patch]
    if not original and not patch:
        return original
    if not _holds_maps(original + patch):
        merged = _deduplicated(original + patch)
        return _ordered(merged, patch, original, None)
    key = rule.merge_key
    if key is None:
        raise PatchError(400, "cannot merge lists without merge key for type map")
    original, patch, replaced = _special_elements(original, patch, key)
    if replaced:
        return [_merge_value(_MISSING, item, at, rules) for item in original]
    server_order = list(original)
    for item in patch:
        if key not in item:
            raise PatchError(400, f"map: {_go(item)} does not contain declared merge key: {key}")
        index = next((i for i, old in enumerate(original) if old.get(key) == item[key]), None)
        if index is None:
            original.append(_merge_value(_MISSING, item, at, rules))
        else:
            original[index] = _merge_map(original[index], item, at, rules)
    return _ordered(original, patch, server_order, key)


def _special_elements(original: list[Any], patch: list[Any],
                      key: str) -> tuple[list[Any], list[Any], bool]:
    """(original, patch, replaced) once the patch's `$patch` items are acted on:
    deletions taken out of the original; or, replaced, the patch's plain items
    as the original and nothing left to merge."""
    plain, replace = [], False
    for item in patch:
        if DIRECTIVE not in item:
            plain.append(item)
        elif item[DIRECTIVE] == "delete":
            if key not in item:
                raise PatchError(400, f"map: {_go(item)} does not contain declared merge key: {key}")
            original = [old for old in original if old.get(key) != item[key]]
        elif item[DIRECTIVE] == "replace":
            replace = True
        elif item[DIRECTIVE] == "merge":
            raise PatchError(400, "merging lists cannot yet be specified in the patch")
        else:
            raise PatchError(400, f"unknown patch type: {_go(item[DIRECTIVE])} in map: {_go(item)}")
    return (plain, [], True) if replace else (original, plain, False)


def _retain_keys(original: dict[str, Any], patch: dict[str, Any]) -> None:
    """`$retainKeys`: the original keeps only the listed fields; the patch may set no other."""
    if RETAIN_KEYS not in patch:
        return
    retained = patch.pop(RETAIN_KEYS)
    if not isinstance(retained, list):
        raise PatchError(400, "invalid patch format of retainKeys")
    for key, value in patch.items():
        if value is not None and not key.startswith((SET_ORDER, DELETE_FROM)) and key not in retained:
            raise PatchError(422, "patch content doesn't match retainKeys list")
    for key in [key for key in original if key not in retained]:
        del original[key]


def _set_element_order(original: dict[str, Any], patch: dict[str, Any], directive: str,
                       at: Path, rules: Rules) -> None:
    """`$setElementOrder/<field>`: merge the field's patch now, then order the result:
    the directive's order first, the live list's order for items only the server has."""
    order, field = patch.pop(directive), directive[len(SET_ORDER):]
    patch_list = patch.pop(field, _MISSING)
    if not field or not isinstance(order, list) or not (patch_list is _MISSING or isinstance(patch_list, list)):
        raise PatchError(400, "invalid patch format of setElementOrder list")
    rule = rules.get(".".join(at + (field,)))
    key = rule.merge_key if rule else None
    if patch_list is not _MISSING:
        _check_order(patch_list, order, key)
    live = original.get(field, _MISSING)
    if live is _MISSING and patch_list is _MISSING:
        return
    if patch_list is _MISSING:
        merged = live
    else:
        merged = _merge_value(live, patch_list, at + (field,), rules)
    original[field] = _ordered(merged, order, live if isinstance(live, list) else [], key)


def _check_order(patch_list: list[Any], order: list[Any], key: str | None) -> None:
    """The patch's items (deletions aside) must come in the directive's relative order."""
    items = [item for item in patch_list if not (isinstance(item, dict) and DIRECTIVE in item)]
    at_item = at_order = 0
    while at_item < len(items) and at_order < len(order):
        if _identity(items[at_item], key) == _identity(order[at_order], key):
            at_item += 1
        at_order += 1
    if at_item < len(items):
        raise PatchError(400, f"The order in patch list: {_go(patch_list)} doesn't match "
                              f"$setElementOrder list: {_go(order)}")


def _delete_from_primitive_list(original: dict[str, Any], directive: str, values: Any) -> None:
    field = directive[len(DELETE_FROM):]
    if not field or not isinstance(values, list):
        raise PatchError(400, "invalid patch format of primitive list")
    if isinstance(original.get(field), list):
        original[field] = [value for value in original[field] if value not in values]


def _ordered(merged: list[Any], order: list[Any], server_order: list[Any], key: str | None) -> list[Any]:
    """Items named in `order` in its order, the others in the server's order,
    interleaved so that each keeps its place relative to the server's list."""
    named = [_identity(item, key) for item in order]
    live = [_identity(item, key) for item in server_order]
    ordered = sorted((item for item in merged if _identity(item, key) in named),
                     key=lambda item: named.index(_identity(item, key)))
    server_only = sorted((item for item in merged if _identity(item, key) not in named),
                         key=lambda item: _position(live, _identity(item, key)))
    result: list[Any] = []
    while ordered or server_only:
        if not ordered or (server_only and _before(server_only[0], ordered[0], live, key)):
            result.append(server_only.pop(0))
        else:
            result.append(ordered.pop(0))
    return result


def _before(left: Any, right: Any, live: list[Any], key: str | None) -> bool:
    left_at, right_at = _position(live, _identity(left, key)), _position(live, _identity(right, key))
    return left_at < len(live) and right_at < len(live) and left_at < right_at


def _position(items: list[Any], identity: Any) -> int:
    return items.index(identity) if identity in items else len(items)


def _identity(item: Any, key: str | None) -> Any:
    """What names a list item: its merge key's value, or the primitive itself."""
    if key is None:
        return item
    if not isinstance(item, dict) or key not in item:
        raise PatchError(400, f"map: {_go(item)} does not contain declared merge key: {key}")
    return item[key]


def _holds_maps(items: list[Any]) -> bool:
    """Whether a merged list is of objects; every item must be of one JSON type."""
    kinds = {json_kind(item) for item in items}
    if "array" in kinds:
        raise PatchError(422, "lists of lists are not supported")
    if len(kinds) > 1:
        raise PatchError(400, f"list element types are not identical: {_go(items)}")
    return kinds == {"object"}


def _deduplicated(items: list[Any]) -> list[Any]:
    unique: list[Any] = []
    for item in items:
        if item not in unique:
            unique.append(item)
    return unique


def _go(value: Any) -> str:
    """A value as Go's %v prints a decoded JSON value, for messages in kube-apiserver's words."""
    if isinstance(value, dict):
        return "map[" + " ".join(f"{key}:{_go(value[key])}" for key in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(_go(item) for item in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return "<nil>" if value is None else str(value)
