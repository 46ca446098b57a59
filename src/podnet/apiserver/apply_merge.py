"""Server-side apply's merge of an applied object into the live one, as
structured-merge-diff merges them: maps field by field, keyed lists item by item
(by their list's map keys), sets member by member, atomic fields whole; and the
pruning of what an applier stopped applying.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from podnet.apiserver.fieldset import Path, item_key, keyed_list, remove_path, rule_at, value_at
from podnet.apiserver.merge_keys import Rules

_MISSING = object()


def merge_applied(live: dict[str, Any], applied: dict[str, Any], rules: Rules) -> dict[str, Any]:
    """The applied object merged into the live one, a new object (neither is
    changed); a null in the applied object removes the field."""
    return copy.deepcopy(_merged(live, applied, (), rules))


def _merged(live: Any, applied: Any, at: Path, rules: Rules) -> Any:
    """The applied value merged into the live one, field by field and item by item,
    sharing what it does not change with both."""
    rule = rule_at(rules, at)
    if isinstance(applied, dict) and not (rule and rule.list_type == "atomic"):
        result = dict(live) if isinstance(live, dict) else {}
        for key, value in applied.items():
            if value is None:
                result.pop(key, None)
            else:
                result[key] = _merged(result.get(key, _MISSING), value, at + (f"f:{key}",), rules)
        return result
    if isinstance(applied, list) and isinstance(live, list) and rule and keyed_list(live + applied, rule):
        return _merged_items(live, applied, at, rules)
    return applied


def _merged_items(live: list[Any], applied: list[Any], at: Path, rules: Rules) -> list[Any]:
    """A keyed list or set, walked as structured-merge-diff walks it: live items the
    apply does not name stay where they were, the applied ones come in the apply's
    order, each merged with its live self."""
    rule = rule_at(rules, at)
    live_keys, applied_keys = [item_key(item, rule) for item in live], [item_key(item, rule) for item in applied]
    live_by_key = dict(zip(live_keys, live))
    shared = [key for key in applied_keys if key in live_by_key]  # the next one first
    result: list[Any] = []
    done: set[str] = set()
    at_live = at_applied = 0
    while at_live < len(live) or at_applied < len(applied):
        live_key = live_keys[at_live] if at_live < len(live) else None
        if live_key is not None and at_applied < len(applied):
            if live_key == applied_keys[at_applied]:
                result.append(_merged(live[at_live], applied[at_applied], at + (live_key,), rules))
                done.add(live_key)
                shared = shared[1:]
                at_live, at_applied = at_live + 1, at_applied + 1
                continue
            if live_key in applied_keys and shared and shared[0] != live_key:
                at_live += 1  # merged when the apply's turn comes
                continue
        if live_key is not None and (live_key not in applied_keys or live_key in done):
            if live_key not in applied_keys:
                result.append(live[at_live])
            at_live += 1
            continue
        key = applied_keys[at_applied]
        result.append(_merged(live_by_key.get(key, _MISSING), applied[at_applied], at + (key,), rules))
        done.add(key)
        shared = shared[1:] if shared and shared[0] == key else shared
        at_applied += 1
    return result


def prune(obj: dict[str, Any], dropped: frozenset[Path], kept: frozenset[Path], rules: Rules) -> None:
    """Remove the fields an applier no longer applies, but those someone still owns
    (or owns something under), and a kept item's key fields; containers left
    empty go too, below the top level."""
    owned = {path[:length] for path in kept for length in range(1, len(path) + 1)}
    for path in sorted(dropped, key=len):
        if path in owned or _key_of_kept_item(path, owned):
            continue
        remove_path(obj, path, rules)
        parent = path[:-1]
        while len(parent) > 1 and parent not in owned and _is_empty(obj, parent, rules):
            remove_path(obj, parent, rules)
            parent = parent[:-1]


def _key_of_kept_item(path: Path, owned: set[Path]) -> bool:
    item = path[:-1]
    return (len(path) > 1 and item[-1].startswith("k:") and item in owned
            and path[-1][2:] in json.loads(item[-1][2:]))


def _is_empty(obj: dict[str, Any], path: Path, rules: Rules) -> bool:
    try:
        return value_at(obj, path, rules) in ({}, [])
    except KeyError:
        return False
