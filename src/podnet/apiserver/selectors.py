"""labelSelector and fieldSelector as list and watch take them in a query string
(`app=web,tier in (a,b),!canary`; `spec.nodeName=n1,status.phase!=Running`),
each parsed once into a test on an object."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from podnet.apiserver.status import ApiError

Test = Callable[[dict[str, Any]], bool]

_SET = re.compile(r"^\s*(!?)\s*([A-Za-z0-9._/-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_COMPARE = re.compile(r"^\s*([A-Za-z0-9._/-]+)\s*(==|!=|=)\s*([A-Za-z0-9._-]*)\s*$")
_EXISTS = re.compile(r"^\s*(!?)\s*([A-Za-z0-9._/-]+)\s*$")
FIELDS = ("metadata.name", "metadata.namespace", "spec.nodeName", "status.phase", "involvedObject.kind",
          "involvedObject.name", "involvedObject.namespace", "involvedObject.uid", "involvedObject.apiVersion",
          "involvedObject.resourceVersion", "involvedObject.fieldPath", "reason", "type", "source")


def _requirements(text: str) -> list[str]:
    """Split at the commas that are not inside a set's parentheses."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [p for p in [*parts, current] if p.strip()]


def label_test(text: str | None) -> Test:
    tests: list[Callable[[dict[str, str]], bool]] = []
    for requirement in _requirements(text or ""):
        if found := _SET.match(requirement):
            negated, key, operator, values = found.groups()
            wanted = {v.strip() for v in values.split(",") if v.strip()}
            if negated:
                raise ApiError(400, f"unable to parse requirement: {requirement.strip()!r}")
            inside = operator == "in"
            tests.append(lambda labels, k=key, w=wanted, i=inside: (labels.get(k) in w) if i
                         else (k not in labels or labels[k] not in w))
        elif found := _COMPARE.match(requirement):
            key, operator, value = found.groups()
            equal = operator != "!="
            tests.append(lambda labels, k=key, v=value, e=equal: (labels.get(k) == v) == e)
        elif found := _EXISTS.match(requirement):
            negated, key = found.groups()
            tests.append(lambda labels, k=key, n=bool(negated): (k in labels) != n)
        else:
            raise ApiError(400, f"unable to parse requirement: {requirement.strip()!r}")
    return lambda obj: all(t((obj.get("metadata") or {}).get("labels") or {}) for t in tests)


def field_test(text: str | None) -> Test:
    tests: list[Test] = []
    for requirement in _requirements(text or ""):
        found = _COMPARE.match(requirement)
        if found is None:
            raise ApiError(400, f"invalid field selector: {requirement.strip()!r}")
        path, operator, value = found.groups()
        if path not in FIELDS:
            raise ApiError(400, f'field label not supported: {path}')
        equal = operator != "!="
        tests.append(lambda obj, p=path, v=value, e=equal: (_value(obj, p) == v) == e)
    return lambda obj: all(t(obj) for t in tests)


def _value(obj: dict[str, Any], path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "" if value is None else str(value)
