"""Cell texts several kinds share, as kube-apiserver's printers write them:
label maps and selectors, "a,b,c + 2 more..." lists, and a template's
containers and images. Inputs are the objects' JSON, as served."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

NONE = "<none>"
LIST_MAX = 3  # list cells show this many, then "+ N more..."
_OPERATORS = {"In": "in", "NotIn": "notin"}


def format_labels(labels: Mapping[str, str] | None) -> str:
    """`a=1,b=2` in key order, `<none>` for none (labels.FormatLabels)."""
    return ",".join(f"{key}={labels[key]}" for key in sorted(labels)) if labels else NONE


def selector_text(selector: Mapping[str, Any] | None) -> str | None:
    """A LabelSelector as its requirements, sorted by key: `app=web,tier in (a,b),!old`;
    "" when it selects everything, None when an operator is unknown."""
    if selector is None:
        return ""
    requirements = [(key, f"{key}={value}") for key, value in (selector.get("matchLabels") or {}).items()]
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key", ""), expression.get("operator")
        if operator in _OPERATORS:
            values = ",".join(sorted(expression.get("values") or []))
            requirements.append((key, f"{key} {_OPERATORS[operator]} ({values})"))
        elif operator == "Exists":
            requirements.append((key, key))
        elif operator == "DoesNotExist":
            requirements.append((key, f"!{key}"))
        else:
            return None
    return ",".join(text for _, text in sorted(requirements, key=lambda requirement: requirement[0]))


def format_label_selector(selector: Mapping[str, Any] | None) -> str:
    """metav1.FormatLabelSelector: `<none>` for the empty one, `<error>` for a bad one."""
    text = selector_text(selector)
    return "<error>" if text is None else text or NONE


def list_with_more(items: Iterable[str], empty: str) -> str:
    """The first three, then how many more; `empty` when there are none."""
    shown: list[str] = []
    count = 0
    for item in items:
        if len(shown) < LIST_MAX:
            shown.append(item)
        count += 1
    text = ",".join(shown)
    if count > LIST_MAX:
        return f"{text} + {count - LIST_MAX} more..."
    return text or empty


def containers_and_images(containers: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """A template's container names and images, each joined by commas."""
    return ",".join(c.get("name", "") for c in containers), ",".join(c.get("image", "") for c in containers)


def template_containers(obj: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
    return (((obj.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
