"""kubectl's `-o jsonpath=TEMPLATE`, applied to what `get` prints: the object
itself for `get KIND NAME`, else a List whose `items` are the objects.

A template is text and `{...}` actions. An action is a path (`.items[*].metadata.name`,
`[0]`, `[1:3]`, `[*]`, `..name`, a filter `[?(@.type=="Ready")]`), a quoted string
(`{"\\n"}`), or `range PATH` ... `end`, which prints its body once per value. The
values one path yields are joined by spaces; a missing key yields nothing, as with
kubectl's allowMissingKeys.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from podnet.errors import PodnetError


class JsonPathError(PodnetError):
    def __init__(self, template: str, problem: str) -> None:
        super().__init__(f"jsonpath {template!r}: {problem}")


_STEP = re.compile(r"""
    \.\.(?P<descend>[A-Za-z0-9_\-/]+)        # ..name: that key at any depth
  | \.(?P<key>[A-Za-z0-9_\-/]+)              # .name
  | \[\?\(@(?P<fpath>(?:\.[A-Za-z0-9_\-/]+)+)\s*(?P<op>==|!=)\s*(?P<fvalue>"[^"]*"|'[^']*'|[^)\s]+)\)\]
  | \[(?P<slice>-?\d*:-?\d*)\]               # [1:3]
  | \[(?P<index>-?\d+)\]                     # [0]
  | \[(?P<all>\*)\]                          # [*]
  | \[['"](?P<quoted>[^'"]+)['"]\]           # ['name.with.dots']
  | (?P<current>@)
  | \.(?P<dot>)$                             # a lone "." is the whole current value
""", re.VERBOSE)


@dataclass(frozen=True)
class _Text:
    text: str


@dataclass(frozen=True)
class _Path:
    source: str


@dataclass(frozen=True)
class _Range:
    path: str
    body: tuple[_Text | _Path | _Range, ...]


def _tokens(template: str) -> list[tuple[str, str]]:
    """("text", ...) and ("action", ...) pieces; braces inside quotes do not count."""
    out, i = [], 0
    while i < len(template):
        start = template.find("{", i)
        if start < 0:
            out.append(("text", template[i:]))
            break
        if start > i:
            out.append(("text", template[i:start]))
        j, quote = start + 1, ""
        while j < len(template) and (quote or template[j] != "}"):
            if template[j] in "\"'" and (not quote or quote == template[j]):
                quote = "" if quote else template[j]
            j += 1
        if j == len(template):
            raise JsonPathError(template, "a '{' is never closed")
        out.append(("action", template[start + 1:j].strip()))
        i = j + 1
    return out


def _parse(template: str) -> tuple[_Text | _Path | _Range, ...]:
    stack: list[tuple[str, list[_Text | _Path | _Range]]] = [("", [])]
    for kind, value in _tokens(template):
        if kind == "text":
            stack[-1][1].append(_Text(value))
        elif value.startswith("range "):
            stack.append((value[len("range "):].strip(), []))
        elif value == "end":
            if len(stack) == 1:
                raise JsonPathError(template, "{end} without {range ...}")
            path, body = stack.pop()
            stack[-1][1].append(_Range(path, tuple(body)))
        elif value[:1] in "\"'" and value[-1:] == value[:1] and len(value) >= 2:
            stack[-1][1].append(_Text(json.loads('"' + value[1:-1].replace('"', '\\"') + '"')))
        else:
            stack[-1][1].append(_Path(value))
    if len(stack) != 1:
        raise JsonPathError(template, "{range ...} without {end}")
    return tuple(stack[0][1])


def _descend(value: Any, key: str) -> list[Any]:
    found = []
    if isinstance(value, dict):
        if key in value:
            found.append(value[key])
        for child in value.values():
            found.extend(_descend(child, key))
    elif isinstance(value, list):
        for child in value:
            found.extend(_descend(child, key))
    return found


def _select(values: list[Any], step: re.Match[str], template: str) -> list[Any]:
    out: list[Any] = []
    for value in values:
        if step["descend"]:
            out.extend(_descend(value, step["descend"]))
        elif step["key"] or step["quoted"]:
            if isinstance(value, dict) and (step["key"] or step["quoted"]) in value:
                out.append(value[step["key"] or step["quoted"]])
        elif step["index"] is not None:
            index = int(step["index"])
            if isinstance(value, list) and -len(value) <= index < len(value):
                out.append(value[index])
        elif step["slice"] is not None:
            if isinstance(value, list):
                start, _, stop = step["slice"].partition(":")
                out.extend(value[int(start) if start else None:int(stop) if stop else None])
        elif step["all"]:
            out.extend(value if isinstance(value, list) else value.values() if isinstance(value, dict) else [])
        elif step["fpath"]:
            if isinstance(value, list):
                wanted = step["fvalue"].strip("\"'")
                for item in value:
                    got = _evaluate(item, step["fpath"], template)
                    equal = bool(got) and _text(got[0]) == wanted
                    if equal == (step["op"] == "=="):
                        out.append(item)
        else:  # @ or a lone "."
            out.append(value)
    return out


def _evaluate(root: Any, path: str, template: str) -> list[Any]:
    values, at = [root], 0
    path = path.strip()
    if path.startswith("$"):
        path = path[1:]
    while at < len(path):
        step = _STEP.match(path, at)
        if step is None or step.end() == at:
            raise JsonPathError(template, f"cannot read {path[at:]!r}")
        values = _select(values, step, template)
        at = step.end()
    return values


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _render(nodes: tuple[_Text | _Path | _Range, ...], current: Any, template: str) -> str:
    out = []
    for node in nodes:
        if isinstance(node, _Text):
            out.append(node.text)
        elif isinstance(node, _Path):
            out.append(" ".join(_text(v) for v in _evaluate(current, node.source, template)))
        else:
            out.extend(_render(node.body, item, template) for item in _evaluate(current, node.path, template))
    return "".join(out)


def jsonpath(document: Any, template: str) -> str:
    """The template filled in from the document, as kubectl prints it."""
    return _render(_parse(template), document, template)
